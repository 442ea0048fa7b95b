/**
 * The adaptation-cost matrix for a student and a teacher pool (MTPD Sec. 3.2; method.md 1.3).
 * Each model's features are extracted once per image batch (so the work grows linearly in the
 * number of models); every needed ordered pair (A, B) then gets, per FPN level, a linear map
 * fitted on training-split features and scored on held-out ones; d(A -> B) is the sum of the
 * per-level validation MSEs.
 *
 * The cost is measured on what is distilled: A's maps are aligned onto B's grid with the
 * adapter's own mapping (src/distill/align.ts: each image's valid cells, resampled bilinearly at
 * the per-image content scale), the 1x1 linear map is fitted on the aligned maps (it commutes with
 * the resampling, so this equals the adapter's conv-then-resize), and only B's valid cells count
 * in the fit and in the validation MSE, for both fitters. The levels are those distilled
 * (`levels`, e.g. config.distill.levels) or else every level the models share.
 *
 * Memory: each model's maps of a batch go to an on-disk feature cache (src/distill/feature_cache.ts,
 * one entry per model, split, batch and level) as soon as they are made, and the fits read them
 * back one batch at a time (fitLinearMapStreamed), so the peak holds one batch of two models at
 * one level, whatever the number of images or models. The closed-form costs are exactly those
 * of fitting on every batch at once. What the heap keeps stays flat too: the two maps of a batch
 * are read into two reused buffers, A's map is aligned onto B's grid inside the native fit call
 * (no aligned copy or mask comes back to JS), and every fit call runs on one native thread, so
 * one glibc arena, not one per libuv pool thread, holds the float64 temporaries of a batch.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FeatureBatch } from '../detector.js';
import { FeatureCache, type FeatureKey } from '../distill/feature_cache.js';
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { CostTable } from './bgs.js';
import { type FitShard, type FitSource, fitLinearMapStreamed, type LinearFitOptions } from './linear-fit.js';

/**
 * Anything that turns a batch of images into named feature maps (a frozen detector). Returning a
 * FeatureBatch (`Detector.features(images, {layout: true})`) says where each image lies in the
 * maps; plain maps are taken as images that fill their maps exactly.
 */
export interface FeatureSource {
  name: string;
  /** Validation AP, for choosing the strongest teacher. */
  ap: number;
  features(images: Tensor[]): Promise<Record<string, Tensor> | FeatureBatch>;
}

/**
 * Image batches read on demand (e.g. decoded from the dataset): `batches()` yields the same
 * batches in the same order every time it is called (once per model), so no image stays in
 * memory longer than its batch.
 */
export interface ImageBatches {
  batches(): AsyncIterable<Tensor[]>;
}

export interface CostMatrixOptions extends LinearFitOptions {
  /** "bgs": only the pairs BGS can ask for (targets are teachers); "all": every ordered pair. */
  pairs?: 'bgs' | 'all';
  /** The student's name (required for pairs "bgs"). */
  student?: string;
  /** Levels to use, e.g. config.distill.levels (default: the taps every model shares); each must be a tap of every model. */
  levels?: string[];
  onProgress?: (event: { phase: 'features' | 'fit'; done: number; total: number; label: string }) => void;
  /**
   * Data-parallel: the processes the work is sharded over. Process `rank` computes the features
   * of batches rank, rank + worldSize, ... of each split (whole batches, the same batches as one
   * process makes, so the features are the same), and the closed-form fits sum their moments and
   * squared errors over the processes (`sum`), so every process gets the single-process matrix
   * (up to the order of float64 additions). `allgather`: every process's JSON value, in rank
   * order. The SGD fitter cannot be sharded.
   */
  shard?: CostShard;
  /**
   * Folder of the on-disk feature cache the maps stream through (kept, so a rerun in the same
   * folder could read it; delete it when done). Default: a temporary folder removed at the end.
   */
  featureDir?: string;
}

export interface CostShard extends FitShard {
  rank: number;
  worldSize: number;
  allgather<T>(value: T): Promise<T[]>;
}

