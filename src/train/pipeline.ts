/**
 * The pipeline of `mtpd train`: the Run (its folder, checkpoints, metrics, log), the
 * step-skipping (every step is skipped when its result already exists in the run folder, so a
 * rerun or `--resume` continues where the last run stopped) and the report.
 *
 *   train (or load) each teacher -> train (or load) the off-the-shelf student -> evaluate all on
 *   val -> adaptation-cost matrix -> teacher order (BGS) -> the progressive curriculum
 *   (curriculum.ts), evaluated after every stage -> the baselines (baselines.ts) -> report.
 *
 * The student's setup (norm layer, trainable stages; student-setup.ts) is resolved once, before
 * anything trains, and used by every stage the student goes through.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { Config, ModelConfig } from '../config/schema.js';
import { writeSynthDataset } from '../data/synth.js';
import type { Detector } from '../detector.js';
import { MtpdError } from '../errors.js';
import { backwardGreedySelection, orderByAp } from '../order/bgs.js';
import { runCosts } from '../order/run-costs.js';
import { blasWarning, checkDevice, setThreads } from '../runtime.js';
import { Disposer } from '../dispose.js';
import { writeFileAtomic } from '../weights/atomic.js';
import { ampWarning } from './amp.js';
import { type Baseline, baselineStage, runBaseline } from './baselines.js';
import { CheckpointManager } from './checkpoint.js';
import { type Method, runCurriculum, type StagePlan, type StageRunner } from './curriculum.js';
import { type StageState, trainDetectionStage } from './detection.js';
import { bootstrapRun, evalPaths, fileNameOf, writeDetections } from './eval-cache.js';
import type { BootstrapResult } from '../eval/bootstrap.js';
import { formatSummaryMarkdown, formatSummaryTable } from '../report/summary.js';

export { fileNameOf };
import type { TrainEvent } from './loop.js';
import { MetricsLog } from './metrics.js';
import { buildModel, evaluateModel, openSplits, type Splits } from './models.js';
import { totalIterations } from './schedule.js';
import { jobBatch } from '../dist/train.js';
import { stageSeed } from './stage-seed.js';
import { TeacherCache } from './teacher-cache.js';
import { PhaseTimer } from './timing.js';
import { type Part, runParallelStages } from './parallel-stages.js';
import { formatStudentSetup, resolveStudentSetup, type StudentSetup } from './student-setup.js';
import { distEnv, endDist, fromMainRank, isMainRank, onMainRank } from '../dist/context.js';

export type { Baseline } from './baselines.js';

export interface TrainOptions {
  signal?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
  /** Continue an interrupted stage from its last complete checkpoint (finished steps are always skipped). */
  resume?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
  /** Times the run's phases (timing.ts); default: a new one. The run's table goes to timings.json. */
  timer?: PhaseTimer;
  /** Only this part of the run: the progressive curriculum, or one baseline (same budget as the curriculum). */
  only?: Part;
  /**
   * This process is one part (`only`) of a run with `jobs` > 1 (parallel-stages.ts): its checkpoints go in
   * <output>/parts/<only>; it writes no config.yaml, order.json or report, and logs only its stages.
   */
  part?: boolean;
}

export type PipelineEvent = TrainEvent | { type: 'phase'; phase: string; detail?: string } | { type: 'evaluated'; model: string; stats: number[] };

export interface ModelResult {
  name: string;
  role: 'teacher' | 'student' | 'stage' | 'baseline' | 'order';
  ap: number;
  stats: number[];
  /** A mask model's 12 COCO segm stats (mask AP first). */
  segm?: number[];
  weights: string;
  /** Stages and baselines: which method made this student. */
  method?: Method;
  /** Stages and baselines: teacher budgets (stage schedules) spent when it was made. */
  step?: number;
  /** Stages and baselines: the teachers it learned from (none for 'longer'). */
  teachers?: string[];
}

export interface TrainReport {
  output: string;
  order: string[];
  results: ModelResult[];
  aborted: boolean;
  /** The student's setup, used in every stage it went through. */
  student?: { name: string } & StudentSetup;
  /** k progressive stages of `stageIterations` steps; every baseline is one schedule of k x that. */
  budget?: { stages: number; stageIterations: number };
  /** The paired bootstrap of the final table's student rows over the validation images (null: their detections were missing). */
  spreads?: BootstrapResult | null;
  /** The same bootstrap of the mask (segm) detections, for a mask student (null: missing). */
  maskSpreads?: BootstrapResult | null;
}

