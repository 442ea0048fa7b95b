/**
 * `mtpd analyze RUN` / `analyze(run, options)`: the paper's generalization analysis (section
 * 3.5, Figure 5) on a finished run folder. Per student of the run, the training detection loss
 * on a fixed training subset (eval mode) beside its validation AP (Figure 5a/b); around the
 * final progressive student and the student trained longer, 1-D and 2-D landscapes along
 * filter-normalized random directions with the same seeds (Figure 5c/d), the largest Hessian
 * eigenvalue and the mean loss increase at a fixed radius; a report saying whether the paper's
 * three observations hold. Everything lands in <RUN>/analysis/ (or `out`); measurements are
 * cached there, so a rerun only computes what changed.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MtpdError } from '../errors.js';
import { pairOf } from '../eval/bootstrap.js';
import { setThreads } from '../runtime.js';
import { bootstrapRun } from '../train/eval-cache.js';
import { MetricsLog } from '../train/metrics.js';
import { buildModel, openSplits } from '../train/models.js';
import { createProgress } from '../train/progress.js';
import { writeFileAtomic } from '../weights/atomic.js';
import { AnalysisCache } from './cache.js';
import { axis, landscape1d, landscape2d, type Landscape1D, type Landscape2D } from './landscape.js';
import { DetectionObjective } from './objective.js';
import { generalizationSpec, landscape1dSpec, landscape2dSpec, sharpnessSpec } from './plots.js';
import { type AnalysisResult, type ApComparison, formatAnalysisMarkdown, observations, type SharpnessMeasure, type StageMeasure } from './report.js';
import { openRunFolder, type RunStudent } from './run-folder.js';
import { radiusSharpness, topHessianEigenvalue } from './sharpness.js';
import { loadTrainSubset } from './subset.js';

export { isolines, type Segment } from './contour.js';
export { normalizeFilters, randomDirection } from './directions.js';
export { axis, landscape1d, landscape2d, type Landscape1D, type Landscape2D } from './landscape.js';
export { DetectionObjective } from './objective.js';
export { formatAnalysisMarkdown, observations, type AnalysisResult, type Observation } from './report.js';
export { powerIteration, radiusSharpness, topHessianEigenvalue, type PowerIterationResult, type RadiusSharpness } from './sharpness.js';
export { loadTrainSubset, type TrainSubset } from './subset.js';
export type { ParamVector, ParamShape } from './vector.js';

export interface AnalyzeOptions {
  /** Training images the losses are measured on (default 32). */
  subset?: number;
  /** The 2-D landscape is grid x grid points (default 9); the 1-D slice has 2 grid - 1. */
  grid?: number;
  /** The slices span α, β in [-extent, extent] (default 0.5; 1 = as large as each filter). */
  extent?: number;
  /** Radius of the mean loss increase (default 0.1) and its number of directions (default 8). */
  radius?: number;
  directions?: number;
  /** Seed of the subset draw and of every direction (default 0). */
  seed?: number;
  /** Power iteration: at most this many Hessian-vector products (default 10), relative tolerance (default 0.01). */
  iterations?: number;
  tol?: number;
  /** Images per forward pass (default: the run's evaluation batch size). */
  batchSize?: number;
  threads?: number;
  /** Output folder (default <run>/analysis). */
  out?: string;
  /** Only the per-stage table and Figure 5a/b: no landscapes or sharpness. */
  skipLandscape?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
}

function checkInt(name: string, v: number, lo: number): number {
  if (!Number.isInteger(v) || v < lo) throw new MtpdError('ERR_MTPD_ARGUMENT', `analyze: ${name} must be an integer >= ${lo}, got ${v}`);
  return v;
}

function checkPositive(name: string, v: number): number {
  if (!(Number.isFinite(v) && v > 0)) throw new MtpdError('ERR_MTPD_ARGUMENT', `analyze: ${name} must be a positive number, got ${v}`);
  return v;
}