export interface CostMatrix extends CostTable {
  /** Per-level costs: perLevel[A][B][level]. */
  perLevel: Record<string, Record<string, Record<string, number>>>;
  levels: string[];
  fitter: string;
  seconds: { features: number; fit: number };
  /** Batches (of every model and split) whose features this process computed (sharded: its part). */
  computed: number;
}

/** One model's features of one batch, with where its images lie. */
interface Features {
  maps: Record<string, Tensor>;
  /** Per image [h, w] after the model's resize; null: each image fills its map (plain maps). */
  imageSizes: [number, number][] | null;
  strides: Record<string, number>;
}

/**
 * Every model's maps of every batch on disk, one cache entry per (model, split, batch, level),
 * each with where its images lie; read back one level of one batch at a time.
 */
class FeatureBank {
  private readonly cache: FeatureCache;
  /** model -> its taps (from its first batch). */
  readonly taps = new Map<string, string[]>();

  constructor(dir: string) {
    this.cache = new FeatureCache(dir);
  }

  private key(model: string, split: string, batch: number, level: string): FeatureKey {
    return { model, weights: 'cost-matrix', image: `${split}/${batch}`, transform: level };
  }

  async put(model: string, split: string, batch: number, f: Features, levels: string[] | null): Promise<void> {
    const taps = Object.keys(f.maps);
    if (!this.taps.has(model)) this.taps.set(model, taps);
    for (const level of taps) {
      if (levels && !levels.includes(level)) continue;
      const extra = { imageSizes: JSON.stringify(f.imageSizes), stride: JSON.stringify(f.strides[level] ?? null) };
      await this.cache.put(this.key(model, split, batch, level), { map: f.maps[level] as Tensor }, extra);
    }
  }

  /** Read buffers reused from batch to batch, one per slot (a file's maps view its slot's buffer). */
  private readonly buffers = new Map<string, Uint8Array>();

  private buffer(slot: string, bytes: number): Uint8Array {
    let b = this.buffers.get(slot);
    if (!b || b.byteLength < bytes) {
      // grown to the largest entry seen (a level's maps have the same size in every full batch)
      b = Buffer.allocUnsafeSlow(bytes);
      this.buffers.set(slot, b);
    }
    return b;
  }

  /**
   * One level of one batch of a model, as a Features with that level alone. `slot`: read into
   * that slot's reused buffer (the maps are valid until the slot is read into again), so
   * streaming the batches allocates nothing per batch; without it, a fresh copy.
   */
  async get(model: string, split: string, batch: number, level: string, slot?: string): Promise<Features> {
    const e = await this.cache.getEntry(this.key(model, split, batch, level), slot === undefined ? {} : { buffer: (n) => this.buffer(slot, n) });
    const map = e?.features.map;
    if (!e || !map) throw new MtpdError('ERR_MTPD_DATA', `${model}: feature map "${level}" of ${split} batch ${batch} is missing from the feature cache`);
    const stride = JSON.parse(e.extra.stride ?? 'null') as number | null;
    return { maps: { [level]: map }, imageSizes: JSON.parse(e.extra.imageSizes ?? 'null') as [number, number][] | null, strides: stride === null ? {} : { [level]: stride } };
  }
}

function isFeatureBatch(x: Record<string, Tensor> | FeatureBatch): x is FeatureBatch {
  return 'maps' in x && 'imageSizes' in x && 'strides' in x && Array.isArray((x as FeatureBatch).imageSizes);
}

/** The grid of one level: per-image sizes and stride (plain maps: the whole map at stride 1). */
function gridOf(f: Features, level: string, model: string): { sizes: [number, number][]; stride: number; map: Tensor } {
  const map = f.maps[level];
  if (!map || map.shape.length !== 4) throw new MtpdError('ERR_MTPD_DATA', `${model}: feature map "${level}" must be (N, C, H, W)`);
  const [n, , h, w] = map.shape as [number, number, number, number];
  if (f.imageSizes === null) return { sizes: Array.from({ length: n }, () => [h, w] as [number, number]), stride: 1, map };
  const stride = f.strides[level];
  if (stride === undefined) throw new MtpdError('ERR_MTPD_DATA', `${model}: no stride for feature map "${level}"`);
  if (f.imageSizes.length !== n) throw new MtpdError('ERR_MTPD_DATA', `${model}: ${f.imageSizes.length} image sizes for ${n} images`);
  return { sizes: f.imageSizes, stride, map };
}