export const STATS_HEAD = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'];

/** Mask AP columns of a table (mask models: segm AP, AP50, AP75). */
export const MASK_HEAD = ['mAP', 'mAP50', 'mAP75'];

/** The COCO table of a set of results (bbox; and mask AP when a model has masks). */
export function formatResults(results: ModelResult[]): string {
  const w = Math.max(5, ...results.map((r) => r.name.length));
  const masks = results.some((r) => r.segm);
  const pct = (v: number | undefined) => (v === undefined || v < 0 ? '   -' : (100 * v).toFixed(1)).padStart(6);
  const maskCells = (r: ModelResult) => (masks ? ` ${[0, 1, 2].map((i) => pct(r.segm?.[i])).join(' ')}` : '');
  const head = `${'model'.padEnd(w)}  ${'role'.padEnd(8)}  ${STATS_HEAD.map((h) => h.padStart(6)).join(' ')}${masks ? ` ${MASK_HEAD.map((h) => h.padStart(6)).join(' ')}` : ''}`;
  const rows = results.map((r) => `${r.name.padEnd(w)}  ${r.role.padEnd(8)}  ${r.stats.slice(0, 6).map(pct).join(' ')}${maskCells(r)}`);
  return [head, '-'.repeat(head.length), ...rows].join('\n');
}

/** The method of a result: its `method` field, else its name's prefix (reports of older runs). */
function methodOf(r: ModelResult): Method | null {
  if (r.method) return r.method;
  const m = /^(mtpd|longer|direct|ensemble)(\d|-|$)/.exec(r.name);
  return m ? (m[1] as Method) : null;
}

/** A row of the final table: a model of the run, what it is, its stats, whether it shows a gain. */
export interface RunSummaryRow {
  name: string;
  what: string;
  method: Method | 'teacher' | 'student';
  stats: number[];
  /** Mask models: the segm stats. */
  segm?: number[];
  gain: boolean;
}

/**
 * The rows of the final table: the teachers, the off-the-shelf student, then the student after
 * each baseline and after the last stage of progressive distillation, each named by its run
 * (longer-2x, direct-<teacher>, ensemble-<a>+<b>, mtpd<k>-<teacher>).
 */
export function runSummaryRows(report: TrainReport): RunSummaryRow[] {
  const rows: RunSummaryRow[] = [];
  const lastOf = (method: Method) => report.results.filter((r) => r.role !== 'teacher' && r.role !== 'student' && methodOf(r) === method).at(-1);
  const segm = (r: ModelResult) => (r.segm ? { segm: r.segm } : {});
  for (const r of report.results.filter((x) => x.role === 'teacher')) rows.push({ name: r.name, what: 'teacher', method: 'teacher', stats: r.stats, ...segm(r), gain: false });
  const ots = report.results.find((x) => x.role === 'student');
  if (ots) rows.push({ name: ots.name, what: 'student, off-the-shelf', method: 'student', stats: ots.stats, ...segm(ots), gain: false });
  const k = report.budget?.stages ?? report.order.length;
  const budget = k > 0 ? `, one ${k}x schedule` : '';
  const methods: [Method, (r: ModelResult) => string][] = [
    ['longer', () => `trained longer${budget}`],
    ['direct', (r) => `direct from ${r.teachers?.[0] ?? report.order.at(-1) ?? '?'}${budget}`],
    ['ensemble', (r) => `mean of ${report.order.filter((t) => !r.teachers || r.teachers.includes(t)).join(' + ')} maps${budget}`],
    ['mtpd', () => `progressive: ${report.order.join(' -> ')}`],
  ];
  for (const [method, what] of methods) {
    const r = lastOf(method);
    if (r) rows.push({ name: r.name, what: what(r), method, stats: r.stats, ...segm(r), gain: true });
  }
  return rows;
}

