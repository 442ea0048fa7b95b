/** The adaptation cost at one FPN level: fit a linear map A -> B on training features, score on held-out ones. */
import { alignMap } from '../distill/align.js';
import { MtpdError, withCallSite } from '../errors.js';
import { native } from '../native.js';
import type { Tensor } from '../tensor.js';

export interface LinearFitOptions {
  /** "closed-form" (ridge least squares from one streaming pass) or "sgd" (the paper's gradient descent). */
  fitter?: 'closed-form' | 'sgd';
  /** closed-form: ridge strength relative to the mean feature variance; negative or omitted: chosen by held-out error on the training batches. */
  ridge?: number;
  /** sgd: optimizer, learning rate, momentum (sgd only), steps (one batch each), seed. */
  optimizer?: 'adam' | 'sgd';
  lr?: number;
  momentum?: number;
  steps?: number;
  seed?: number;
}

export interface LinearFitResult {
  /** Mean squared error over B's elements (its valid positions, with masks) on the held-out batches: d(A -> B) at this level. */
  valMse: number;
  trainMse: number;
  trainPixels: number;
  valPixels: number;
  /** closed-form: the ridge strength used. */
  ridge: number;
  /** The fitted 1x1 conv: weight (C_B, C_A), bias (C_B). */
  weight: Tensor<'float32'>;
  bias: Tensor<'float32'>;
}

declare module '../native.js' {
  interface Binding {
    order: {
      fitLinearMap(
        trainX: Tensor[],
        trainY: Tensor[],
        valX: Tensor[],
        valY: Tensor[],
        options?: LinearFitOptions,
        masks?: { train: Tensor[]; val: Tensor[] },
      ): Promise<LinearFitResult>;
      linearMoments(x: Tensor, y: Tensor, mask: Tensor | null, alignment?: FitAlignment): Promise<Moments>;
      solveLinearMoments(fit: Moments, held: Moments | null, ridge: number): Promise<{ weight: Tensor<'float64'>; bias: Tensor<'float64'>; ridge: number; pixels: number; trainSe: number }>;
      linearScore(x: Tensor, y: Tensor, mask: Tensor | null, weight: Tensor, bias: Tensor, alignment?: FitAlignment): Promise<{ se: number; count: number }>;
    };
  }
}

/** Feature batches of A and B for the same images in the same order, and optionally B's valid cells. */
export interface FitSplit {
  /** A's maps (N, C_A, H, W); without masks they may have another size (resized bilinearly onto B's whole map). */
  a: Tensor[];
  /** B's maps (N, C_B, H, W). */
  b: Tensor[];
  /** (N, 1, H, W): 1 where B's map holds an image (valid cells), 0 on padding; given for both splits or neither. */
  mask?: Tensor[];
}

/**
 * The linear map A -> B at one level, fitted on `train` and scored on `val`. With masks, A's maps
 * must already be aligned onto B's grid (src/distill/align.ts) and only valid positions count,
 * in the fit and in both MSEs.
 */
export async function fitLinearMap(train: FitSplit, val: FitSplit, options: LinearFitOptions = {}): Promise<LinearFitResult> {
  const site = new Error().stack;
  try {
    if ((train.mask === undefined) !== (val.mask === undefined)) {
      throw new MtpdError('ERR_MTPD_ARGUMENT', 'fitLinearMap: give masks for both splits or neither');
    }
    const masks = train.mask && val.mask ? { train: train.mask, val: val.mask } : undefined;
    return await native().order.fitLinearMap(train.a, train.b, val.a, val.b, options, masks);
  } catch (err) {
    throw withCallSite(err, site);
  }
}

/** Sums of one or more batches: x (C_A), y (C_B), x x^T, x y^T in float64, |y|^2 and the positions counted. */
interface Moments {
  sx: Tensor<'float64'>;
  sy: Tensor<'float64'>;
  sxx: Tensor<'float64'>;
  sxy: Tensor<'float64'>;
  syy: number;
  n: number;
}

/** acc += m, element by element (the same float64 additions as summing in libtorch). */
function addMoments(acc: Moments | null, m: Moments): Moments {
  if (!acc) return m;
  for (const k of ['sx', 'sy', 'sxx', 'sxy'] as const) {
    const a = acc[k].data;
    const b = m[k].data;
    if (a.length !== b.length) throw new MtpdError('ERR_MTPD_SHAPE', `fitLinearMap: channel counts change between batches (${k})`);
    for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) + (b[i] as number);
  }
  acc.syy += m.syy;
  acc.n += m.n;
  return acc;
}

