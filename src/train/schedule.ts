/**
 * Learning-rate schedules as pure functions of progress (detectron2 style): linear warmup from
 * warmupFactor * lr over warmupIterations, then a step (milestones as fractions of the schedule,
 * times gamma at each), cosine, linear or constant policy. Each stage of the curriculum restarts
 * its schedule (the paper's 1x per teacher).
 */
import type { Schedule } from '../config/schema.js';

export type LrSchedule = Pick<Schedule, 'lr' | 'warmupIterations' | 'warmupFactor' | 'policy' | 'milestones' | 'gamma'>;

/** The learning rate at 0-based optimizer step `iter` of a schedule of `total` steps. */
export function lrAt(s: LrSchedule, iter: number, total: number): number {
  if (total <= 0) return s.lr;
  const t = Math.min(Math.max(iter, 0), total);
  let base: number;
  switch (s.policy) {
    case 'step': {
      const drops = s.milestones.filter((m) => t >= Math.round(m * total)).length;
      base = s.lr * s.gamma ** drops;
      break;
    }
    case 'cosine':
      base = s.lr * 0.5 * (1 + Math.cos((Math.PI * t) / total));
      break;
    case 'linear':
      base = s.lr * (1 - t / total);
      break;
    default:
      base = s.lr;
  }
  if (t < s.warmupIterations) {
    const alpha = t / s.warmupIterations;
    base *= s.warmupFactor * (1 - alpha) + alpha;
  }
  return base;
}

/** Steps in a schedule given as iterations or epochs over `imagesPerEpoch` with `batchSize`. */
export function totalIterations(s: Pick<Schedule, 'iterations' | 'epochs'>, imagesPerEpoch: number, batchSize: number): number {
  if (s.iterations !== undefined) return s.iterations;
  const perEpoch = Math.max(1, Math.ceil(imagesPerEpoch / batchSize));
  return Math.max(1, Math.round((s.epochs ?? 12) * perEpoch));
}
