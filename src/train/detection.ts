/**
 * A detection training stage (a teacher, the off-the-shelf student, the "longer" baseline):
 * the stage loop over loader batches, the detector's own train step, periodic checkpoints that
 * carry the loader position so a resumed stage continues on the same batches.
 */
import { join } from 'node:path';
import type { Config, Schedule } from '../config/schema.js';
import { DataLoader, type LoaderBatch, type LoaderPosition } from '../data/loader.js';
import type { Detector, Target } from '../detector.js';
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { StateDict } from '../weights/safetensors.js';
import type { OptimizerOptions } from '../optim.js';
import type { CheckpointManager, LoadedCheckpoint } from './checkpoint.js';
import { detectorInputs } from './inputs.js';
import { runStage, type StageResult, type TrainEvent } from './loop.js';
import type { MetricsLog } from './metrics.js';
import { targetLabelsOf, type Splits } from './models.js';
import { lrAt, totalIterations } from './schedule.js';
import { rngState, setRngState, setSeed } from '../runtime.js';
import { isMainRank, onMainRank } from '../dist/context.js';
import type { NativeGradSyncHandle } from '../dist/group.js';
import { agreeToStop, attachGradSync, describeJob, explainStepFailure, jobBatch, loaderShard, lrScale } from '../dist/train.js';

export interface StageState {
  stage: string;
  iter: number;
  total: number;
  loader: LoaderPosition;
  /** The trained model's RoI pooler scales (Detector.roiScales), kept from its first batch. */
  roiScales?: number[];
}

export interface DetectionStageOptions {
  stage: string;
  det: Detector;
  splits: Splits;
  config: Config;
  schedule: Schedule;
  checkpoints: CheckpointManager;
  metrics?: MetricsLog;
  signal?: AbortSignal | undefined;
  onEvent?: ((e: TrainEvent) => void) | undefined;
  /** A checkpoint of this stage to continue from. */
  resume?: LoadedCheckpoint | null;
  quiet?: boolean;
  /** The stage's seed (see stage-seed.ts): its data order and its default-generator stream. */
  seed: number;
  /** Where the stage's notes go (the distillation/detection loss ratio, warnings). */
  log?: ((line: string) => void) | undefined;
  /** The model is the student: student.syncBN applies to it in a data-parallel job. */
  isStudent?: boolean;
}

/** The optimizer a stage's schedule asks for. */
export function optimizerFor(schedule: Schedule): OptimizerOptions {
  return {
    type: schedule.optimizer,
    lr: schedule.lr,
    momentum: schedule.momentum,
    nesterov: schedule.nesterov,
    weightDecay: schedule.weightDecay,
    maxGradNorm: schedule.clipGradNorm ?? 0,
    amp: schedule.amp,
  };
}

/** Checkpoint folder name of a stage after `iter` steps. */
export function checkpointName(stage: string, iter: number): string {
  return `${stage.replace(/[^A-Za-z0-9_.-]/g, '_')}_${String(iter).padStart(7, '0')}`;
}

/** True when a model of the run has a mask head (its training needs instance masks in the targets). */
export function runHasMasks(config: Config): boolean {
  return [config.student, ...config.teachers].some((m) => /^(maskrcnn_.+_fpn(_v2)?|mask_rcnn|cascade_maskrcnn_.+_fpn|cascade_mask_rcnn)$/.test(m.arch));
}

/**
 * The training loader of a stage: shuffled with the stage's own seed. In a data-parallel job it
 * yields the job's batch (data.batchSize per process) and hands this rank its part.
 */
export function loaderFor(splits: Splits, config: Config, seed: number, position?: LoaderPosition): DataLoader {
  const shard = loaderShard();
  return new DataLoader(splits.train, {
    masks: runHasMasks(config),
    batchSize: jobBatch(config),
    ...(shard ? { shard } : {}),
    shuffle: true,
    seed,
    train: true,
    flipProb: config.data.flip,
    resize: 'none',
    output: 'uint8',
    layout: 'hwc',
    workers: config.data.workers,
    ...(position ? { position } : {}),
  });
}

export interface LoaderStageSpec {
  stage: string;
  splits: Splits;
  config: Config;
  schedule: Schedule;
  checkpoints: CheckpointManager;
  metrics?: MetricsLog | undefined;
  signal?: AbortSignal | undefined;
  onEvent?: ((e: TrainEvent) => void) | undefined;
  quiet?: boolean | undefined;
  tags?: Record<string, unknown>;
  /** The stage's seed: the loader's data order. */
  seed: number;
  /** Extra text for the progress line after a step (e.g. the distillation/detection ratio). */
  progressNote?: ((losses: Record<string, number>) => string | undefined) | undefined;
  /** The interrupted state of this stage, when resuming, and its checkpoint. */
  resumeState: StageState | null;
  resume?: LoadedCheckpoint | null | undefined;
  /** The stage's optimizer: its state goes into every checkpoint and comes back on resume. */
  optimizer: { stateDict(): Promise<StateDict>; loadStateDict(state: StateDict): Promise<void> };
  /** One optimizer step on a batch at learning rate lr (the loader batch: image ids, flips); returns the named losses. */
  step(images: Tensor[], targets: Target[], lr: number, batch: LoaderBatch): Promise<Record<string, number>>;
  /** The weight sets a checkpoint of this stage holds. */
  weights(): Promise<Record<string, StateDict>>;
  /** The trained model, whose RoI pooler scales each checkpoint records and a resumed stage restores. */
  model?: Pick<Detector, 'roiScales' | 'setRoiScales'>;
  /** Where the stage's notes go (the job's batch and learning rate). */
  log?: ((line: string) => void) | undefined;
  /** Data-parallel: the optimizer's gradient sync (its weight follows each batch's share). */
  gradSync?: NativeGradSyncHandle | null;
  /** Dataset label -> the trained model's label, when its classes are not the dataset's own (class-map.ts). */
  targetLabels?: Int32Array | undefined;
}

