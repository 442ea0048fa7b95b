/**
 * A paired bootstrap over validation images for the COCO stats of several models:
 *
 *   const b = bootstrap(gtJson, [{ name: 'direct', detections }, { name: 'mtpd', detections: d2 }]);
 *   b.models[0]     // { name, stats (= COCOeval on all images), lo, hi }: 95% percentile intervals
 *   pairOf(b, 'mtpd', 'direct')   // { diff, lo, hi, above }: stats(mtpd) - stats(direct)
 *
 * Each resample draws as many images as the evaluation has, with replacement (seeded); an image
 * drawn twice counts twice, its ground truths and its detections. Every model is scored on the
 * same resamples, so a difference is judged against the spread of differences on identical
 * images (paired), not against two independent spreads.
 *
 * COCOeval's per-(image, category) matching does not depend on the resample: it runs once per
 * model (evaluateImages) and each resample only re-accumulates with image multiplicities.
 */
import { Rng } from '../data/rng.js';
import { accumulate, accumulateStats, evaluateImages, indexMatches, STAT_NAMES, type ImageEvaluation } from './cocoeval.js';
import { defaultParams, type IouType } from './params.js';
import { Detections, GroundTruth, evalError, type CocoDataset, type CocoDetection } from './store.js';

export interface BootstrapModel {
  name: string;
  /** COCO results records, or a Detections store built on the same GroundTruth object. */
  detections: readonly CocoDetection[] | Detections;
}

export interface BootstrapOptions {
  /** Number of resamples B (default 1000). */
  resamples?: number;
  /** Seed of the image draws (default 0): the same seed gives the same result. */
  seed?: number;
  /** Coverage of the intervals (default 0.95). */
  level?: number;
  /** 'bbox' (default) or 'segm'. */
  iouType?: IouType;
  /** The images to resample (default every gt image). */
  imgIds?: readonly number[];
}

export interface ModelSpread {
  name: string;
  /** The 12 stats (STAT_NAMES order) of COCOeval on all images: the point estimates. */
  stats: number[];
  /** Percentile interval of each stat over the resamples (-1 where the stat is undefined). */
  lo: number[];
  hi: number[];
}

export interface PairSpread {
  a: string;
  b: string;
  /** stats(a) - stats(b) on all images (NaN where the stat is undefined). */
  diff: number[];
  /** Percentile interval of the per-resample difference. */
  lo: number[];
  hi: number[];
  /** Fraction of resamples in which a's stat is above b's. */
  above: number[];
}

export interface BootstrapResult {
  resamples: number;
  seed: number;
  level: number;
  /** Images per resample (the evaluated images). */
  images: number;
  /** Names of the 12 stats, the order of every array here. */
  statNames: string[];
  models: ModelSpread[];
  /** Every ordered pair (a, b), a !== b, in model order. */
  pairs: PairSpread[];
}

/** numpy.quantile's default ('linear') of ascending values. */
export function quantileSorted(x: ArrayLike<number>, q: number): number {
  const n = x.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const i = Math.floor(h);
  if (i >= n - 1) return x[n - 1]!;
  return x[i]! + (h - i) * (x[i + 1]! - x[i]!);
}

/** The image multiplicities of resample after resample: I draws with replacement from I images. */
export function* resampleWeights(images: number, resamples: number, seed: number): Generator<Int32Array> {
  const rng = new Rng(seed);
  const w = new Int32Array(images);
  for (let b = 0; b < resamples; b++) {
    w.fill(0);
    for (let i = 0; i < images; i++) w[rng.int(images)]!++;
    yield w;
  }
}

