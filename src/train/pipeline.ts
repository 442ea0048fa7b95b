/**
 * The progressive curriculum (MTPD): every step is skipped when its result already exists in the
 * run folder, so a rerun or `--resume` continues where the last run stopped.
 *
 *   train (or load) each teacher -> train (or load) the off-the-shelf student -> evaluate all on
 *   val -> adaptation-cost matrix -> teacher order (BGS) -> distill stage by stage (each a full
 *   schedule with its LR restarting, the student carried over) -> evaluate after every stage ->
 *   report.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { Config, ModelConfig } from '../config/schema.js';
import { writeSynthDataset } from '../data/synth.js';
import type { Detector } from '../detector.js';
import { MtpdError } from '../errors.js';
import { backwardGreedySelection, orderByAp } from '../order/bgs.js';
import { runCosts } from '../order/run-costs.js';
import { blasWarning, checkDevice, setThreads } from '../runtime.js';
import { writeFileAtomic } from '../weights/atomic.js';
import { CheckpointManager } from './checkpoint.js';
import { type StageState, trainDetectionStage } from './detection.js';
import { evalPaths, writeDetections } from './eval-cache.js';
import type { TrainEvent } from './loop.js';
import { MetricsLog } from './metrics.js';
import { buildModel, evaluateModel, openSplits, type Splits } from './models.js';

export interface TrainOptions {
  signal?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
  /** Continue an interrupted stage from its last complete checkpoint (finished steps are always skipped). */
  resume?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
}

export type PipelineEvent = TrainEvent | { type: 'phase'; phase: string; detail?: string } | { type: 'evaluated'; model: string; stats: number[] };

export interface ModelResult {
  name: string;
  role: 'teacher' | 'student' | 'stage' | 'baseline';
  ap: number;
  stats: number[];
  weights: string;
}

export interface TrainReport {
  output: string;
  order: string[];
  results: ModelResult[];
  aborted: boolean;
}

export const STATS_HEAD = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'];

/** The COCO table of a set of results. */
export function formatResults(results: ModelResult[]): string {
  const w = Math.max(5, ...results.map((r) => r.name.length));
  const head = `${'model'.padEnd(w)}  ${'role'.padEnd(8)}  ${STATS_HEAD.map((h) => h.padStart(6)).join(' ')}`;
  const rows = results.map((r) => `${r.name.padEnd(w)}  ${r.role.padEnd(8)}  ${r.stats.slice(0, 6).map((v) => (v < 0 ? '   -' : (100 * v).toFixed(1)).padStart(6)).join(' ')}`);
  return [head, '-'.repeat(head.length), ...rows].join('\n');
}

/**
 * The final table of a run: the teachers, the off-the-shelf student, then the student after the
 * last stage of each method (the baselines and progressive distillation in the teacher order),
 * with the AP gain over the off-the-shelf student.
 */
export function formatRunSummary(report: TrainReport): string {
  const rows: { label: string; stats: number[] }[] = [];
  const lastOf = (prefix: string) => {
    const rs = report.results.filter((r) => new RegExp(`^${prefix}\\d+(-|$)`).test(r.name));
    return rs[rs.length - 1];
  };
  const strongest = report.order[report.order.length - 1] ?? '?';
  for (const r of report.results.filter((x) => x.role === 'teacher')) rows.push({ label: `teacher ${r.name}`, stats: r.stats });
  const ots = report.results.find((x) => x.role === 'student');
  if (ots) rows.push({ label: `student ${ots.name}, off-the-shelf`, stats: ots.stats });
  const methods: [string, string][] = [
    ['longer', 'student trained longer (same budget)'],
    ['direct', `direct distillation from ${strongest}`],
    ['ensemble', `ensemble of ${report.order.join(' + ')}`],
    ['mtpd', `progressive: ${report.order.join(' -> ')}`],
  ];
  for (const [prefix, label] of methods) {
    const r = lastOf(prefix);
    if (r) rows.push({ label, stats: r.stats });
  }
  const base = ots?.stats[0] ?? NaN;
  const w = Math.max(5, ...rows.map((r) => r.label.length));
  const pct = (v: number) => (v < 0 ? '   -' : (100 * v).toFixed(1)).padStart(6);
  const head = `${'model'.padEnd(w)}  ${STATS_HEAD.map((h) => h.padStart(6)).join(' ')}  ${'vs OTS'.padStart(6)}`;
  const lines = rows.map((r) => {
    const d = Math.round(1000 * ((r.stats[0] as number) - base)) / 10;
    const gain = r.label.startsWith('teacher') || r.stats === ots?.stats ? '' : `${d > 0 ? '+' : ''}${d.toFixed(1)}`;
    return `${r.label.padEnd(w)}  ${r.stats.slice(0, 6).map(pct).join(' ')}  ${gain.padStart(6)}`;
  });
  return [head, '-'.repeat(head.length), ...lines].join('\n');
}