/** The final table of a run with the AP gain over the off-the-shelf student (no spreads). */
export function formatRunSummary(report: TrainReport): string {
  const rows = runSummaryRows(report);
  const ots = rows.find((r) => r.method === 'student');
  const base = ots?.stats[0] ?? NaN;
  const maskBase = ots?.segm?.[0] ?? NaN;
  const masks = rows.some((r) => r.segm);
  const nw = Math.max(5, ...rows.map((r) => r.name.length));
  const ww = Math.max(4, ...rows.map((r) => r.what.length));
  const pct = (v: number | undefined) => (v === undefined || v < 0 ? '   -' : (100 * v).toFixed(1)).padStart(6);
  const gainOf = (v: number | undefined, b: number) => {
    if (v === undefined || !Number.isFinite(b)) return '';
    const d = Math.round(1000 * (v - b)) / 10;
    return `${d > 0 ? '+' : ''}${d.toFixed(1)}`;
  };
  const head = `${'model'.padEnd(nw)}  ${'what'.padEnd(ww)}  ${STATS_HEAD.map((h) => h.padStart(6)).join(' ')}  ${'vs OTS'.padStart(6)}${masks ? `  ${'mAP'.padStart(6)}  ${'mask vs OTS'.padStart(11)}` : ''}`;
  const lines = rows.map((r) => {
    const gain = r.gain ? gainOf(r.stats[0], base) : '';
    const mask = masks ? `  ${pct(r.segm?.[0])}  ${(r.gain ? gainOf(r.segm?.[0], maskBase) : '').padStart(11)}` : '';
    return `${r.name.padEnd(nw)}  ${r.what.padEnd(ww)}  ${r.stats.slice(0, 6).map(pct).join(' ')}  ${gain.padStart(6)}${mask}`;
  });
  return [head, '-'.repeat(head.length), ...lines].join('\n');
}

/**
 * The paired bootstrap of the final table's student rows, from the detections the run kept
 * (`iouType` segm: of their masks; a mask student's detections carry them).
 */
export function bootstrapRunSummary(report: TrainReport, valAnnotations: string, resamples = 1000, iouType: 'bbox' | 'segm' = 'bbox'): BootstrapResult {
  const students = runSummaryRows(report).filter((r) => r.method !== 'teacher' && (iouType === 'bbox' || r.segm));
  return bootstrapRun(report.output, valAnnotations, students.map((r) => r.name), { resamples, iouType });
}

/**
 * The final table with spreads (`bootstrap` from bootstrapRunSummary; null: without intervals): every student row with a 95% paired-bootstrap interval over the
 * validation images (from the detections the run kept), the gain over the off-the-shelf student
 * with its interval, and one plain line per comparison of the methods (progressive against each
 * baseline, each baseline against training longer) saying whether the difference is real.
 */
export function formatRunSummaryWithSpreads(report: TrainReport, bootstrap: BootstrapResult | null, options: { markdown?: boolean; maskBootstrap?: BootstrapResult | null } = {}): string {
  const rows = runSummaryRows(report);
  const by = (m: RunSummaryRow['method']) => rows.find((r) => r.method === m)?.name;
  const label: Record<string, string> = { mtpd: 'progressive', direct: 'direct', ensemble: 'ensemble', longer: 'longer', student: 'off-the-shelf' };
  const pairs: [Method | 'student', Method | 'student'][] = [
    ['mtpd', 'direct'],
    ['mtpd', 'ensemble'],
    ['mtpd', 'longer'],
    ['direct', 'ensemble'],
    ['direct', 'longer'],
    ['ensemble', 'longer'],
    ['longer', 'student'],
  ];
  const comparisons = pairs.flatMap(([a, b]) => {
    const na = by(a), nb = by(b);
    return na && nb ? [{ a: na, b: nb, label: `${label[a]} vs ${label[b]}` }] : [];
  });
  const input = {
    rows: rows.map((r) => ({ label: r.method === 'teacher' || r.method === 'student' ? `${r.what} ${r.name}` : r.what, model: r.name, stats: r.stats, ...(r.segm ? { segm: r.segm } : {}), gain: r.gain })),
    bootstrap,
    maskBootstrap: options.maskBootstrap ?? report.maskSpreads ?? null,
    ...(by('student') ? { reference: by('student') as string } : {}),
    gainHeader: 'vs OTS',
    comparisons,
  };
  return options.markdown ? formatSummaryMarkdown(input) : formatSummaryTable(input);
}


/** What a stage needs from the run beyond its plan: the data and the resolved config (trained weights, the student's setup). */
export interface StageContext {
  splits: Splits;
  resolved: Config;
}

export class Run {
  readonly checkpoints: CheckpointManager;
  readonly metrics: MetricsLog;
  readonly log: (line: string) => void;
  /** Wall and CPU time of each phase this run went through (timing.ts). */
  readonly times: PhaseTimer;

