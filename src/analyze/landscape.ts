/**
 * Loss landscapes around a model's weights θ0 (Li et al. 2018): the detection loss along one
 * filter-normalized random direction, L(θ0 + α d1) for α on a line, and over the plane of two,
 * L(θ0 + α d1 + β d2) on a grid. The directions come from seeds, so two models of the same
 * architecture get the same Gaussian draws, each normalized to its own filters.
 */
import { randomDirection } from './directions.js';
import type { DetectionObjective } from './objective.js';

export interface Landscape1D {
  seed: number;
  alphas: number[];
  losses: number[];
}

export interface Landscape2D {
  seeds: [number, number];
  alphas: number[];
  betas: number[];
  /** losses[j][i] = L(θ0 + alphas[i] d1 + betas[j] d2). */
  losses: number[][];
}

/** `points` evenly spaced values from -extent to extent (odd `points` include 0 exactly). */
export function axis(extent: number, points: number): number[] {
  if (points < 2) return [0];
  return Array.from({ length: points }, (_, i) => {
    const v = -extent + (2 * extent * i) / (points - 1);
    return Math.abs(v) < 1e-12 ? 0 : v;
  });
}

export async function landscape1d(obj: DetectionObjective, options: { seed: number; alphas: number[]; onPoint?: (done: number, total: number, loss: number) => void }): Promise<Landscape1D> {
  const d = randomDirection(obj.theta, obj.shapes, options.seed);
  const losses: number[] = [];
  try {
    for (const a of options.alphas) {
      losses.push(await obj.lossAt(a === 0 ? [] : [[a, d]]));
      options.onPoint?.(losses.length, options.alphas.length, losses.at(-1) as number);
    }
  } finally {
    await obj.restore();
  }
  return { seed: options.seed, alphas: options.alphas, losses };
}

export async function landscape2d(obj: DetectionObjective, options: { seeds: [number, number]; alphas: number[]; betas: number[]; onPoint?: (done: number, total: number, loss: number) => void }): Promise<Landscape2D> {
  const d1 = randomDirection(obj.theta, obj.shapes, options.seeds[0]);
  const d2 = randomDirection(obj.theta, obj.shapes, options.seeds[1]);
  const total = options.alphas.length * options.betas.length;
  const losses: number[][] = [];
  let done = 0;
  try {
    for (const b of options.betas) {
      const row: number[] = [];
      for (const a of options.alphas) {
        row.push(await obj.lossAt([[a, d1], [b, d2]].filter(([c]) => c !== 0) as [number, typeof d1][]));
        options.onPoint?.(++done, total, row.at(-1) as number);
      }
      losses.push(row);
    }
  } finally {
    await obj.restore();
  }
  return { seeds: options.seeds, alphas: options.alphas, betas: options.betas, losses };
}