/**
 * One batch of a streamed split: A's maps (on B's grid with a mask), B's maps, B's valid cells;
 * or A's maps on their own grid with `align`, where the images lie in both maps: the native call
 * then aligns A's maps onto B's grid and makes the mask itself (src/distill/align.ts), so neither
 * crosses the boundary and the batch's temporaries live and die in that one call.
 */
export interface FitBatch {
  a: Tensor;
  b: Tensor;
  mask?: Tensor;
  align?: FitAlignment;
}

/** Where a batch's images lie in A's maps (source) and B's (target), as alignMap takes it. */
export interface FitAlignment {
  sourceSizes: [number, number][];
  sourceStride: number;
  targetSizes: [number, number][];
  targetStride: number;
}

/**
 * A split whose batches are produced on demand (read from disk), `count` of them, in a fixed
 * order. The closed-form fit is done with a batch (its native call has copied it) before it asks
 * for the next, so a source may hand out views of buffers it reuses.
 */
export interface FitSource {
  count: number;
  batch(i: number): Promise<FitBatch>;
  /**
   * Sharded over processes (with FitShard): the batches this process holds, by their index in
   * the whole split (`count` stays the whole split's); default every batch.
   */
  indices?: number[];
}

/**
 * The processes a streamed closed-form fit is sharded over: each sums the moments and squared
 * errors of its own batches, and `sum` adds them up over the processes (every process calls it
 * in the same order with vectors of the same length), so every process gets the fit of the
 * whole split.
 */
export interface FitShard {
  sum(values: Float64Array): Promise<Float64Array>;
}

const MOMENT_KEYS = ['sx', 'sy', 'sxx', 'sxy'] as const;

/**
 * The moments summed over the processes (null on every process when none has any). A process
 * may hold none (fewer batches than processes): the channel counts come from the others.
 */
async function reduceMoments(local: Moments | null, shard: FitShard): Promise<Moments | null> {
  const ca = local ? (local.sx.shape[0] as number) : 0;
  const cb = local ? (local.sy.shape[0] as number) : 0;
  const head = await shard.sum(Float64Array.of(local ? 1 : 0, ca, cb));
  const holders = head[0] as number;
  if (holders === 0) return null;
  const [a, b] = [(head[1] as number) / holders, (head[2] as number) / holders];
  if (local && (a !== ca || b !== cb)) throw new MtpdError('ERR_MTPD_SHAPE', `fitLinearMap: channel counts differ between processes (${ca} -> ${cb} here, ${a} -> ${b} on average)`);
  const shapes = { sx: [a], sy: [b], sxx: [a, a], sxy: [a, b] };
  const sizes = [a, b, a * a, a * b];
  const flat = new Float64Array(sizes.reduce((x, y) => x + y, 0) + 2);
  let off = 0;
  MOMENT_KEYS.forEach((k, i) => {
    if (local) flat.set(local[k].data, off);
    off += sizes[i] as number;
  });
  flat[off] = local?.syy ?? 0;
  flat[off + 1] = local?.n ?? 0;
  const sum = await shard.sum(flat);
  off = 0;
  const out = { syy: sum[flat.length - 2] as number, n: sum[flat.length - 1] as number } as Moments;
  MOMENT_KEYS.forEach((k, i) => {
    const n = sizes[i] as number;
    out[k] = { dtype: 'float64', shape: shapes[k], data: sum.slice(off, off + n) };
    off += n;
  });
  return out;
}

/**
 * fitLinearMap over batches produced on demand, holding one batch at a time: memory does not
 * grow with the number of images. The closed form gives exactly fitLinearMap's result on the same
 * batches (the same moments summed in the same order, the same solve, the same scores): one
 * pass over the training batches (the training error comes from their moments) and one over the
 * validation ones, so each batch is read once per fit. The SGD fitter revisits
 * batches step after step, so it gathers the split in memory and calls fitLinearMap.
 */
