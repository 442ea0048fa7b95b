/**
 * `mtpd cost`: the adaptation-cost matrix of a config's student and teachers on its data, written
 * to the run folder as costs.json (the input of `mtpd plan`) with a heatmap (PNG and SVG).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config, ModelConfig } from '../config/schema.js';
import { DataLoader } from '../data/loader.js';
import { dist, fromMainRank, isMainRank } from '../dist/context.js';
import type { Detector } from '../detector.js';
import { Disposer } from '../dispose.js';
import { MtpdError } from '../errors.js';
import { costHeatmapSpec, writePlot } from '../report/plot.js';
import type { Tensor } from '../tensor.js';
import { ampOn } from '../train/amp.js';
import { detectorInputs } from '../train/inputs.js';
import { runLevels } from '../train/levels.js';
import { buildModel, evaluateModel, openSplits, type Splits } from '../train/models.js';
import { writeFileAtomic } from '../weights/atomic.js';
import { backwardGreedySelection } from './bgs.js';
import { type CostMatrix, type CostShard, computeCostMatrix, type FeatureSource, type ImageBatches } from './cost-matrix.js';

export interface CostRunOptions {
  fitters?: ('closed-form' | 'sgd')[];
  /** Validation AP of every model when already known (the pipeline evaluates them first). */
  aps?: Record<string, number>;
  log?: (line: string) => void;
}

export interface CostRunResult {
  matrices: Record<string, CostMatrix>;
  order: string[];
  files: string[];
}

interface ApCache {
  [name: string]: { ap: number; stats: number[]; weights: string; bytes: number; mtimeMs: number };
}

