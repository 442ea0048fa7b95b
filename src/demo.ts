/**
 * `mtpd demo`: the whole method on the built-in demo dataset, on a laptop's CPU.
 *
 * A narrow ResNet-18 student and a pool of teachers of rising capacity (a wider ResNet-18, a
 * ResNet-34 and a Swin-T), all RetinaNets with the same FPN levels. The pool and the off-the-shelf
 * student were trained ahead of time by `mtpd demo --retrain` (the very same code: it trains
 * them from scratch with the schedules in DEMO_POOL, writes half-precision copies to
 * `<out>/weights`, then runs the demo on those); the shipped copies live in the package's
 * `demo/weights`. The demo then runs `mtpd train`'s pipeline: evaluation of every model, the
 * adaptation-cost matrix, the BGS order, progressive distillation stage by stage, and the three
 * baselines for the same budget, and ends with one table.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config, ConfigInput } from './config/schema.js';
import { parseConfig } from './config/load.js';
import { MtpdError } from './errors.js';
import { packageRoot } from './native.js';
import { setThreads } from './runtime.js';
import { buildModel, openSplits } from './train/models.js';
import { ensureDataset, formatRunSummaryWithSpreads, Run, type TrainOptions, type TrainReport, train } from './train/pipeline.js';
import { PhaseTimer } from './train/timing.js';
import { saveSafetensors } from './weights/index.js';
import { float32ToFloat16Bits, type Tensor } from './tensor.js';

/** How the pool is trained by --retrain (from scratch, trainable BatchNorm). */
const POOL_SCHEDULE = { optimizer: 'adamw', lr: 1e-3, weightDecay: 0.05, warmupIterations: 100, policy: 'cosine', clipGradNorm: 10 } as const;

/**
 * The paper's heterogeneous-resolution setting (its Student IV, its largest gain), small: a narrow
 * ResNet-18 student that sees the images at low resolution (short side 96 px), and a pool made of
 * the same architecture seen at rising resolutions (128, 160, 192 px), as the paper's Student IV
 * (Mask R-CNN R50 at 0.25x) is taught by its own architecture at 0.5x, 0.75x and 1x. The teacher is trained once,
 * multi-scale over those resolutions, so each pool entry is the same weights at its own input size;
 * the student's maps are aligned onto each teacher's grid by the adapters. GroupNorm heads and the
 * same anchors (16-256) for every model: with half-size anchors (8-128) the 96 px student trained
 * to 15.8 AP in 8000 steps, with these to 30.4 in 2500 (the paper's 1x, 12.5 epochs) and 45.6 in 8000.
 */
export const DEMO_POOL = {
  student: { name: 'r18-w025', arch: 'retinanet_resnet18_fpn', widthMult: 0.25, minSize: 96, maxSize: 128, iterations: 2500, anchors: [16, 32, 64, 128, 256] },
  teachers: [{ name: 'r18-w025-hr', short: 'hr', arch: 'retinanet_resnet18_fpn', widthMult: 0.25, minSizes: [128, 160, 192], maxSize: 256, iterations: 6000, anchors: [16, 32, 64, 128, 256] }],
} as const;

/**
 * `mtpd demo --task instance`: the same setting with a Mask R-CNN student (ResNet-18 x0.25 at
 * 96 px, box and mask heads narrowed with the width, RPN anchors 16-256 over p2..p6) taught by the
 * demo's RetinaNet pool (hr128, hr160, hr192): distillation touches only the FPN maps, the levels
 * of equal stride (p3, p4, p5; see src/train/levels.ts), and the student keeps its RPN, box and
 * mask heads. Its off-the-shelf weights are trained by --retrain (task instance) with the pool's
 * recipe and ship as half precision beside the RetinaNets.
 */
export const DEMO_INSTANCE = {
  student: { name: 'mrcnn-r18-w025', arch: 'maskrcnn_resnet18_fpn', widthMult: 0.25, minSize: 96, maxSize: 128, iterations: 1500, anchors: [16, 32, 64, 128, 256] },
  /**
   * The demo run (not --retrain, which keeps the recipe that made the shipped student): RPN and
   * RoI sampling scaled to 96 x 128 px images with a few objects each, as a detectron2 user does
   * for a small dataset (its tutorial sets ROI_HEADS.BATCH_SIZE_PER_IMAGE 128 for "this toy
   * dataset"). torchvision's 2000/2000 train and 1000/1000 test proposals are about every anchor
   * of the ~3000 over p2..p6 here, and 512 RoIs per image put up to 128 positives a batch through
   * the mask head: a step cost 2.8 CPU-s, 0.4 with these; an evaluation of the 200 validation
   * images 101 CPU-s, 11 with these, at the same box and mask AP (within 0.1; README).
   */
  runOptions: {
    rpn_pre_nms_top_n_train: 300,
    rpn_post_nms_top_n_train: 150,
    rpn_pre_nms_top_n_test: 300,
    rpn_post_nms_top_n_test: 100,
    box_batch_size_per_image: 64,
  },
  /** Steps per distillation stage (each baseline gets the curriculum's whole budget) and the baselines, to fit the 10-minute budget. */
  iterations: 150,
  baselines: ['longer', 'direct'],
} as const;