/** Runs the paired bootstrap; see the file comment. */
export function bootstrap(gt: CocoDataset | GroundTruth | unknown, models: readonly BootstrapModel[], options: BootstrapOptions = {}): BootstrapResult {
  const B = options.resamples ?? 1000;
  const seed = options.seed ?? 0;
  const level = options.level ?? 0.95;
  const iouType = options.iouType ?? 'bbox';
  if (!(Number.isInteger(B) && B >= 1)) evalError(`resamples must be a positive integer, got ${B}`);
  if (!Number.isFinite(seed)) evalError(`seed must be a finite number, got ${seed}`);
  if (!(level > 0 && level < 1)) evalError(`level must be between 0 and 1, got ${level}`);
  if (iouType !== 'bbox' && iouType !== 'segm') evalError(`iouType must be "bbox" or "segm", got ${JSON.stringify(iouType)}`);
  if (!Array.isArray(models) || models.length === 0) evalError('models: expected at least one {name, detections}');
  const names = new Set<string>();
  models.forEach((m, i) => {
    if (typeof m?.name !== 'string' || m.name === '') evalError(`models[${i}].name must be a non-empty string`);
    if (names.has(m.name)) evalError(`models[${i}].name "${m.name}" is a duplicate`);
    names.add(m.name);
  });

  const g = gt instanceof GroundTruth ? gt : new GroundTruth(gt, iouType);
  const params = defaultParams(iouType);
  const evals: ImageEvaluation[] = models.map((m, i) => {
    let dt = m.detections;
    if (dt instanceof Detections) {
      if (dt.gt !== g) evalError(`models[${i}].detections ("${m.name}") was built on another GroundTruth`);
    } else {
      const store = new Detections(g, iouType);
      store.add(dt, `models[${i}].detections ("${m.name}")`);
      dt = store;
    }
    return indexMatches(evaluateImages(g, dt, params, options.imgIds));
  });
  const I = evals[0]!.imgIds.length;
  const S = STAT_NAMES.length;
  const N = models.length;
  const point = evals.map((e) => accumulate(e).stats);

  // samples[(m * S + s) * B + b]: model m's stat s on resample b
  const samples = new Float64Array(N * S * B);
  let b = 0;
  for (const w of resampleWeights(I, B, seed)) {
    for (let m = 0; m < N; m++) {
      const st = accumulateStats(evals[m]!, w);
      for (let s = 0; s < S; s++) samples[(m * S + s) * B + b] = st[s]!;
    }
    b++;
  }

  const qlo = (1 - level) / 2;
  const qhi = 1 - qlo;
  const buf = new Float64Array(B);
  const interval = (fill: (b: number) => number): [number, number, number] => {
    // defined values only (a stat is undefined, -1 / NaN, on a resample without gts of its kind)
    let n = 0;
    let above = 0;
    for (let j = 0; j < B; j++) {
      const v = fill(j);
      if (Number.isNaN(v)) continue;
      buf[n++] = v;
      if (v > 0) above++;
    }
    const sorted = buf.subarray(0, n).sort();
    return [quantileSorted(sorted, qlo), quantileSorted(sorted, qhi), n ? above / n : NaN];
  };

  const spreads: ModelSpread[] = models.map((m, mi) => {
    const lo: number[] = [];
    const hi: number[] = [];
    for (let s = 0; s < S; s++) {
      const row = (mi * S + s) * B;
      const [l, h] = interval((j) => (samples[row + j]! > -1 ? samples[row + j]! : NaN));
      lo.push(Number.isNaN(l) ? -1 : l);
      hi.push(Number.isNaN(h) ? -1 : h);
    }
    return { name: m.name, stats: point[mi]!, lo, hi };
  });

  const pairs: PairSpread[] = [];
  for (let ma = 0; ma < N; ma++) {
    for (let mb = 0; mb < N; mb++) {
      if (ma === mb) continue;
      const diff: number[] = [];
      const lo: number[] = [];
      const hi: number[] = [];
      const above: number[] = [];
      for (let s = 0; s < S; s++) {
        const pa = point[ma]![s]!;
        const pb = point[mb]![s]!;
        diff.push(pa > -1 && pb > -1 ? pa - pb : NaN);
        const ra = (ma * S + s) * B;
        const rb = (mb * S + s) * B;
        const [l, h, f] = interval((j) => {
          const va = samples[ra + j]!;
          const vb = samples[rb + j]!;
          return va > -1 && vb > -1 ? va - vb : NaN;
        });
        lo.push(l);
        hi.push(h);
        above.push(f);
      }
      pairs.push({ a: models[ma]!.name, b: models[mb]!.name, diff, lo, hi, above });
    }
  }
  return { resamples: B, seed, level, images: I, statNames: [...STAT_NAMES], models: spreads, pairs };
}

/** The spread of one model by name; throws naming it when absent. */
export function modelOf(result: BootstrapResult, name: string): ModelSpread {
  const m = result.models.find((x) => x.name === name);
  if (!m) evalError(`bootstrap: no model "${name}" (models: ${result.models.map((x) => x.name).join(', ')})`);
  return m;
}

/** The paired difference a - b; throws naming them when absent. */
export function pairOf(result: BootstrapResult, a: string, b: string): PairSpread {
  const p = result.pairs.find((x) => x.a === a && x.b === b);
  if (!p) evalError(`bootstrap: no pair "${a}" - "${b}" (models: ${result.models.map((x) => x.name).join(', ')})`);
  return p;
}