  constructor(
    readonly config: Config,
    readonly options: TrainOptions = {},
  ) {
    this.checkpoints = new CheckpointManager(options.part && options.only ? join(config.output, 'parts', options.only) : config.output, config.checkpoint.keep);
    this.metrics = new MetricsLog(join(config.output, 'metrics.jsonl'));
    // Data-parallel: rank 0 speaks for the job (the others fail loudly through their errors).
    this.log = isMainRank() ? (options.log ?? ((s) => process.stderr.write(`${s}\n`))) : () => undefined;
    this.times = options.timer ?? new PhaseTimer(this.log);
  }

  path(...p: string[]): string {
    return join(this.config.output, ...p);
  }

  event(e: PipelineEvent): void {
    this.options.onEvent?.(e);
  }

  /** The last complete checkpoint when it belongs to `stage` and the run resumes, else null. */
  private async resumePoint(stage: string) {
    const last = this.options.resume ? await this.checkpoints.loadLast() : null;
    if (!last || (last.state as StageState | null)?.stage !== stage) return null;
    // The manifest's checksums catch corruption, not a state.json rewritten with its checksum:
    // iter -7 ran 9 steps of a 2-step stage.
    const st = last.state as Partial<StageState>;
    const count = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
    if (!count(st.total, 1) || !count(st.iter, 0) || (st.iter as number) > (st.total as number) || typeof st.loader !== 'object' || st.loader === null) {
      throw new MtpdError('ERR_MTPD_CONFIG', `${join(last.dir, 'state.json')}: not a stage state: needs integers 0 <= iter <= total and a loader position, got iter ${JSON.stringify(st.iter)}, total ${JSON.stringify(st.total)}`);
    }
    return last;
  }

  /**
   * Trains a model of the config unless its weights exist; returns the weights path. The
   * student (a config with its setup) trains with that setup; a teacher with trainable
   * BatchNorm and every stage trainable.
   */
  async ensureTrained(m: ModelConfig, splits: Splits): Promise<string> {
    if (m.weights) {
      if (!existsSync(m.weights)) throw new MtpdError('ERR_MTPD_CONFIG', `${m.name}: weights file ${m.weights} does not exist`);
      return m.weights;
    }
    const out = this.path('models', `${fileNameOf(m.name)}.safetensors`);
    if (existsSync(out)) return out;
    const stage = `train:${m.name}`;
    this.event({ type: 'phase', phase: stage });
    const seed = stageSeed(this.config.seed, stage);
    await using det = await buildModel(m, this.config, splits, { loadWeights: false, seed });
    const r = await this.times.time(`train ${m.name}`, async () => trainDetectionStage({
      stage,
      det,
      splits,
      config: this.config,
      schedule: m.train ?? this.config.schedule,
      checkpoints: this.checkpoints,
      metrics: this.metrics,
      signal: this.options.signal,
      onEvent: (e) => this.event(e),
      resume: await this.resumePoint(stage),
      quiet: this.options.quiet ?? false,
      seed,
      log: this.log,
      isStudent: m.name === this.config.student.name,
    }));
    if (!r.completed) throw new MtpdError('ERR_MTPD_ABORTED', `${stage}: stopped at step ${r.iter}; a checkpoint was saved (resume with --resume)`);
    await onMainRank(`${stage}: saving ${out}`, async () => {
      await mkdir(this.path('models'), { recursive: true });
      await det.saveWeights(out, { 'mtpd.arch': m.arch, 'mtpd.stage': stage });
    });
    return out;
  }

  private teacherMaps: TeacherCache | null | undefined;

  /** The run's teacher maps in <output>/features, shared by every stage (null: distill.cacheGiB 0). */
  teacherCache(splits: Splits): TeacherCache | null {
    if (this.teacherMaps === undefined) {
      const gib = this.config.distill.cacheGiB;
      this.teacherMaps = gib > 0 ? new TeacherCache(this.path('features'), gib * 2 ** 30, splits.train.annotationFile) : null;
    }
    return this.teacherMaps;
  }

  /** The cached evaluation of `name` when it was made from these very weights (stats and detections, eval-cache.ts). */
  cachedResult(name: string, weights: string): ModelResult | null {
    const cache = evalPaths(this.config.output, name);
    if (!existsSync(cache.stats) || !existsSync(cache.detections)) return null;
    const r = JSON.parse(readFileSync(cache.stats, 'utf8')) as ModelResult;
    return r.weights === weights ? r : null;
  }