/** Which demo: RetinaNet students (detection, the default) or a Mask R-CNN student (instance). */
export type DemoTask = 'detection' | 'instance';

/** The demo's validation images; its training images are DEMO_DATA.images. */
export const DEMO_DATA = { images: 800, valImages: 200, size: 192, seed: 0, difficulty: 'clear' } as const;

type PoolModel = (typeof DEMO_POOL.teachers)[number] | typeof DEMO_POOL.student | typeof DEMO_INSTANCE.student;
type ModelInput = ConfigInput['teachers'][number];

export interface DemoOptions extends Pick<TrainOptions, 'signal' | 'onEvent' | 'quiet' | 'resume'> {
  /** Working folder: data/, run/, weights/ (default ./mtpd-demo). */
  out?: string;
  /** Train the pool and the off-the-shelf student here first instead of using the shipped weights. */
  retrain?: boolean;
  /** Intra-op threads (0: all cores). */
  threads?: number;
  /** With retrain: train only these pool models and stop (spreads --retrain over processes). */
  retrainOnly?: string[];
  /** The pool's weights (default: the shipped demo/weights). */
  weightsDir?: string;
  /** detection (default): RetinaNet students; instance: the Mask R-CNN student (box and mask AP). */
  task?: DemoTask;
  log?: (line: string) => void;
}

/** Where the shipped weights are: the package's demo/weights. */
export function shippedWeightsDir(): string {
  return join(packageRoot, 'demo', 'weights');
}

/** The student of a demo task (the Mask R-CNN of `--task instance` has RPN anchors of one size per level). */
function demoStudent(task: DemoTask, weights: (m: PoolModel) => string | null, run: boolean): ConfigInput['student'] {
  const s = task === 'instance' ? DEMO_INSTANCE.student : DEMO_POOL.student;
  return {
    name: s.name,
    arch: s.arch,
    widthMult: s.widthMult,
    minSize: s.minSize,
    maxSize: s.maxSize,
    weights: weights(s),
    // The shipped students were trained from scratch with trainable BatchNorm and every stage
    // trainable; every later stage keeps that setup (not 'auto', which would freeze a given student).
    norm: 'bn' as const,
    trainableLayers: 5,
    // RetinaNet's head has GroupNorm (torchvision's v2 head); Mask R-CNN's options take no head_norm.
    options: task === 'instance' ? { anchor_sizes: [...s.anchors], ...(run ? DEMO_INSTANCE.runOptions : {}) } : { anchor_sizes: [...s.anchors], head_norm: 'gn' },
    train: { ...POOL_SCHEDULE, iterations: s.iterations },
  };
}

/** The names of a demo task's models that --retrain trains (the student first, then the pool). */
export function demoModelNames(task: DemoTask = 'detection'): string[] {
  return [(task === 'instance' ? DEMO_INSTANCE : DEMO_POOL).student.name, ...DEMO_POOL.teachers.map((m) => m.name)];
}

/** Two parts of the run at once when the demo has two threads or more (0: every core). */
export function demoJobs(threads: number): number {
  return (threads > 0 ? threads : availableParallelism()) >= 2 ? 2 : 1;
}

/** The demo's run config; `weightsDir` null: every model is trained here (--retrain's first phase). */
export function demoConfig(out: string, weightsDir: string | null, threads = 0, task: DemoTask = 'detection'): Config {
  const weights = (m: PoolModel) => (weightsDir ? join(weightsDir, `${m.name}.safetensors`) : null);
  const student = demoStudent(task, weights, weightsDir !== null);
  const instance = task === 'instance';
  // With weights: one pool entry per (teacher, resolution). Without (--retrain): each teacher once,
  // trained multi-scale (the detector picks one of its min sizes per batch, evaluates at the last).
  const teachers = DEMO_POOL.teachers.flatMap((t): ModelInput[] =>
    weightsDir
      ? t.minSizes.map((r) => ({ name: `${t.short}${r}`, arch: t.arch, widthMult: t.widthMult, minSize: r, maxSize: Math.round((r * 4) / 3), weights: weights(t), options: { anchor_sizes: [...t.anchors], head_norm: 'gn' } }))
      : [{ name: t.name, arch: t.arch, widthMult: t.widthMult, maxSize: t.maxSize, weights: null, options: { anchor_sizes: [...t.anchors], head_norm: 'gn', min_size: [...t.minSizes] }, train: { ...POOL_SCHEDULE, iterations: t.iterations } }],
  );
  const raw: ConfigInput = {
    output: join(out, task === 'instance' ? 'run-instance' : 'run'),
    threads,
    // The curriculum and the three baselines are independent: on two cores or more they train two
    // at a time, one thread each (a 96-px student gains little from a second intra-op thread, and
    // pays for the hand-offs), so the demo's wall time is about half its CPU time.
    jobs: demoJobs(threads),
    seed: 0,
    data: { root: join(out, 'data'), minSize: 192, maxSize: 256, batchSize: 4, workers: 0, synth: { ...DEMO_DATA } },
    student,
    teachers,
    // Each distillation stage (and each baseline stage) is a full schedule with its LR restarting
    // at the pool's own peak LR; the student is carried over from stage to stage. 300 steps (1.5
    // epochs) per teacher is what fits the 10-minute budget; a fine-tuning LR (2e-4) or 150 steps
    // leave the student where it started (see the README's demo section).
    // The instance demo: 150 steps per teacher and two baselines (a Mask R-CNN step costs about 4x a RetinaNet's).
    schedule: { iterations: instance ? DEMO_INSTANCE.iterations : 300, optimizer: 'adamw', lr: 1e-3, weightDecay: 0.05, warmupIterations: 50, policy: 'cosine', clipGradNorm: 10 },
    distill: { loss: 'pkd', weight: 1 },
    order: { method: 'bgs', k: 2, costs: { trainImages: 48, valImages: 48 } },
    checkpoint: { every: 100, keep: 2 },
    evaluation: { batchSize: 8 },
    baselines: instance ? [...DEMO_INSTANCE.baselines] : ['longer', 'direct', 'ensemble'],
  };
  return parseConfig(raw);
}