/** AP of every model on the validation split, cached in <output>/models.json by weights file. */
export async function modelAps(config: Config, splits: Splits, models: { cfg: ModelConfig; det: Detector }[], log: (s: string) => void): Promise<Record<string, number>> {
  const cacheFile = join(config.output, 'models.json');
  const cache: ApCache = existsSync(cacheFile) ? (JSON.parse(readFileSync(cacheFile, 'utf8')) as ApCache) : {};
  const out: Record<string, number> = {};
  for (const { cfg, det } of models) {
    const w = cfg.weights as string;
    const st = statSync(w);
    const hit = cache[cfg.name];
    if (hit && hit.weights === w && hit.bytes === st.size && hit.mtimeMs === st.mtimeMs) {
      out[cfg.name] = hit.ap;
      continue;
    }
    const t0 = Date.now();
    // (a data-parallel job: each process predicts its part, rank 0 scores them)
    const summary = await evaluateModel(det, splits, config, undefined, { distributed: true });
    out[cfg.name] = summary.stats[0] as number;
    cache[cfg.name] = { ap: summary.stats[0] as number, stats: summary.stats, weights: w, bytes: st.size, mtimeMs: st.mtimeMs };
    log(`evaluated ${cfg.name}: AP ${(summary.stats[0] as number).toFixed(4)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  if (isMainRank()) await writeFileAtomic(cacheFile, [Buffer.from(JSON.stringify(cache, null, 1))]);
  return out;
}

/** The loader's first batches up to `images` images, decoded anew on every pass (nothing kept in memory). */
function firstBatches(makeLoader: () => DataLoader, images: number): ImageBatches {
  return {
    async *batches() {
      const loader = makeLoader();
      let n = 0;
      try {
        for await (const b of loader.epoch()) {
          yield detectorInputs(b).images;
          n += b.imageIds.length;
          if (n >= images) break;
        }
      } finally {
        await loader.close();
      }
    },
  };
}

/** The job's processes as a cost-matrix shard (null for one process). */
export function costShard(): CostShard | null {
  const g = dist().group;
  if (!g || g.worldSize < 2) return null;
  return {
    rank: g.rank,
    worldSize: g.worldSize,
    sum: async (values) => {
      const [t] = await g.allreduce([{ dtype: 'float64', shape: [values.length], data: values }], 'cost matrix: summing the fits');
      return t?.data as Float64Array;
    },
    allgather: (value) => g.allgatherJson(value, 'cost matrix: the feature levels'),
  };
}

/**
 * The cost matrices of the config's fitters. In a data-parallel job every process runs this: the
 * closed-form fitter's features and fits are sharded over the processes (each gets the whole
 * matrix), the SGD fitter runs on rank 0 and the others get its matrix; rank 0 writes the files.
 */
export async function runCosts(config: Config, options: CostRunOptions = {}): Promise<CostRunResult> {
  const log = isMainRank() ? (options.log ?? ((s: string) => process.stderr.write(`${s}\n`))) : () => undefined;
  const all = [config.student, ...config.teachers];
  const missing = all.filter((m) => !m.weights);
  if (missing.length) {
    throw new MtpdError('ERR_MTPD_CONFIG', `mtpd cost needs trained models; ${missing.map((m) => m.name).join(', ')} ha${missing.length > 1 ? 've' : 's'} no weights (mtpd train trains missing models first)`);
  }
  await mkdir(config.output, { recursive: true });
  const splits = await openSplits(config);
  // Every model built here is freed when the costs are done (or fail).
  await using owned = new Disposer();
  const models: { cfg: ModelConfig; det: Detector }[] = [];
  for (const m of all) models.push({ cfg: m, det: owned.add(await buildModel(m, config, splits)) });
  const aps = options.aps ?? (await modelAps(config, splits, models, log));

  const c = config.order.costs;
  const bs = config.evaluation.batchSize;
  const train = firstBatches(() => new DataLoader(splits.train, { batchSize: bs, shuffle: true, seed: config.seed, train: false, resize: 'none', output: 'uint8', layout: 'hwc', workers: 0 }), c.trainImages);
  const val = firstBatches(() => new DataLoader(splits.val, { batchSize: bs, shuffle: false, train: false, resize: 'none', output: 'uint8', layout: 'hwc', workers: 0 }), c.valImages);
  for (const { det } of models) await det.eval();
  // Mixed precision: the frozen models' forward passes under autocast (maps come back float32).
  const amp = ampOn(config);
  // Maps with where each image lies in them, so A's maps are aligned onto B's grid as the adapter does.
  const sources: FeatureSource[] = models.map(({ cfg, det }) => ({ name: cfg.name, ap: aps[cfg.name] as number, features: (imgs) => det.features(imgs, { layout: true, amp }) }));

  const [student, ...teachers] = models.map((m) => m.det);
  const levels = runLevels(student as Detector, teachers, config);
  const fitters = options.fitters ?? [c.fitter];
  const matrices: Record<string, CostMatrix> = {};
  const files: string[] = [];
  const shard = costShard();
  // The maps stream through an on-disk cache in the run folder (removed when done), one per process.
  const featureDir = join(config.output, shard ? `.cost-features-rank${shard.rank}` : '.cost-features');
  for (const fitter of fitters) {
    const sharded = shard !== null && fitter === 'closed-form';
    if (shard && !sharded) log(`${fitter}: the cost matrix runs on rank 0 (this fitter cannot be sharded over processes)`);
    const compute = () => computeCostMatrix(sources, train, val, {
      featureDir,
      ...(sharded && shard ? { shard } : {}),
      pairs: 'all',
      student: config.student.name,
      // The levels distilled: the cost is measured on what is distilled (paired by stride, levels.ts).
      levels,
      fitter,
      ridge: c.ridge ?? -1,
      optimizer: c.optimizer,
      lr: c.lr,
      steps: c.steps,
      seed: config.seed,
      onProgress: (e) => {
        if (e.done === e.total) log(`${fitter}: ${e.phase} done (${e.total})`);
      },
    });
    let m: CostMatrix;
    try {
      m = shard && !sharded ? await fromMainRank(`cost matrix (${fitter})`, compute) : await compute();
    } finally {
      await rm(featureDir, { recursive: true, force: true });
    }
    matrices[fitter] = m;
    log(`${fitter}: features ${m.seconds.features.toFixed(1)} s, fits ${m.seconds.fit.toFixed(1)} s over ${m.levels.length} levels${sharded && shard ? ` (sharded over ${shard.worldSize} processes)` : ''}`);
    if (!isMainRank()) continue;
    const name = fitters.length > 1 && fitter !== c.fitter ? `costs.${fitter}` : 'costs';
    const path = join(config.output, `${name}.json`);
    const body = { models: m.models, costs: m.costs, perLevel: m.perLevel, levels: m.levels, fitter: m.fitter, seconds: m.seconds };
    await writeFileAtomic(path, [Buffer.from(`${JSON.stringify(body, null, 1)}\n`)]);
    const plot = await writePlot(join(config.output, name), costHeatmapSpec(all.map((x) => x.name), m.costs, `Adaptation cost d(A -> B), ${fitter}`));
    files.push(path, plot.png, plot.svg);
  }
  const main = matrices[c.fitter] ?? (Object.values(matrices)[0] as CostMatrix);
  const order = backwardGreedySelection(main, config.student.name, config.order.k).order;
  return { matrices, order, files };
}

/** Spearman rank correlation of two fitters' costs over the same pairs. */
export function rankAgreement(a: CostMatrix, b: CostMatrix): number {
  const pairs: [number, number][] = [];
  for (const [x, row] of Object.entries(a.costs)) for (const [y, v] of Object.entries(row)) {
    const w = b.costs[x]?.[y];
    if (w !== undefined) pairs.push([v, w]);
  }
  const rank = (vals: number[]) => {
    const idx = vals.map((v, i) => [v, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(vals.length);
    idx.forEach(([, i], k) => (r[i] = k));
    return r;
  };
  const ra = rank(pairs.map((p) => p[0]));
  const rb = rank(pairs.map((p) => p[1]));
  const n = pairs.length;
  if (n < 2) return 1;
  const d2 = ra.reduce((s, v, i) => s + (v - (rb[i] as number)) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}