  async evaluate(name: string, det: Detector, splits: Splits, role: ModelResult['role'], weights: string, extra: Pick<ModelResult, 'method' | 'step' | 'teachers'> = {}): Promise<ModelResult> {
    const cached = this.cachedResult(name, weights);
    if (cached) return { ...cached, role, ...extra };
    const cache = evalPaths(this.config.output, name);
    const s = await this.times.time(`eval ${name}`, () => evaluateModel(det, splits, this.config, undefined, { distributed: true }));
    const r: ModelResult = { name, role, ap: s.stats[0] as number, stats: s.stats, ...(s.segm ? { segm: s.segm.stats } : {}), weights, ...extra };
    await onMainRank(`${name}: saving its evaluation`, async () => {
      await mkdir(this.path('eval'), { recursive: true });
      await writeDetections(cache.detections, s.detections);
      await writeFileAtomic(cache.stats, [Buffer.from(JSON.stringify(r))]);
    });
    this.event({ type: 'evaluated', model: name, stats: s.stats });
    this.log(`${name}: AP ${(100 * r.ap).toFixed(1)}${r.segm ? `, mask AP ${(100 * (r.segm[0] as number)).toFixed(1)}` : ''}`);
    return r;
  }

  /**
   * One stage of the student (a progressive stage, a baseline, a node of `mtpd orders`) from the
   * weights `from`: skipped when its model exists (only evaluated, from the cache when it can),
   * else trained (continuing its checkpoint with --resume), saved and evaluated. The student is
   * built with the run's setup; the stage gets its own seed from its name. null: stopped.
   */
  async stage(plan: StagePlan, from: string, ctx: StageContext): Promise<ModelResult | null> {
    const { splits, resolved } = ctx;
    const out = this.path('models', `${fileNameOf(plan.name)}.safetensors`);
    const extra = { method: plan.method, step: plan.step, teachers: plan.teachers };
    if (existsSync(out)) {
      const cached = this.cachedResult(plan.name, out);
      if (cached) return { ...cached, role: plan.role, ...extra };
      await using det = await buildModel({ ...resolved.student, weights: out }, resolved, splits);
      return await this.evaluate(plan.name, det, splits, plan.role, out, extra);
    }
    this.event({ type: 'phase', phase: plan.name });
    const seed = stageSeed(resolved.seed, plan.name);
    // Everything the stage builds (the student, its teachers) is freed when it ends, however it
    // ends: native memory stays flat from stage to stage instead of waiting for V8's collector.
    await using models = new Disposer();
    const student = models.add(await buildModel({ ...resolved.student, weights: from }, resolved, splits, { seed }));
    const common = {
      stage: plan.name,
      splits,
      config: resolved,
      schedule: plan.schedule,
      checkpoints: this.checkpoints,
      metrics: this.metrics,
      signal: this.options.signal,
      onEvent: (e: TrainEvent) => this.event(e),
      resume: await this.resumePoint(plan.name),
      quiet: this.options.quiet ?? false,
      seed,
      log: this.log,
    };
    const r = await this.times.time(`train ${plan.name}`, async () => {
      if (plan.kind === 'detect') return await trainDetectionStage({ ...common, det: student, isStudent: true });
      const { trainDistillStage } = await import('./distill-stage.js');
      const teachers = [];
      for (const t of plan.teachers) {
        const tc = resolved.teachers.find((x) => x.name === t);
        if (!tc) throw new MtpdError('ERR_MTPD_CONFIG', `${plan.name}: unknown teacher "${t}"`);
        teachers.push({ name: t, det: models.add(await buildModel(tc, resolved, splits)) });
      }
      return await trainDistillStage({ ...common, student, teachers, teacherCache: this.teacherCache(splits), ...(plan.ensemble ? { ensemble: plan.ensemble } : {}) });
    });
    if (!r.completed) return null;
    await onMainRank(`${plan.name}: saving ${out}`, async () => {
      await mkdir(this.path('models'), { recursive: true });
      await student.saveWeights(out, { 'mtpd.stage': plan.name, 'mtpd.teachers': plan.teachers.join('+'), 'mtpd.from': basename(from) });
    });
    // Evaluated as the saved model loaded afresh would be (a resumed run evaluates it so): a
    // model that infers its RoI pooler scales infers them again from the evaluation's first batch.
    student.setRoiScales([]);
    return await this.evaluate(plan.name, student, splits, plan.role, out, extra);
  }
}

