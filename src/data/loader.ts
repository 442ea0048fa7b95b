/**
 * The input pipeline: seeded shuffling, batches prepared ahead of the trainer (in worker threads
 * when `workers > 0`), and an exact, resumable position.
 *
 * Determinism: the order of epoch e is a permutation drawn from the loader RNG whose state at the
 * start of that epoch is `position.rngState`; each sample's augmentation (flip, training min size)
 * comes from an RNG derived from (that state, position in epoch). Nothing depends on which thread
 * prepares a sample or when, so results are identical for any worker count, and a loader created
 * with a saved `position` continues exactly where the saved run stopped.
 *
 * Targets: boxes float32 [K, 4] xyxy in input (resized) pixels; labels int64 [K] contiguous 0..C-1
 * (0 is a real class, no background label); masks uint8 [K, h, w] at the resized, unpadded size.
 * Crowd annotations are not in training targets.
 */
import { availableParallelism } from 'node:os';
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { BadDataLog } from './baddata.js';
import type { CocoDataset } from './coco.js';
import { prepareSample, type PreparedSample, type SampleJob } from './pipeline.js';
import { WorkerPool, siblingUrl } from './pool.js';
import { Rng, deriveRng, type RngState } from './rng.js';
import { batchImages } from './transforms.js';

export interface LoaderPosition {
  /** Epoch number (0-based). */
  epoch: number;
  /** Samples of this epoch already handed out (the next batch starts here). */
  index: number;
  /** Loader RNG state at the start of this epoch. */
  rngState: RngState;
}

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default false). */
  dropLast?: boolean;
  /** Worker threads (default: cores - 1, at most 4, and 0 on machines with 2 cores or fewer; 0 prepares samples on this thread). */
  workers?: number;
  /** Batches prepared ahead (default 2). */
  prefetch?: number;
  /** Training augmentation: random flips and random choice among minSize values (default true). */
  train?: boolean;
  /** Probability of a horizontal flip when training (default 0.5). */
  flipProb?: number;
  /** torchvision's min_size: one value or several (multi-scale training; evaluation uses the last). Default 800. */
  minSize?: number | number[];
  /** torchvision's max_size (default 1333). */
  maxSize?: number;
  /** 'torchvision' (default) or 'none' (keep the image size). */
  resize?: 'torchvision' | 'none';
  /** 'float32' normalized (default) or 'uint8' 0..255 unnormalized. */
  output?: 'float32' | 'uint8';
  /**
   * 'chw' (default): batches (N, C, Hp, Wp); 'hwc': (N, Hp, Wp, C), each image the decoder's
   * buffer as it is, flipped by the decoder (uint8 with resize 'none' only; no JavaScript loop
   * over pixels: what the detectors take, converting on their compute thread).
   */
  layout?: 'chw' | 'hwc';
  /** Include instance masks in targets (default false). */
  masks?: boolean;
  /** Pad batches to a multiple of this (default 32). */
  stride?: number;
  /** Resume from a saved position. */
  position?: LoaderPosition;
  /**
   * Data-parallel sharding (a distributed sampler): batchSize is then the batch of all ranks
   * together, the loader's order and position are those of the whole job, and each batch hands
   * this rank only its contiguous part of it (the parts as even as they can be). A position saved
   * by any rank resumes any number of ranks on the same samples.
   */
  shard?: { rank: number; worldSize: number };
}

export interface Target {
  boxes: Tensor<'float32'>;
  labels: Tensor<'int64'>;
  masks?: Tensor<'uint8'>;
}

export interface LoaderBatch {
  epoch: number;
  /** Position in the epoch of the first sample of this batch. */
  index: number;
  /** The loader position after this batch (save it to resume after this batch). */
  next: LoaderPosition;
  /** (N, C, Hp, Wp), or (N, Hp, Wp, C) with layout 'hwc'. */
  images: Tensor<'float32'> | Tensor<'uint8'>;
  /** Layout of `images`. */
  layout: 'chw' | 'hwc';
  /** [h, w] per image after resizing, before padding. */
  imageSizes: [number, number][];
  /** [h, w] per image as decoded. */
  originalSizes: [number, number][];
  imageIds: number[];
  datasetIndices: number[];
  flipped: boolean[];
  targets: Target[];
  /** Samples of this batch skipped as bad data (badData: 'skip'). */
  skipped: number;
  /** Milliseconds `next()` waited for this batch to be ready (0 when prefetching keeps up). */
  waitMs: number;
  /**
   * This rank's share of the job's batch: its samples / the batch's samples over all ranks (1
   * without sharding). 0: the job's batch had fewer samples than ranks and this rank got a copy of
   * one of them to keep in step; its gradient must count for nothing.
   */
  shareWeight: number;
}

