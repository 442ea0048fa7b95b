/**
 * Sharpness of the detection loss at a model's weights, two ways:
 *  - the largest Hessian eigenvalue λ_max (in magnitude) by power iteration on Hessian-vector
 *    products (double backward, never forming H): v <- H v / ||H v||, λ = v . H v, from a
 *    seeded Gaussian start, until λ changes by less than `tol` (relative);
 *  - the mean loss increase at a fixed radius r: mean over K filter-normalized random directions
 *    d (directions.ts) of L(θ + r d) - L(θ), the flatness a landscape slice shows, averaged.
 */
import { Rng } from '../data/rng.js';
import { randomDirection } from './directions.js';
import type { DetectionObjective } from './objective.js';
import { dot, norm, type ParamShape, type ParamVector, scale } from './vector.js';
import { numelOf } from './vector.js';

export interface PowerIterationResult {
  /** The eigenvalue of largest magnitude (its sign kept). */
  eigenvalue: number;
  /** Its unit eigenvector estimate. */
  vector: ParamVector;
  iterations: number;
  converged: boolean;
  /** λ after each iteration. */
  history: number[];
}

export interface PowerIterationOptions {
  iterations?: number;
  /** Stop when |λ_k - λ_{k-1}| <= tol |λ_k| (default 1e-3). */
  tol?: number;
  seed?: number;
  onIteration?: (k: number, eigenvalue: number) => void;
}

/** Power iteration of a symmetric linear map given as `apply` (H v) over vectors of `shapes`. */
export async function powerIteration(apply: (v: ParamVector) => Promise<ParamVector>, shapes: readonly ParamShape[], options: PowerIterationOptions = {}): Promise<PowerIterationResult> {
  const maxIter = options.iterations ?? 20;
  const tol = options.tol ?? 1e-3;
  const rng = new Rng(options.seed ?? 0);
  let v: ParamVector = new Map(shapes.map((s) => [s.name, Float64Array.from({ length: numelOf(s.shape) }, () => rng.normal())]));
  v = scale(v, 1 / norm(v));
  const history: number[] = [];
  let converged = false;
  for (let k = 0; k < maxIter; k++) {
    const hv = await apply(v);
    const lambda = dot(v, hv);
    history.push(lambda);
    options.onIteration?.(k + 1, lambda);
    const n = norm(hv);
    const prev = history.at(-2);
    if (n === 0) {
      converged = true;
      break;
    }
    v = scale(hv, 1 / n);
    if (prev !== undefined && Math.abs(lambda - prev) <= tol * Math.abs(lambda)) {
      converged = true;
      break;
    }
  }
  return { eigenvalue: history.at(-1) ?? 0, vector: v, iterations: history.length, converged, history };
}

/** λ_max of the detection loss's Hessian at the objective's weights θ0. */
export async function topHessianEigenvalue(obj: DetectionObjective, options: PowerIterationOptions = {}): Promise<PowerIterationResult> {
  await obj.restore();
  return powerIteration(async (v) => (await obj.hvp(v)).product, obj.shapes, options);
}

export interface RadiusSharpness {
  radius: number;
  /** L(θ0). */
  base: number;
  /** L(θ0 + r d_k) - L(θ0) per direction. */
  increases: number[];
  mean: number;
  /** Sample standard deviation of the increases. */
  std: number;
}

/** Mean L(θ0 + r d) - L(θ0) over `count` filter-normalized directions from seeds seed, seed+1, ... */
export async function radiusSharpness(obj: DetectionObjective, options: { radius: number; count: number; seed: number; onDirection?: (k: number, increase: number) => void }): Promise<RadiusSharpness> {
  await obj.restore();
  const base = (await obj.loss()).loss;
  const increases: number[] = [];
  try {
    for (let k = 0; k < options.count; k++) {
      const d = randomDirection(obj.theta, obj.shapes, options.seed + k);
      const inc = (await obj.lossAt([[options.radius, d]])) - base;
      increases.push(inc);
      options.onDirection?.(k + 1, inc);
    }
  } finally {
    await obj.restore();
  }
  const mean = increases.reduce((a, b) => a + b, 0) / Math.max(1, increases.length);
  const std = increases.length > 1 ? Math.sqrt(increases.reduce((a, b) => a + (b - mean) ** 2, 0) / (increases.length - 1)) : 0;
  return { radius: options.radius, base, increases, mean, std };
}