/** Makes the demo dataset in data.root when the config asks for it (data.synth) and it is missing. */
export async function ensureDataset(config: Config, run: Pick<Run, 'event' | 'log'>): Promise<void> {
  const synth = config.data.synth;
  if (!synth || existsSync(join(config.data.root, config.data.train.annotations))) return;
  run.event({ type: 'phase', phase: 'data', detail: `writing the demo dataset to ${config.data.root}` });
  run.log(`making the demo dataset in ${config.data.root}`);
  await onMainRank('making the demo dataset', () => writeSynthDataset({ out: config.data.root, images: synth.images, valImages: synth.valImages, size: synth.size, seed: synth.seed, difficulty: synth.difficulty }));
}

/**
 * Runs the pipeline up to the teacher order: the student's setup resolved, teachers and the
 * off-the-shelf student trained or loaded and evaluated, costs, order. What comes after (the
 * curriculum, the baselines, the ordering study) runs stages through `run.stage`.
 */
export async function prepareRun(config: Config, options: TrainOptions = {}) {
  setThreads(config.threads);
  // What can be known before any training: the device exists, and every teacher's FPN can be
  // matched to the student's.
  checkDevice(config.device);
  // The student's setup, once, before the off-the-shelf stage gives it weights.
  const setup = resolveStudentSetup(config.student);
  const resolved: Config = structuredClone(config);
  Object.assign(resolved.student, setup);
  if (!options.part) await onMainRank('writing config.yaml', async () => {
    await mkdir(config.output, { recursive: true });
    await writeFileAtomic(join(config.output, 'config.yaml'), [Buffer.from(toYaml(resolved))]);
  });
  const run = new Run(resolved, options);
  const slow = blasWarning();
  if (slow) run.log(`warning: ${slow}`);
  const ampSlow = ampWarning(resolved);
  if (ampSlow) run.log(`warning: ${ampSlow}`);
  run.log(`student ${resolved.student.name}: ${formatStudentSetup(setup)} in every stage${config.student.norm === 'auto' || config.student.trainableLayers === 'auto' ? ` (auto: ${config.student.weights === null ? 'trained from scratch here' : 'starts from given weights'})` : ''}`);
  await ensureDataset(config, run);
  const splits = await run.times.time('open the dataset', () => openSplits(config));
  await run.times.time('check the level pairs', () => checkPairs(resolved, splits));

  // Teachers and the off-the-shelf student.
  const all = [resolved.student, ...resolved.teachers];
  for (const m of all) m.weights = await run.ensureTrained(m, splits);

  // Evaluate everyone.
  run.event({ type: 'phase', phase: 'evaluate' });
  const results: ModelResult[] = [];
  for (const m of all) {
    const role = m === resolved.student ? 'student' : 'teacher';
    const weights = m.weights as string;
    const cached = run.cachedResult(m.name, weights);
    if (cached) {
      results.push(cached);
      continue;
    }
    await using det = await buildModel(m, resolved, splits);
    results.push(await run.evaluate(m.name, det, splits, role, weights));
  }

  // Costs and order.
  let order: string[];
  if (resolved.order.method === 'given') order = [...(resolved.order.given ?? [])];
  else if (resolved.order.method === 'ap') {
    const table = { models: Object.fromEntries(results.map((r) => [r.name, { ap: r.ap }])), costs: {} };
    order = orderByAp(table, resolved.student.name, resolved.order.k);
  } else {
    const costsFile = run.path('costs.json');
    // Rank 0's view of the run folder decides, for every rank.
    if (!(await fromMainRank('looking for costs.json', () => existsSync(costsFile)))) {
      run.event({ type: 'phase', phase: 'costs' });
      // (a data-parallel job: every rank computes its shard of the features and fits; rank 0 writes costs.json)
      await run.times.time('cost matrix', () => runCosts(resolved, { log: run.log, aps: Object.fromEntries(results.map((r) => [r.name, r.ap])) }));
    }
    order = await fromMainRank('the teacher order', () => {
      const table = JSON.parse(readFileSync(costsFile, 'utf8')) as { models: Record<string, { ap: number }>; costs: Record<string, Record<string, number>> };
      return backwardGreedySelection(table, resolved.student.name, resolved.order.k).order;
    });
  }
  if (order.length === 0) throw new MtpdError('ERR_MTPD_CONFIG', 'order: the teacher order is empty (order.given needs at least one teacher)');
  if (!options.part) await onMainRank('writing order.json', () => writeFileAtomic(run.path('order.json'), [Buffer.from(JSON.stringify({ order }))]));
  run.log(`teacher order: ${order.join(' -> ')}`);
  const stageIterations = totalIterations(resolved.schedule, splits.train.length, jobBatch(resolved));
  return { run, splits, resolved, results, order, setup, stageIterations };
}