interface EpochPlan {
  epoch: number;
  state: RngState;
  order: Int32Array;
  next: RngState;
}

function checkInt(name: string, v: unknown, lo: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo) throw new MtpdError('ERR_MTPD_CONFIG', `loader: ${name} must be an integer >= ${lo}, got ${JSON.stringify(v)}`);
  return v;
}

export class DataLoader {
  private readonly opts: Required<Omit<LoaderOptions, 'position' | 'minSize' | 'shard'>> & { minSizes: number[] };
  private readonly pool: WorkerPool<SampleJob, PreparedSample> | null;
  private readonly plans = new Map<number, EpochPlan>();
  private consumed: LoaderPosition;
  private scheduled: { epoch: number; index: number };
  private readonly queue: { epoch: number; index: number; end: number; weight: number; promise: Promise<PreparedSample[]> }[] = [];
  private readonly shard: { rank: number; worldSize: number };
  private closed = false;
  readonly bad: BadDataLog;

  constructor(
    readonly dataset: CocoDataset,
    options: LoaderOptions,
  ) {
    const minSizes = Array.isArray(options.minSize) ? options.minSize : [options.minSize ?? 800];
    // Worker threads pay for themselves only with cores to spare: sharp already decodes off the
    // main thread, and on 2 cores the trainer needs the other one.
    const cores = availableParallelism();
    const defaultWorkers = cores > 2 ? Math.min(4, cores - 1) : 0;
    this.opts = {
      batchSize: checkInt('batchSize', options.batchSize, 1),
      shuffle: options.shuffle ?? true,
      seed: checkInt('seed', options.seed ?? 0, 0),
      dropLast: options.dropLast ?? false,
      workers: checkInt('workers', options.workers ?? defaultWorkers, 0),
      prefetch: checkInt('prefetch', options.prefetch ?? 2, 1),
      train: options.train ?? true,
      flipProb: options.flipProb ?? 0.5,
      minSizes: minSizes.map((m, i) => checkInt(`minSize[${i}]`, m, 1)),
      maxSize: checkInt('maxSize', options.maxSize ?? 1333, 1),
      resize: options.resize ?? 'torchvision',
      output: options.output ?? 'float32',
      layout: options.layout ?? 'chw',
      masks: options.masks ?? false,
      stride: checkInt('stride', options.stride ?? 32, 1),
    };
    if (minSizes.length === 0) throw new MtpdError('ERR_MTPD_CONFIG', 'loader: minSize needs at least one value');
    if (!(this.opts.flipProb >= 0 && this.opts.flipProb <= 1)) throw new MtpdError('ERR_MTPD_CONFIG', `loader: flipProb must be in [0, 1], got ${this.opts.flipProb}`);
    if (this.opts.resize !== 'torchvision' && this.opts.resize !== 'none') throw new MtpdError('ERR_MTPD_CONFIG', `loader: resize must be 'torchvision' or 'none', got ${JSON.stringify(this.opts.resize)}`);
    if (this.opts.output !== 'float32' && this.opts.output !== 'uint8') throw new MtpdError('ERR_MTPD_CONFIG', `loader: output must be 'float32' or 'uint8', got ${JSON.stringify(this.opts.output)}`);
    if (this.opts.layout !== 'chw' && this.opts.layout !== 'hwc') throw new MtpdError('ERR_MTPD_CONFIG', `loader: layout must be 'chw' or 'hwc', got ${JSON.stringify(this.opts.layout)}`);
    if (this.opts.layout === 'hwc' && (this.opts.output !== 'uint8' || this.opts.resize !== 'none')) {
      throw new MtpdError('ERR_MTPD_CONFIG', `loader: layout 'hwc' needs output 'uint8' and resize 'none' (got output '${this.opts.output}', resize '${this.opts.resize}')`);
    }
    if (dataset.length === 0) throw new MtpdError('ERR_MTPD_DATA', `${dataset.annotationFile}: the dataset has no images`);
    if (this.opts.dropLast && dataset.length < this.opts.batchSize) {
      throw new MtpdError('ERR_MTPD_CONFIG', `loader: dropLast with batchSize ${this.opts.batchSize} leaves no batch from ${dataset.length} images`);
    }
    this.bad = dataset.bad;
    this.shard = options.shard ?? { rank: 0, worldSize: 1 };
    checkInt('shard.worldSize', this.shard.worldSize, 1);
    checkInt('shard.rank', this.shard.rank, 0);
    if (this.shard.rank >= this.shard.worldSize) throw new MtpdError('ERR_MTPD_CONFIG', `loader: shard.rank ${this.shard.rank} must be below shard.worldSize ${this.shard.worldSize}`);
    const pos = options.position;
    if (pos) {
      checkInt('position.epoch', pos.epoch, 0);
      checkInt('position.index', pos.index, 0);
      new Rng(pos.rngState); // validates
      if (pos.index > dataset.length) throw new MtpdError('ERR_MTPD_CONFIG', `loader: position.index ${pos.index} is past the ${dataset.length} images of the dataset`);
      this.consumed = { epoch: pos.epoch, index: pos.index, rngState: [...pos.rngState] as RngState };
    } else {
      this.consumed = { epoch: 0, index: 0, rngState: new Rng(this.opts.seed).getState() };
    }
    this.plans.set(this.consumed.epoch, this.plan(this.consumed.epoch, this.consumed.rngState));
    this.scheduled = { epoch: this.consumed.epoch, index: this.consumed.index };
    this.pool = this.opts.workers > 0 ? new WorkerPool(siblingUrl(import.meta.url, 'loader_worker'), this.opts.workers) : null;
  }