/**
 * A's level-`level` maps of a split aligned onto B's grid, with B's valid cells, read batch by
 * batch from the bank. `streamed`: each batch is used up before the next is asked for (the
 * closed-form fit), so both models' maps are read into two reused buffers.
 */
function aligned(bank: FeatureBank, split: 'train' | 'val', count: number, level: string, names: [string, string], streamed: boolean, shard?: CostShard): FitSource {
  return {
    count,
    ...(shard ? { indices: ownBatches(count, shard) } : {}),
    batch: async (i) => {
      const ga = gridOf(await bank.get(names[0], split, i, level, streamed ? 'a' : undefined), level, names[0]);
      const gb = gridOf(await bank.get(names[1], split, i, level, streamed ? 'b' : undefined), level, names[1]);
      // aligned onto B's grid inside the native fit call (the same alignMap, no copies back)
      return { a: ga.map, b: gb.map, align: { sourceSizes: ga.sizes, sourceStride: ga.stride, targetSizes: gb.sizes, targetStride: gb.stride } };
    },
  };
}

export async function computeCostMatrix(
  models: FeatureSource[],
  trainBatches: Tensor[][] | ImageBatches,
  valBatches: Tensor[][] | ImageBatches,
  options: CostMatrixOptions = {},
): Promise<CostMatrix> {
  const names = models.map((m) => m.name);
  if (new Set(names).size !== names.length) throw new MtpdError('ERR_MTPD_CONFIG', `model names must be unique: ${names.join(', ')}`);
  if ((Array.isArray(trainBatches) && trainBatches.length === 0) || (Array.isArray(valBatches) && valBatches.length === 0)) throw new MtpdError('ERR_MTPD_DATA', 'the cost matrix needs at least one training and one validation batch');
  const pairsMode = options.pairs ?? 'bgs';
  if (pairsMode === 'bgs' && (options.student === undefined || !names.includes(options.student))) {
    throw new MtpdError('ERR_MTPD_CONFIG', `pairs "bgs" needs the student's name among the models (${names.join(', ')})`);
  }

  if (options.shard && (options.fitter ?? 'closed-form') !== 'closed-form') throw new MtpdError('ERR_MTPD_ARGUMENT', 'cost matrix: only the closed-form fitter can be sharded over processes');
  const dir = options.featureDir ?? (await mkdtemp(join(tmpdir(), 'mtpd-cost-features-')));
  try {
    return await costsThroughBank(new FeatureBank(dir), models, trainBatches, valBatches, options, names, pairsMode);
  } finally {
    if (options.featureDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

/** The batches of a split of `count` that process `rank` holds: rank, rank + worldSize, ... */
function ownBatches(count: number, shard: { rank: number; worldSize: number }): number[] {
  const out: number[] = [];
  for (let i = shard.rank; i < count; i += shard.worldSize) out.push(i);
  return out;
}

async function* batchesOf(b: Tensor[][] | ImageBatches): AsyncIterable<Tensor[]> {
  if (Array.isArray(b)) yield* b;
  else yield* b.batches();
}

async function costsThroughBank(
  bank: FeatureBank,
  models: FeatureSource[],
  trainBatches: Tensor[][] | ImageBatches,
  valBatches: Tensor[][] | ImageBatches,
  options: CostMatrixOptions,
  names: string[],
  pairsMode: 'bgs' | 'all',
): Promise<CostMatrix> {
  // 1. Features, once per model and batch, straight to disk.
  const t0 = Date.now();
  // Batches per split (known up front for arrays, counted on the first model's pass otherwise).
  const counts: Record<'train' | 'val', number | null> = {
    train: Array.isArray(trainBatches) ? trainBatches.length : null,
    val: Array.isArray(valBatches) ? valBatches.length : null,
  };
  const totalFeat = () => models.length * ((counts.train ?? 0) + (counts.val ?? 0));
  let doneFeat = 0;
  for (const m of models) {
    for (const [split, batches] of [['train', trainBatches], ['val', valBatches]] as const) {
      let i = 0;
      for await (const b of batchesOf(batches)) {
        // sharded: another process makes this batch's features
        if (options.shard && i % options.shard.worldSize !== options.shard.rank) {
          i++;
          continue;
        }
        const f = await m.features(b);
        await bank.put(m.name, split, i++, isFeatureBatch(f) ? { maps: f.maps, imageSizes: f.imageSizes, strides: f.strides } : { maps: f, imageSizes: null, strides: {} }, options.levels ?? null);
        options.onProgress?.({ phase: 'features', done: ++doneFeat, total: Math.max(totalFeat(), doneFeat), label: `${m.name} ${split}` });
      }
      if (counts[split] === null) counts[split] = i;
      if (counts[split] !== i) throw new MtpdError('ERR_MTPD_DATA', `${m.name}: ${i} ${split} batches, but the first model saw ${counts[split]} (the batches must repeat)`);
      if (i === 0) throw new MtpdError('ERR_MTPD_DATA', 'the cost matrix needs at least one training and one validation batch');
    }
  }
  const nTrain = counts.train as number;
  const nVal = counts.val as number;
  const tFeat = (Date.now() - t0) / 1000;

  // 2. The levels distilled, or every level the models share (sharded: the taps seen by any
  // process, for one with no batch of its own).
  const taps = new Map(bank.taps);
  if (options.shard) for (const part of await options.shard.allgather([...bank.taps])) for (const [n, t] of part) if (!taps.has(n)) taps.set(n, t);
  const tapsOf = (n: string) => taps.get(n) ?? [];
  const levels = options.levels ?? tapsOf(names[0] as string).filter((l) => names.every((n) => tapsOf(n).includes(l)));
  for (const l of levels) {
    const lacking = names.filter((n) => !tapsOf(n).includes(l));
    if (lacking.length) throw new MtpdError('ERR_MTPD_CONFIG', `level ${l} is not a feature map of ${lacking.join(', ')} (${lacking.map((n) => `${n}: ${tapsOf(n).join('/')}`).join('; ')})`);
  }
  if (levels.length === 0) {
    throw new MtpdError('ERR_MTPD_CONFIG', `the models share no feature level (${names.map((n) => `${n}: ${tapsOf(n).join('/')}`).join('; ')})`);
  }

  // 3. Pairs.
  const pairs: [string, string][] = [];
  for (const a of names)
    for (const b of names) {
      if (a === b) continue;
      if (pairsMode === 'bgs' && b === options.student) continue;
      pairs.push([a, b]);
    }

  const t1 = Date.now();
  const costs: CostTable['costs'] = Object.fromEntries(names.map((n) => [n, {}]));
  const perLevel: CostMatrix['perLevel'] = Object.fromEntries(names.map((n) => [n, {}]));
  const fit: LinearFitOptions = {};
  for (const k of ['fitter', 'ridge', 'optimizer', 'lr', 'momentum', 'steps', 'seed'] as const) {
    if (options[k] !== undefined) (fit as Record<string, unknown>)[k] = options[k];
  }
  let done = 0;
  for (const [a, b] of pairs) {
    let total = 0;
    const per: Record<string, number> = {};
    for (const level of levels) {
      const streamed = (fit.fitter ?? 'closed-form') === 'closed-form';
      const r = await fitLinearMapStreamed(aligned(bank, 'train', nTrain, level, [a, b], streamed, options.shard), aligned(bank, 'val', nVal, level, [a, b], streamed, options.shard), fit, options.shard);
      per[level] = r.valMse;
      total += r.valMse;
    }
    (costs[a] as Record<string, number>)[b] = total;
    (perLevel[a] as Record<string, Record<string, number>>)[b] = per;
    options.onProgress?.({ phase: 'fit', done: ++done, total: pairs.length, label: `${a} -> ${b}` });
  }
  return {
    models: Object.fromEntries(models.map((m) => [m.name, { ap: m.ap }])),
    costs,
    perLevel,
    levels,
    fitter: fit.fitter ?? 'closed-form',
    seconds: { features: tFeat, fit: (Date.now() - t1) / 1000 },
    computed: doneFeat,
  };
}