/** Every teacher shares FPN levels (and config.distill.levels) with the student; errors name the teacher. */
async function checkPairs(config: Config, data: Splits): Promise<void> {
  const { sharedLevels } = await import('./distill-stage.js');
  await using student = await buildModel(config.student, config, data, { loadWeights: false });
  for (const t of config.teachers) {
    await using det = await buildModel(t, config, data, { loadWeights: false });
    try {
      sharedLevels(student, det, config);
    } catch (err) {
      throw new MtpdError('ERR_MTPD_CONFIG', `teacher ${t.name} cannot be distilled into student ${config.student.name}: ${(err as Error).message}`);
    }
  }
}

/**
 * The whole pipeline: the progressive curriculum in the chosen order, then the baselines of the
 * config (or only `only`), each one schedule of the curriculum's whole budget. In a
 * data-parallel job (initDist) every rank leaves the job when the training is done, before rank 0
 * writes the report; the other ranks return the same results without spreads.
 */
export async function train(config: Config, options: TrainOptions = {}): Promise<TrainReport> {
  // A part process (parallel-stages.ts) re-reads what the parent prepared without a word; its stages log.
  const prep = await prepareRun(config, options.part ? { ...options, log: () => undefined, timer: new PhaseTimer() } : options);
  const { splits, resolved, results, order, setup, stageIterations } = prep;
  const run = options.part ? new Run(resolved, options) : prep.run;
  const ots = resolved.student.weights as string;
  let aborted = false;
  if (!options.only && resolved.jobs > 1) {
    if ((distEnv()?.worldSize ?? 1) > 1) throw new MtpdError('ERR_MTPD_CONFIG', `jobs: ${resolved.jobs} parts at once cannot run inside a data-parallel job (set jobs to 1, or drop --nproc)`);
    const parts = runParts(order, resolved, stageIterations);
    const threads = Math.max(1, Math.floor((resolved.threads > 0 ? resolved.threads : availableParallelism()) / resolved.jobs));
    run.log(`jobs: ${parts.map((p) => p.part).join(', ')} in ${Math.min(resolved.jobs, parts.length)} processes at once, ${threads} thread${threads === 1 ? '' : 's'} each`);
    const r = await run.times.time(`stages (${resolved.jobs} jobs)`, () =>
      runParallelStages({
        config,
        parts: parts.map((p) => p.part),
        jobs: resolved.jobs,
        threads,
        resume: options.resume ?? false,
        ...(options.signal ? { signal: options.signal } : {}),
        log: run.log,
        onEvent: (e) => run.event(e as PipelineEvent),
      }),
    );
    for (const p of r.phases) run.times.addProcess(`${p.part} (its own process)`, p.total);
    aborted = r.aborted;
  }
  const runStage: StageRunner = async (plan, from) => {
    const r = await run.stage(plan, from, { splits, resolved });
    if (!r) {
      aborted = true;
      return null;
    }
    results.push(r);
    run.log(`\n${formatResults(results)}\n`);
    return r;
  };

  if (!aborted && (!options.only || options.only === 'curriculum')) await runCurriculum(order, ots, resolved.schedule, runStage);
  const baselines = options.only ? (options.only === 'curriculum' ? [] : [options.only]) : resolved.baselines;
  for (const b of baselines) {
    if (aborted) break;
    const r = await runBaseline(b, order, ots, resolved.schedule, stageIterations, runStage);
    if (r === 'skipped') run.log(`${b}: skipped (the order has one teacher: the ensemble would be direct distillation)`);
  }
  const report: TrainReport = {
    output: resolved.output,
    order,
    results,
    aborted,
    student: { name: resolved.student.name, ...setup },
    budget: { stages: order.length, stageIterations },
  };
  // The report is rank 0's (the other ranks return the same results without spreads). The job
  // ends here for every rank together (a last barrier; the group closes), before rank 0 alone
  // bootstraps the table and draws the plots: on a large validation set that takes longer than a
  // collective may wait, and the other ranks would fail at their final barrier after a good run.
  if (options.part) return report;
  const main = isMainRank();
  await endDist(true);
  if (!main) return report;
  report.spreads = await run.times.time('bootstrap', async () => runSpreads(report, splits.val.annotationFile, run.log));
  if (results.some((r) => r.role === 'student' && r.segm)) report.maskSpreads = await run.times.time('bootstrap (masks)', async () => runSpreads(report, splits.val.annotationFile, run.log, 'segm'));
  await writeFileAtomic(run.path('report.json'), [Buffer.from(JSON.stringify(report, null, 1))]);
  const md = [
    '# mtpd report',
    '',
    `teacher order: ${order.join(' -> ')}`,
    '',
    `student ${resolved.student.name}: ${formatStudentSetup(setup)} in every stage`,
    '',
    `budget: ${order.length} progressive stage${order.length === 1 ? '' : 's'} of ${stageIterations} steps; each baseline one schedule of ${order.length * stageIterations} steps`,
    '',
    report.spreads ? formatRunSummaryWithSpreads(report, report.spreads, { markdown: true }) : ['```', formatRunSummary(report), '```'].join('\n'),
    '',
    'every model:',
    '',
    '```',
    formatResults(results),
    '```',
    '',
  ].join('\n');
  await writeFileAtomic(run.path('report.md'), [Buffer.from(md)]);
  await run.times.time('plots', () => writeReportPlots(run, results).catch((err: unknown) => run.log(`plots: ${(err as Error).message}`)));
  await writeFileAtomic(run.path('timings.json'), [Buffer.from(`${JSON.stringify(run.times.toJSON(), null, 1)}\n`)]);
  run.log(`\ntime per phase:\n${run.times.table()}\n`);
  return report;
}