  /** Number of batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.length;
    return this.opts.dropLast ? Math.floor(n / this.opts.batchSize) : Math.ceil(n / this.opts.batchSize);
  }

  /** Where the next batch handed out starts (save with a checkpoint). */
  position(): LoaderPosition {
    return { epoch: this.consumed.epoch, index: this.consumed.index, rngState: [...this.consumed.rngState] as RngState };
  }

  private plan(epoch: number, state: RngState): EpochPlan {
    const rng = new Rng(state);
    const n = this.dataset.length;
    const order = this.opts.shuffle ? rng.permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
    return { epoch, state, order, next: rng.getState() };
  }

  private planOf(epoch: number): EpochPlan {
    let p = this.plans.get(epoch);
    if (!p) {
      const prev = this.planOf(epoch - 1);
      p = this.plan(epoch, prev.next);
      this.plans.set(epoch, p);
    }
    return p;
  }

  private epochEnd(): number {
    const n = this.dataset.length;
    return this.opts.dropLast ? n - (n % this.opts.batchSize) : n;
  }

  private job(plan: EpochPlan, position: number): SampleJob {
    const index = plan.order[position]!;
    const im = this.dataset.image(index);
    const t = this.dataset.targets(index, { segmentations: this.opts.masks });
    const o = this.opts;
    const rng = deriveRng(plan.state[0] ^ plan.state[1], plan.state[2], plan.state[3], position);
    const flip = o.train && rng.next() < o.flipProb;
    const minSize = o.train ? o.minSizes[rng.int(o.minSizes.length)]! : o.minSizes[o.minSizes.length - 1]!;
    return {
      position,
      index,
      imageId: im.id,
      path: im.path,
      width: im.width,
      height: im.height,
      boxes: t.boxes,
      labels: t.labels,
      segmentations: o.masks ? t.segmentations : null,
      flip,
      resize: o.resize,
      minSize,
      maxSize: o.maxSize,
      output: o.output,
      layout: o.layout,
    };
  }

  private fill(): void {
    while (this.queue.length < this.opts.prefetch) {
      let { epoch, index } = this.scheduled;
      if (index >= this.epochEnd()) {
        epoch++;
        index = 0;
      }
      const plan = this.planOf(epoch);
      const end = Math.min(index + this.opts.batchSize, this.epochEnd());
      const { from, to, weight } = this.part(index, end);
      const jobs: SampleJob[] = [];
      for (let p = from; p < to; p++) jobs.push(this.job(plan, p));
      const promise = Promise.all(jobs.map((j) => (this.pool ? this.pool.run(j) : prepareSample(j))));
      promise.catch(() => {}); // surfaced when the batch is taken
      this.queue.push({ epoch, index, end, weight, promise });
      this.scheduled = { epoch, index: end };
    }
  }