export async function fitLinearMapStreamed(train: FitSource, val: FitSource, options: LinearFitOptions = {}, shard?: FitShard): Promise<LinearFitResult> {
  const site = new Error().stack;
  try {
    if (train.count === 0) throw new MtpdError('ERR_MTPD_SHAPE', 'train: no feature batches');
    if (val.count === 0) throw new MtpdError('ERR_MTPD_SHAPE', 'val: no feature batches');
    const o = native().order;
    const mine = (src: FitSource): number[] => src.indices ?? Array.from({ length: src.count }, (_, i) => i);
    if ((options.fitter ?? 'closed-form') !== 'closed-form') {
      if (shard) throw new MtpdError('ERR_MTPD_ARGUMENT', 'fitLinearMap: only the closed-form fitter can be sharded over processes (the SGD fitter revisits every batch)');
      const gather = async (s: FitSource): Promise<FitSplit> => {
        const out: FitSplit = { a: [], b: [] };
        for (let i = 0; i < s.count; i++) {
          const b = await s.batch(i);
          if (b.align) {
            const al = b.align;
            const [, , hb, wb] = b.b.shape as [number, number, number, number];
            const r = await alignMap(b.a, al.sourceSizes, al.sourceStride, [hb, wb], al.targetSizes, al.targetStride);
            out.a.push(r.aligned);
            (out.mask ??= []).push(r.mask);
          } else {
            out.a.push(b.a);
            if (b.mask) (out.mask ??= []).push(b.mask);
          }
          out.b.push(b.b);
        }
        return out;
      };
      return await fitLinearMap(await gather(train), await gather(val), options);
    }
    const ridge = options.ridge ?? -1;
    // Every fourth training batch is held out to choose the ridge (the last one when there are fewer than four).
    const autoRidge = ridge < 0 && train.count >= 2;
    let fit: Moments | null = null;
    let held: Moments | null = null;
    let masked: boolean | null = null;
    const check = (b: FitBatch, split: string, i: number) => {
      if (b.mask && b.align) throw new MtpdError('ERR_MTPD_ARGUMENT', `fitLinearMap: ${split}[${i}]: give a mask or an alignment, not both`);
      const has = b.mask !== undefined || b.align !== undefined;
      if (masked === null) masked = has;
      if (masked !== has) throw new MtpdError('ERR_MTPD_ARGUMENT', `fitLinearMap: ${split}[${i}]: give masks for every batch of both splits or for none (an alignment counts as a mask)`);
    };
    for (const i of mine(train)) {
      const b = await train.batch(i);
      check(b, 'train', i);
      const m = await o.linearMoments(b.a, b.b, b.mask ?? null, ...(b.align ? [b.align] : []));
      const hold = autoRidge && (train.count >= 4 ? i % 4 === 3 : i + 1 === train.count);
      if (hold) held = addMoments(held, m);
      else fit = addMoments(fit, m);
    }
    if (shard) {
      // Every process solves the same summed moments.
      fit = await reduceMoments(fit, shard);
      if (autoRidge) held = await reduceMoments(held, shard);
    }
    if (!fit) throw new MtpdError('ERR_MTPD_SHAPE', 'train: no feature batches to fit on');
    const s = await o.solveLinearMoments(fit, autoRidge ? held : null, ridge);
    const score = async (src: FitSource, split: string) => {
      let se = 0;
      let count = 0;
      for (const i of mine(src)) {
        const b = await src.batch(i);
        check(b, split, i);
        const r = await o.linearScore(b.a, b.b, b.mask ?? null, s.weight, s.bias, ...(b.align ? [b.align] : []));
        se += r.se;
        count += r.count;
      }
      if (shard) [se, count] = Array.from(await shard.sum(Float64Array.of(se, count))) as [number, number];
      if (count === 0) throw new MtpdError('ERR_MTPD_SHAPE', `${split}: the feature batches hold no pixels (0 images or empty maps)`);
      return { mse: se / count, count };
    };
    const va = await score(val, 'val');
    const cb = s.weight.shape[0] as number;
    // The training error from the summed moments (fitLinearMap's closed form computes it the same way).
    const tr = { mse: s.trainSe / Math.max(s.pixels * cb, 1) };
    const toF32 = <T extends Tensor<'float64'>>(t: T): Tensor<'float32'> => ({ dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data) });
    return { valMse: va.mse, trainMse: tr.mse, trainPixels: s.pixels, valPixels: va.count / Math.max(cb, 1), ridge: s.ridge, weight: toF32(s.weight), bias: toF32(s.bias) };
  } catch (err) {
    throw withCallSite(err, site);
  }
}