/** The bootstrap of the final table once per run (report.json, report.md, the demo); null when the detections to bootstrap are missing. */
function runSpreads(report: TrainReport, valAnnotations: string, log: (s: string) => void, iouType: 'bbox' | 'segm' = 'bbox'): BootstrapResult | null {
  try {
    return bootstrapRunSummary(report, valAnnotations, 1000, iouType);
  } catch (err) {
    log(`report: no bootstrap intervals (${(err as Error).message})`);
    return null;
  }
}

async function writeReportPlots(run: Run, results: ModelResult[]): Promise<void> {
  const { lineSpec, lossPanelsSpec, writePlot } = await import('../report/plot.js');
  const { splitLosses } = await import('../report/losses.js');
  // Detection and distillation losses apart: the total is dominated by distillation.
  const parts = splitLosses(run.metrics.read());
  if (parts.detection.length || parts.scratch.length) await writePlot(run.path('loss'), lossPanelsSpec(parts));
  // AP against the teacher budget spent: the curriculum stage by stage, each baseline at its
  // whole budget, every series starting at the off-the-shelf student.
  const ots = results.find((r) => r.role === 'student');
  const staged = results.filter((r) => (r.role === 'stage' || r.role === 'baseline') && r.step !== undefined);
  const series = (r: ModelResult) => (r.method === 'mtpd' ? 'progressive' : r.name);
  const names = [...new Set(staged.map(series))];
  const pts = [...staged.map((r) => ({ x: r.step as number, y: 100 * r.ap, series: series(r) })), ...(ots ? names.map((s) => ({ x: 0, y: 100 * ots.ap, series: s })) : [])];
  if (pts.length) await writePlot(run.path('ap'), lineSpec(pts, { title: 'Validation AP against the teacher budget', x: 'stage budgets', y: 'AP', integerX: true }));
}

/**
 * The independent parts of a run (the curriculum, each baseline), each with a rough cost for
 * starting the longest first: its steps times one plus the teachers it runs per step.
 */
function runParts(order: string[], config: Config, stageIterations: number): { part: Part; weight: number }[] {
  const k = order.length;
  const parts: { part: Part; weight: number }[] = [{ part: 'curriculum', weight: k * stageIterations * 2 }];
  for (const b of config.baselines) {
    const plan = baselineStage(b, order, config.schedule, stageIterations);
    if (plan) parts.push({ part: b, weight: k * stageIterations * (1 + plan.teachers.length) });
  }
  return parts.sort((x, y) => y.weight - x.weight);
}
