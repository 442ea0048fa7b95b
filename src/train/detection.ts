/**
 * A detection training stage (a teacher, the off-the-shelf student, the "longer" baseline):
 * the stage loop over loader batches, the detector's own train step, periodic checkpoints that
 * carry the loader position so a resumed stage continues on the same batches.
 */
import type { Config, Schedule } from '../config/schema.js';
import { DataLoader, type LoaderPosition } from '../data/loader.js';
import type { Detector } from '../detector.js';
import type { OptimizerOptions } from '../optim.js';
import type { CheckpointManager, LoadedCheckpoint } from './checkpoint.js';
import { detectorInputs } from './inputs.js';
import { runStage, type StageResult, type TrainEvent } from './loop.js';
import type { MetricsLog } from './metrics.js';
import type { Splits } from './models.js';
import { lrAt, totalIterations } from './schedule.js';

export interface StageState {
  stage: string;
  iter: number;
  total: number;
  loader: LoaderPosition;
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
  };
}

/** Checkpoint folder name of a stage after `iter` steps. */
export function checkpointName(stage: string, iter: number): string {
  return `${stage.replace(/[^A-Za-z0-9_.-]/g, '_')}_${String(iter).padStart(7, '0')}`;
}

export function loaderFor(splits: Splits, config: Config, position?: LoaderPosition): DataLoader {
  return new DataLoader(splits.train, {
    batchSize: config.data.batchSize,
    shuffle: true,
    seed: config.seed,
    train: true,
    flipProb: config.data.flip,
    resize: 'none',
    output: 'uint8',
    workers: config.data.workers,
    ...(position ? { position } : {}),
  });
}

export async function trainDetectionStage(o: DetectionStageOptions): Promise<StageResult> {
  const { det, splits, config, schedule } = o;
  const total = totalIterations(schedule, splits.train.length, config.data.batchSize);
  const resumeState = (o.resume?.state ?? null) as StageState | null;
  if (o.resume && resumeState?.stage === o.stage) await det.loadStateDict(await o.resume.weights('model'));
  const startIter = resumeState?.stage === o.stage ? resumeState.iter : 0;
  const loader = loaderFor(splits, config, startIter > 0 ? resumeState?.loader : undefined);
  const optimizer = await det.createOptimizer(optimizerFor(schedule));
  let position: LoaderPosition = resumeState?.stage === o.stage ? resumeState.loader : loader.position();
  try {
    return await runStage({
      stage: o.stage,
      total,
      startIter,
      lr: (i) => lrAt(schedule, i, total),
      step: async (_i, lr) => {
        const batch = await loader.next();
        position = batch.next;
        const { images, targets } = detectorInputs(batch);
        optimizer.setLr(lr);
        const r = await det.trainStep(optimizer, images, targets);
        return r.losses;
      },
      checkpoint: async (iter, final) => {
        const state: StageState = { stage: o.stage, iter, total, loader: position };
        await o.checkpoints.save(checkpointName(o.stage, iter), {
          weights: { model: await det.stateDict() },
          state,
          permanent: final,
        });
      },
      checkpointEvery: config.checkpoint.every,
      signal: o.signal,
      metrics: o.metrics,
      onEvent: o.onEvent,
      progress: { quiet: o.quiet ?? false },
    });
  } finally {
    await loader.close();
  }
}