export async function analyze(runDir: string, options: AnalyzeOptions = {}): Promise<AnalysisResult> {
  const o = {
    subset: checkInt('subset', options.subset ?? 32, 1),
    grid: checkInt('grid', options.grid ?? 9, 2),
    extent: checkPositive('extent', options.extent ?? 0.5),
    radius: checkPositive('radius', options.radius ?? 0.1),
    directions: checkInt('directions', options.directions ?? 8, 1),
    seed: checkInt('seed', options.seed ?? 0, 0),
    iterations: checkInt('iterations', options.iterations ?? 10, 1),
    tol: checkPositive('tol', options.tol ?? 0.01),
  };
  const log = options.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const quiet = options.quiet ?? false;
  const run = await openRunFolder(runDir);
  const config = run.config;
  setThreads(options.threads ?? config.threads);
  const out = options.out ?? join(run.dir, 'analysis');
  await mkdir(out, { recursive: true });
  const cache = new AnalysisCache(join(out, 'cache'));
  const batchSize = checkInt('batchSize', options.batchSize ?? config.evaluation.batchSize, 1);

  const splits = await openSplits(config);
  const subset = await loadTrainSubset(splits.train, { size: o.subset, seed: o.seed, batchSize });
  const subsetKey = { size: subset.size, seed: o.seed, batchSize, ids: subset.imageIds };
  log(`analyze ${run.dir}: ${run.students.length} students, training subset of ${subset.size} images (seed ${o.seed})`);

  const build = async (s: RunStudent) => buildModel({ ...config.student, weights: s.weights }, config, splits);
  const progress = (label: string, total: number) => createProgress(label, total, { quiet, every: Math.max(1, Math.round(total / 10)) });
  const timed = () => {
    const t0 = process.hrtime.bigint();
    return (done: number) => done / Math.max(1e-9, Number(process.hrtime.bigint() - t0) / 1e9);
  };

  // Figure 5a/b: every student's training detection loss (eval mode) and validation AP.
  const stages: StageMeasure[] = [];
  {
    const bar = progress('train loss', run.students.length);
    const rate = timed();
    for (const s of run.students) {
      const m = await cache.get(s.name, 'loss', s.weights, subsetKey, async () => {
        const obj = await DetectionObjective.create(await build(s), subset);
        return obj.loss();
      });
      stages.push({ name: s.name, method: s.method, budget: s.budget, ap: s.stats[0] as number, trainLoss: m.loss, trainTerms: m.terms });
      bar.update({ iter: stages.length, total: run.students.length, loss: m.loss, itPerSec: rate(stages.length), note: s.name });
    }
    bar.stop();
  }
  const pair = run.progressive && run.longer ? { progressive: run.progressive.name, longer: run.longer.name } : null;
  if (!pair) log('analyze: the run has no progressive student and longer baseline to compare; only the per-stage table is made');

  let apComparison: ApComparison | null = null;
  if (pair) {
    try {
      const b = bootstrapRun(run.dir, splits.val.annotationFile, [pair.progressive, pair.longer], { resamples: 1000, seed: 0 });
      const d = pairOf(b, pair.progressive, pair.longer);
      apComparison = { diff: d.diff[0] as number, lo: d.lo[0] as number, hi: d.hi[0] as number, above: d.above[0] as number, resamples: b.resamples };
    } catch (err) {
      log(`analyze: no bootstrap of the AP difference (${(err as Error).message})`);
    }
  }

  // Figure 5c/d and sharpness, around the two students of the pair.
  let landscape: AnalysisResult['landscape'] = null;
  let sharpness: AnalysisResult['sharpness'] = null;
  const lineAlphas = axis(o.extent, 2 * o.grid - 1);
  const planeAxis = axis(o.extent, o.grid);
  if (pair && !options.skipLandscape) {
    landscape = { line: {}, plane: {} };
    sharpness = {};
    for (const s of [run.progressive, run.longer] as RunStudent[]) {
      let obj: DetectionObjective | null = null;
      const objective = async () => (obj ??= await DetectionObjective.create(await build(s), subset));
      const line = await cache.get<Landscape1D>(s.name, 'line', s.weights, { subsetKey, seed: o.seed, alphas: lineAlphas }, async () => {
        const bar = progress(`${s.name} 1-D`, lineAlphas.length);
        const rate = timed();
        try {
          return await landscape1d(await objective(), { seed: o.seed, alphas: lineAlphas, onPoint: (d, n, l) => bar.update({ iter: d, total: n, loss: l, itPerSec: rate(d) }) });
        } finally {
          bar.stop();
        }
      });
      landscape.line[s.name] = line;
      const plane = await cache.get<Landscape2D>(s.name, 'plane', s.weights, { subsetKey, seeds: [o.seed, o.seed + 1], axis: planeAxis }, async () => {
        const total = planeAxis.length ** 2;
        const bar = progress(`${s.name} 2-D`, total);
        const rate = timed();
        try {
          return await landscape2d(await objective(), { seeds: [o.seed, o.seed + 1], alphas: planeAxis, betas: planeAxis, onPoint: (d, n, l) => bar.update({ iter: d, total: n, loss: l, itPerSec: rate(d) }) });
        } finally {
          bar.stop();
        }
      });
      landscape.plane[s.name] = plane;
      const radius = await cache.get(s.name, 'radius', s.weights, { subsetKey, radius: o.radius, count: o.directions, seed: o.seed + 1000 }, async () => {
        const bar = progress(`${s.name} radius ${o.radius}`, o.directions);
        const rate = timed();
        try {
          return await radiusSharpness(await objective(), { radius: o.radius, count: o.directions, seed: o.seed + 1000, onDirection: (k, inc) => bar.update({ iter: k, total: o.directions, loss: inc, itPerSec: rate(k) }) });
        } finally {
          bar.stop();
        }
      });
      const eig = await cache.get(s.name, 'hessian', s.weights, { subsetKey, iterations: o.iterations, tol: o.tol, seed: o.seed }, async () => {
        const bar = progress(`${s.name} λ_max`, o.iterations);
        const rate = timed();
        try {
          const r = await topHessianEigenvalue(await objective(), { iterations: o.iterations, tol: o.tol, seed: o.seed, onIteration: (k, l) => bar.update({ iter: k, total: o.iterations, loss: l, itPerSec: rate(k), note: `λ ${l.toPrecision(4)}` }) });
          return { eigenvalue: r.eigenvalue, iterations: r.iterations, converged: r.converged, history: r.history };
        } finally {
          bar.stop();
        }
      });
      sharpness[s.name] = { ...eig, radius } satisfies SharpnessMeasure;
      log(`${s.name}: train det loss ${line.losses[Math.floor(line.losses.length / 2)]?.toFixed(4)}, λ_max ${eig.eigenvalue.toPrecision(4)}, mean increase at r=${o.radius} ${radius.mean.toPrecision(4)}`);
    }
  }

  // Figures.
  const { writePlot, lossPanelsSpec } = await import('../report/plot.js');
  const { splitLosses } = await import('../report/losses.js');
  const plots: string[] = [];
  const series = (s: StageMeasure) => (s.method === 'mtpd' ? 'progressive' : s.method === 'student' ? null : s.name);
  const ots = stages.find((s) => s.method === 'student');
  const points = stages.flatMap((s) => {
    const name = series(s);
    return name ? [{ budget: s.budget, series: name, model: s.name, ap: s.ap, trainLoss: s.trainLoss }] : [];
  });
  if (ots) for (const name of new Set(points.map((p) => p.series))) points.push({ budget: 0, series: name, model: ots.name, ap: ots.ap, trainLoss: ots.trainLoss });
  const draw = async (name: string, spec: Parameters<typeof writePlot>[1]) => {
    try {
      await writePlot(join(out, name), spec);
      plots.push(`${name}.png`, `${name}.svg`);
    } catch (err) {
      log(`analyze: plot ${name}: ${(err as Error).message}`);
    }
  };
  if (points.length) await draw('generalization', generalizationSpec(points, subset.size));
  const parts = splitLosses(new MetricsLog(join(run.dir, 'metrics.jsonl')).read());
  if (parts.detection.length) await draw('detection-loss', lossPanelsSpec({ ...parts, scratch: [] }));
  if (pair && landscape && sharpness) {
    const label = (n: string) => (n === pair.progressive ? `${n} (progressive)` : `${n} (trained longer)`);
    await draw('landscape-1d', landscape1dSpec(Object.entries(landscape.line).map(([model, line]) => ({ model, label: label(model), line }))));
    await draw('landscape-2d', landscape2dSpec(Object.entries(landscape.plane).map(([model, plane]) => ({ label: label(model), plane }))));
    const short = (n: string) => (n === pair.progressive ? 'progressive' : 'trained longer');
    await draw('sharpness', sharpnessSpec(Object.entries(sharpness).map(([model, s]) => ({ label: short(model), eigenvalue: s.eigenvalue, radiusMean: s.radius.mean, radiusStd: s.radius.std })), o.radius, o.directions, `${pair.progressive} (progressive) vs ${pair.longer} (trained longer)`));
  }

  const result: AnalysisResult = {
    run: run.dir,
    out,
    subset: { size: subset.size, seed: o.seed, imageIds: subset.imageIds },
    options: { ...o, batchSize },
    stages,
    pair,
    landscape,
    sharpness,
    apComparison,
    observations: [],
    plots,
  };
  result.observations = observations(result);
  await writeFileAtomic(join(out, 'analysis.json'), [Buffer.from(JSON.stringify(result, null, 1))]);
  await writeFileAtomic(join(out, 'report.md'), [Buffer.from(formatAnalysisMarkdown(result))]);
  return result;
}