export class Run {
  readonly checkpoints: CheckpointManager;
  readonly metrics: MetricsLog;
  readonly log: (line: string) => void;

  constructor(
    readonly config: Config,
    readonly options: TrainOptions = {},
  ) {
    this.checkpoints = new CheckpointManager(config.output, config.checkpoint.keep);
    this.metrics = new MetricsLog(join(config.output, 'metrics.jsonl'));
    this.log = options.log ?? ((s) => process.stderr.write(`${s}\n`));
  }

  path(...p: string[]): string {
    return join(this.config.output, ...p);
  }

  event(e: PipelineEvent): void {
    this.options.onEvent?.(e);
  }

  /** Trains a model of the config unless its weights exist; returns the weights path. */
  async ensureTrained(m: ModelConfig, splits: Splits): Promise<string> {
    if (m.weights) {
      if (!existsSync(m.weights)) throw new MtpdError('ERR_MTPD_CONFIG', `${m.name}: weights file ${m.weights} does not exist`);
      return m.weights;
    }
    const out = this.path('models', `${m.name}.safetensors`);
    if (existsSync(out)) return out;
    const stage = `train:${m.name}`;
    this.event({ type: 'phase', phase: stage });
    const det = await buildModel(m, this.config, splits.numClasses, { loadWeights: false });
    const last = this.options.resume ? await this.checkpoints.loadLast() : null;
    const resume = last && (last.state as StageState | null)?.stage === stage ? last : null;
    const r = await trainDetectionStage({
      stage,
      det,
      splits,
      config: this.config,
      schedule: m.train ?? this.config.schedule,
      checkpoints: this.checkpoints,
      metrics: this.metrics,
      signal: this.options.signal,
      onEvent: (e) => this.event(e),
      resume,
      quiet: this.options.quiet ?? false,
    });
    if (!r.completed) throw new MtpdError('ERR_MTPD_ABORTED', `${stage}: stopped at step ${r.iter}; a checkpoint was saved (resume with --resume)`);
    await mkdir(this.path('models'), { recursive: true });
    await det.saveWeights(out, { 'mtpd.arch': m.arch, 'mtpd.stage': stage });
    return out;
  }

  /** Evaluates a model on val unless eval/ holds its stats for these weights and its detections (eval-cache.ts); writes both. */
  async evaluate(name: string, det: Detector, splits: Splits, role: ModelResult['role'], weights: string): Promise<ModelResult> {
    const cache = evalPaths(this.config.output, name);
    if (existsSync(cache.stats) && existsSync(cache.detections)) {
      const r = JSON.parse(readFileSync(cache.stats, 'utf8')) as ModelResult;
      if (r.weights === weights) return r;
    }
    const s = await evaluateModel(det, splits, this.config);
    const r: ModelResult = { name, role, ap: s.stats[0] as number, stats: s.stats, weights };
    await mkdir(this.path('eval'), { recursive: true });
    await writeDetections(cache.detections, s.detections);
    await writeFileAtomic(cache.stats, [Buffer.from(JSON.stringify(r))]);
    this.event({ type: 'evaluated', model: name, stats: s.stats });
    this.log(`${name}: AP ${(100 * r.ap).toFixed(1)}`);
    return r;
  }
}

/** Makes the demo dataset in data.root when the config asks for it (data.synth) and it is missing. */
export async function ensureDataset(config: Config, run: Pick<Run, 'event' | 'log'>): Promise<void> {
  const synth = config.data.synth;
  if (!synth || existsSync(join(config.data.root, config.data.train.annotations))) return;
  run.event({ type: 'phase', phase: 'data', detail: `writing the demo dataset to ${config.data.root}` });
  run.log(`making the demo dataset in ${config.data.root}`);
  await writeSynthDataset({ out: config.data.root, images: synth.images, valImages: synth.valImages, size: synth.size, seed: synth.seed, difficulty: synth.difficulty });
}