/** Trains the pool and the student from scratch and writes half-precision copies to `dir`. */
async function retrainPool(out: string, dir: string, options: DemoOptions, log: (s: string) => void): Promise<void> {
  const config = demoConfig(out, null, options.threads ?? 0, options.task ?? 'detection');
  setThreads(config.threads);
  await mkdir(dir, { recursive: true });
  const run = new Run(config, { ...options, log });
  const splits = await openSplits(config);
  const pool = [config.student, ...config.teachers];
  for (const m of pool) {
    if (options.retrainOnly && !options.retrainOnly.includes(m.name)) continue;
    const dst = join(dir, `${m.name}.safetensors`);
    if (existsSync(dst)) continue;
    log(`--retrain: training ${m.name} (${m.arch} x${m.widthMult}) for ${m.train?.iterations} steps`);
    const trained = await run.ensureTrained(m, splits);
    // Half precision halves the shipped files; every model loads them back into float32.
    await using det = await buildModel({ ...m, weights: trained }, config, splits);
    const sd = await det.stateDict();
    const half = new Map([...sd].map(([k, v]) => [k, v.dtype === 'float32' ? toHalf(v) : v]));
    await saveSafetensors(dst, half, { 'mtpd.arch': m.arch, 'mtpd.width_mult': String(m.widthMult), 'mtpd.made_by': 'mtpd demo --retrain' });
  }
}

function toHalf(t: Tensor): Tensor<'float16'> {
  const src = t.data as Float32Array;
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = float32ToFloat16Bits(src[i] as number);
  return { dtype: 'float16', shape: t.shape, data: out };
}

export async function runDemo(options: DemoOptions = {}): Promise<TrainReport & { summary: string }> {
  const out = resolve(options.out ?? 'mtpd-demo');
  const log = options.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const threads = options.threads ?? 0;
  const t0 = Date.now();
  const task = options.task ?? 'detection';
  if (task !== 'detection' && task !== 'instance') throw new MtpdError('ERR_MTPD_ARGUMENT', `--task must be detection or instance, got ${JSON.stringify(task)}`);
  const poolNames = demoModelNames(task);
  for (const name of options.retrainOnly ?? []) {
    if (!poolNames.includes(name)) throw new MtpdError('ERR_MTPD_ARGUMENT', `--retrain-only: no demo model "${name}" (the pool: ${poolNames.join(', ')})`);
  }
  if (options.retrainOnly && !options.retrain) throw new MtpdError('ERR_MTPD_ARGUMENT', '--retrain-only needs --retrain');
  const weightsDir = options.retrain ? join(out, 'weights') : resolve(options.weightsDir ?? shippedWeightsDir());
  if (!options.retrain) {
    const missing = poolNames.map((n) => join(weightsDir, `${n}.safetensors`)).filter((f) => !existsSync(f));
    if (missing.length) {
      throw new MtpdError('ERR_MTPD_CONFIG', `demo: the pool's weights are missing: ${missing.join(', ')}; make them with mtpd demo --retrain`);
    }
  }
  // Every phase's wall and CPU time, logged as it ends and tabled at the end (timings.json).
  const timer = new PhaseTimer(log);
  // --retrain trains before the pipeline (which would make the dataset itself) runs.
  await timer.time('dataset', () => ensureDataset(demoConfig(out, null, threads, task), { log, event: (e) => options.onEvent?.(e) }));
  if (options.retrain) {
    await retrainPool(out, weightsDir, options, log);
    if (options.retrainOnly) return { output: join(out, 'run'), order: [], results: [], aborted: false, summary: `trained ${options.retrainOnly.join(', ')} into ${weightsDir}` };
  }
  const config = demoConfig(out, weightsDir, threads, task);
  const report = await train(config, { ...options, log, timer });
  const summary = formatRunSummaryWithSpreads(report, report.spreads ?? null);
  log(`demo: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { ...report, summary };
}