/**
 * The part every training stage shares: training batches from the loader (continuing at the
 * saved position on resume), the schedule's learning rate, and checkpoints that carry the
 * loader position with the stage's weights.
 */
export async function runLoaderStage(o: LoaderStageSpec): Promise<StageResult> {
  const total = totalIterations(o.schedule, o.splits.train.length, jobBatch(o.config));
  const startIter = o.resumeState?.iter ?? 0;
  // Data-parallel: rank 0 writes the metrics, progress and checkpoints; all ranks stop together.
  const main = isMainRank();
  const metrics = main ? o.metrics : undefined;
  const job = describeJob(o.config, o.schedule.lr);
  if (job && main && startIter < total) (o.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`${o.stage}: ${job}`);
  const scale = lrScale(o.config);
  const stop = new AbortController();
  // Steps of this stage logged past the point it continues from (a killed or stopped run) are
  // dropped, so metrics.jsonl has each step once.
  metrics?.retain((r) => r.stage !== o.stage || typeof r.iter !== 'number' || r.iter <= startIter);
  if (o.resumeState && o.resume) {
    // Optimizer state (momentum, moments) and the default generators (stochastic depth,
    // dropout) come back too, so a resumed run takes the same steps as an uninterrupted one.
    if (o.resume.sets.includes('optimizer')) await o.optimizer.loadStateDict(await o.resume.weights('optimizer'));
    if (o.resume.sets.includes('rng')) setRngState(await o.resume.weights('rng'));
    if (o.model) restoreRoiScales(o.model, o.resumeState, o.resume);
  }
  const loader = loaderFor(o.splits, o.config, o.seed, startIter > 0 ? o.resumeState?.loader : undefined);
  let position: LoaderPosition = o.resumeState?.loader ?? loader.position();
  try {
    return await runStage({
      stage: o.stage,
      total,
      startIter,
      lr: (i) => scale * lrAt(o.schedule, i, total),
      step: async (i, lr) => {
        const batch = await loader.next();
        position = batch.next;
        o.gradSync?.setWeight(batch.shareWeight);
        const { images, targets } = detectorInputs(batch, o.targetLabels);
        try {
          return await o.step(images, targets, lr, batch);
        } catch (err) {
          throw o.gradSync ? await explainStepFailure(err, o.stage, i) : err;
        }
      },
      checkpoint: async (iter, final) => {
        await onMainRank(`${o.stage}: checkpoint`, async () => {
          const roiScales = o.model?.roiScales() ?? [];
          const state: StageState = { stage: o.stage, iter, total, loader: position, ...(roiScales.length > 0 ? { roiScales } : {}) };
          const weights = { ...(await o.weights()), optimizer: await o.optimizer.stateDict(), rng: rngState() };
          await o.checkpoints.save(checkpointName(o.stage, iter), { weights, state, permanent: final });
        });
      },
      checkpointEvery: o.config.checkpoint.every,
      signal: o.gradSync ? stop.signal : o.signal,
      ...(o.gradSync ? { hooks: { beforeStep: async () => { if (await agreeToStop(o.signal?.aborted ?? false)) stop.abort(); } } } : {}),
      metrics,
      onEvent: o.onEvent,
      progress: { quiet: (o.quiet ?? false) || !main },
      ...(o.tags ? { tags: o.tags } : {}),
      ...(o.progressNote ? { progressNote: o.progressNote } : {}),
    });
  } finally {
    await loader.close();
  }
}

/**
 * Gives a resumed stage's fresh model the RoI pooler scales the interrupted one had kept from its
 * first batch (a model that infers them would otherwise infer them from the batch it resumes at).
 */
export function restoreRoiScales(det: Pick<Detector, 'setRoiScales'>, state: StageState, checkpoint: LoadedCheckpoint): void {
  const s = state.roiScales;
  if (s === undefined) return;
  if (!Array.isArray(s) || !s.every((x) => typeof x === 'number')) {
    throw new MtpdError('ERR_MTPD_CONFIG', `${join(checkpoint.dir, 'state.json')}: roiScales must be an array of numbers, got ${JSON.stringify(s)}`);
  }
  try {
    det.setRoiScales(s);
  } catch (err) {
    throw new MtpdError('ERR_MTPD_CONFIG', `${join(checkpoint.dir, 'state.json')}: roiScales: ${(err as Error).message}`);
  }
}

export async function trainDetectionStage(o: DetectionStageOptions): Promise<StageResult> {
  const { det } = o;
  // The stage's own generator stream (a resumed stage restores the saved one in runLoaderStage).
  setSeed(o.seed);
  const state = (o.resume?.state ?? null) as StageState | null;
  const resumeState = o.resume && state?.stage === o.stage ? state : null;
  if (resumeState && o.resume) await det.loadStateDict(await o.resume.weights('model'));
  // The stage's optimizer state is freed when the stage ends (the detector belongs to the caller).
  await using optimizer = await det.createOptimizer(optimizerFor(o.schedule));
  const gradSync = await attachGradSync(optimizer, o.config, o.isStudent ? { model: det, stage: o.stage, log: o.log } : undefined);
  return await runLoaderStage({
    ...o,
    resumeState,
    optimizer,
    gradSync,
    targetLabels: targetLabelsOf(det),
    step: async (images, targets, lr) => {
      optimizer.setLr(lr);
      return (await det.trainStep(optimizer, images, targets)).losses;
    },
    weights: async () => ({ model: await det.stateDict() }),
    model: det,
  });
}