/** Runs the pipeline up to the teacher order; distillation stages plug in through `distill`. */
export async function prepareRun(config: Config, options: TrainOptions = {}) {
  setThreads(config.threads);
  // What can be known before any training: the device exists, and every teacher's FPN can be
  // matched to the student's.
  checkDevice(config.device);
  await mkdir(config.output, { recursive: true });
  await writeFileAtomic(join(config.output, 'config.yaml'), [Buffer.from(toYaml(config))]);
  const run = new Run(config, options);
  const slow = blasWarning();
  if (slow) run.log(`warning: ${slow}`);
  await ensureDataset(config, run);
  const splits = await openSplits(config);
  await checkPairs(config, splits.numClasses);

  // Teachers and the off-the-shelf student.
  const resolved: Config = structuredClone(config);
  const all = [resolved.student, ...resolved.teachers];
  for (const m of all) m.weights = await run.ensureTrained(m, splits);

  // Evaluate everyone.
  run.event({ type: 'phase', phase: 'evaluate' });
  const results: ModelResult[] = [];
  for (const m of all) {
    const det = await buildModel(m, resolved, splits.numClasses);
    results.push(await run.evaluate(m.name, det, splits, m === resolved.student ? 'student' : 'teacher', m.weights as string));
  }

  // Costs and order.
  let order: string[];
  if (resolved.order.method === 'given') order = [...(resolved.order.given ?? [])];
  else if (resolved.order.method === 'ap') {
    const table = { models: Object.fromEntries(results.map((r) => [r.name, { ap: r.ap }])), costs: {} };
    order = orderByAp(table, resolved.student.name, resolved.order.k);
  } else {
    const costsFile = run.path('costs.json');
    if (!existsSync(costsFile)) {
      run.event({ type: 'phase', phase: 'costs' });
      await runCosts(resolved, { log: run.log, aps: Object.fromEntries(results.map((r) => [r.name, r.ap])) });
    }
    const table = JSON.parse(readFileSync(costsFile, 'utf8')) as { models: Record<string, { ap: number }>; costs: Record<string, Record<string, number>> };
    order = backwardGreedySelection(table, resolved.student.name, resolved.order.k).order;
  }
  await writeFileAtomic(run.path('order.json'), [Buffer.from(JSON.stringify({ order }))]);
  run.log(`teacher order: ${order.join(' -> ')}`);
  return { run, splits, resolved, results, order };
}

/** Every teacher shares FPN levels (and config.distill.levels) with the student; errors name the teacher. */
async function checkPairs(config: Config, numClasses: number): Promise<void> {
  const { sharedLevels } = await import('./distill-stage.js');
  const student = await buildModel(config.student, config, numClasses, { loadWeights: false });
  for (const t of config.teachers) {
    const det = await buildModel(t, config, numClasses, { loadWeights: false });
    try {
      sharedLevels(student, det, config);
    } catch (err) {
      throw new MtpdError('ERR_MTPD_CONFIG', `teacher ${t.name} cannot be distilled into student ${config.student.name}: ${(err as Error).message}`);
    }
  }
}

export type Baseline = 'longer' | 'direct' | 'ensemble';

/**
 * The whole pipeline: the progressive curriculum in the chosen order, then the baselines of the
 * config (or only `only`), each for the same total budget (one schedule per stage, k stages).
 */