  /** This rank's contiguous part [from, to) of the job's batch [index, end), and its share. */
  private part(index: number, end: number): { from: number; to: number; weight: number } {
    const { rank, worldSize } = this.shard;
    const n = end - index;
    if (worldSize === 1) return { from: index, to: end, weight: 1 };
    const base = Math.floor(n / worldSize);
    const extra = n % worldSize;
    const from = index + rank * base + Math.min(rank, extra);
    const len = base + (rank < extra ? 1 : 0);
    // Fewer samples than ranks: a copy of the first keeps this rank in step, with no weight.
    if (len === 0) return { from: index, to: index + 1, weight: 0 };
    return { from, to: from + len, weight: len / n };
  }

  /** The next batch (crossing into the next epoch after the last batch of one). */
  async next(): Promise<LoaderBatch> {
    if (this.closed) throw new MtpdError('ERR_MTPD_DATA', 'loader is closed');
    const t0 = performance.now();
    for (;;) {
      this.fill();
      const item = this.queue.shift()!;
      const samples = await item.promise;
      this.fill(); // keep the pipeline full while this batch is collated and trained on
      const plan = this.planOf(item.epoch);
      const good: PreparedSample[] = [];
      for (const s of samples) {
        if (s.bad) this.bad.record(s.bad.kind, s.bad.message); // throws under badData: 'error'
        else good.push(s);
      }
      // advance the consumed position
      if (item.end >= this.epochEnd()) {
        const nextPlan = this.planOf(item.epoch + 1);
        this.consumed = { epoch: item.epoch + 1, index: 0, rngState: [...nextPlan.state] as RngState };
        for (const e of [...this.plans.keys()]) if (e < item.epoch) this.plans.delete(e);
      } else {
        this.consumed = { epoch: item.epoch, index: item.end, rngState: [...plan.state] as RngState };
      }
      if (good.length === 0) {
        // Every sample of this batch was skipped. Ranks of a job must take the same steps, so
        // a sharded loader cannot skip a batch on its own.
        if (this.shard.worldSize > 1) throw new MtpdError('ERR_MTPD_DATA', `loader: rank ${this.shard.rank}'s part of the batch at epoch ${item.epoch}, position ${item.index} is all bad data (${samples.length} sample(s) skipped); run \`mtpd data check\` and fix or drop those images`);
        continue;
      }
      return { ...this.collate(item.epoch, item.index, good, samples.length - good.length, performance.now() - t0), shareWeight: item.weight };
    }
  }

  /** The batches of the rest of the current epoch. */
  async *epoch(): AsyncGenerator<LoaderBatch> {
    const e = this.consumed.epoch;
    while (this.consumed.epoch === e) yield await this.next();
  }

  private collate(epoch: number, index: number, samples: PreparedSample[], skipped: number, waitMs: number): Omit<LoaderBatch, 'shareWeight'> {
    const imgs = samples.map((s) => s.image);
    const batch = this.opts.output === 'uint8' ? batchImages(imgs as { data: Uint8Array; height: number; width: number; channels: number }[], this.opts.stride, this.opts.layout) : batchImages(imgs as { data: Float32Array; height: number; width: number; channels: number }[], this.opts.stride);
    return {
      epoch,
      index,
      next: this.position(),
      images: batch.images,
      layout: this.opts.layout,
      imageSizes: batch.imageSizes,
      originalSizes: samples.map((s) => s.originalSize),
      imageIds: samples.map((s) => s.imageId),
      datasetIndices: samples.map((s) => s.index),
      flipped: samples.map((s) => s.flipped),
      targets: samples.map((s) => {
        const K = s.labels.length;
        const labels = new BigInt64Array(K);
        for (let k = 0; k < K; k++) labels[k] = BigInt(s.labels[k]!);
        const t: Target = { boxes: { dtype: 'float32', shape: [K, 4], data: s.boxes }, labels: { dtype: 'int64', shape: [K], data: labels } };
        if (s.masks) t.masks = { dtype: 'uint8', shape: [K, s.image.height, s.image.width], data: s.masks };
        return t;
      }),
      skipped,
      waitMs,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool?.close();
  }
}