export async function train(config: Config, options: TrainOptions & { only?: Baseline } = {}): Promise<TrainReport> {
  const { trainDistillStage } = await import('./distill-stage.js');
  const { run, splits, resolved, results, order } = await prepareRun(config, options);
  const studentCfg = resolved.student;
  const ots = studentCfg.weights as string;
  const stages = Math.max(1, order.length);
  let aborted = false;

  const stageRun = async (name: string, teachers: string[], from: string, kind: 'distill' | 'detect', role: ModelResult['role'], ensemble?: 'sum' | 'mean'): Promise<string | null> => {
    const out = run.path('models', `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.safetensors`);
    if (existsSync(out)) return out;
    run.event({ type: 'phase', phase: name });
    const student = await buildModel({ ...studentCfg, weights: from }, resolved, splits.numClasses);
    const last = options.resume ? await run.checkpoints.loadLast() : null;
    const resume = last && (last.state as StageState | null)?.stage === name ? last : null;
    const common = {
      stage: name,
      splits,
      config: resolved,
      schedule: resolved.schedule,
      checkpoints: run.checkpoints,
      metrics: run.metrics,
      signal: options.signal,
      onEvent: (e: TrainEvent) => run.event(e),
      resume,
      quiet: options.quiet ?? false,
    };
    let r;
    if (kind === 'detect') r = await trainDetectionStage({ ...common, det: student });
    else {
      const tdets = [];
      for (const t of teachers) {
        const tc = resolved.teachers.find((x) => x.name === t);
        if (!tc) throw new MtpdError('ERR_MTPD_CONFIG', `unknown teacher "${t}"`);
        tdets.push({ name: t, det: await buildModel(tc, resolved, splits.numClasses) });
      }
      r = await trainDistillStage({ ...common, student, teachers: tdets, ...(ensemble ? { ensemble } : {}) });
    }
    if (!r.completed) {
      aborted = true;
      return null;
    }
    await mkdir(run.path('models'), { recursive: true });
    await student.saveWeights(out, { 'mtpd.stage': name, 'mtpd.teachers': teachers.join('+') });
    const res = await run.evaluate(name, student, splits, role, out);
    results.push(res);
    run.log(`\n${formatResults(results)}\n`);
    return out;
  };

  if (!options.only) {
    // MTPD: one stage per teacher, in order, the student carried over.
    let current = ots;
    for (const [i, t] of order.entries()) {
      const next = await stageRun(`mtpd${i + 1}-${t}`, [t], current, 'distill', 'stage');
      if (!next) break;
      current = next;
    }
  }
  const baselines = options.only ? [options.only] : aborted ? [] : resolved.baselines;
  const strongest = order[order.length - 1] as string;
  for (const b of baselines) {
    if (aborted) break;
    let current = ots;
    for (let i = 0; i < stages; i++) {
      const name = `${b}${i + 1}`;
      const next =
        b === 'longer'
          ? await stageRun(name, [], current, 'detect', 'baseline')
          : b === 'direct'
            ? await stageRun(name, [strongest], current, 'distill', 'baseline')
            : await stageRun(name, order, current, 'distill', 'baseline', 'sum');
      if (!next) break;
      current = next;
    }
  }
  const report: TrainReport = { output: resolved.output, order, results, aborted };
  await writeFileAtomic(run.path('report.json'), [Buffer.from(JSON.stringify(report, null, 1))]);
  await writeFileAtomic(run.path('report.md'), [Buffer.from(`# mtpd report\n\nteacher order: ${order.join(' -> ')}\n\n\`\`\`\n${formatResults(results)}\n\`\`\`\n`)]);
  await writeReportPlots(run, results).catch((err: unknown) => run.log(`plots: ${(err as Error).message}`));
  return report;
}

async function writeReportPlots(run: Run, results: ModelResult[]): Promise<void> {
  const { lineSpec, writePlot } = await import('../report/plot.js');
  const recs = run.metrics.read().filter((r) => typeof r.iter === 'number' && typeof r.loss === 'number');
  const points = recs.map((r) => ({ x: r.iter as number, y: r.loss as number, series: String(r.stage) }));
  if (points.length) await writePlot(run.path('loss'), lineSpec(points, { title: 'Training loss per stage', x: 'step', y: 'loss', logY: true }));
  const staged = results.filter((r) => r.role === 'stage' || r.role === 'baseline' || r.role === 'student');
  const ap = staged.map((r) => {
    const m = /^(.*?)(\d+)(-.*)?$/.exec(r.name);
    const series = r.role === 'student' ? 'off-the-shelf' : m ? (m[1] as string) : r.name;
    return { x: r.role === 'student' ? 0 : m ? Number(m[2]) : 0, y: 100 * r.ap, series };
  });
  const ots = ap.find((p) => p.series === 'off-the-shelf');
  const series = [...new Set(ap.filter((p) => p.series !== 'off-the-shelf').map((p) => p.series))];
  const pts = [...ap.filter((p) => p.series !== 'off-the-shelf'), ...(ots ? series.map((s) => ({ ...ots, series: s })) : [])];
  if (pts.length) await writePlot(run.path('ap'), lineSpec(pts, { title: 'Validation AP after each stage', x: 'stage', y: 'AP', integerX: true }));
}
