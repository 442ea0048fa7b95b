/**
 * One training stage as a loop of steps with hooks (detectron2's train_loop shape): the step
 * itself (a detection step, a distillation step, ...) is supplied by the caller, the loop owns
 * the learning-rate schedule, metrics, progress, periodic checkpoints, the AbortSignal and the
 * non-finite-loss guard. Resuming is starting at `startIter`.
 */
import { MtpdError } from '../errors.js';
import type { MetricsLog } from './metrics.js';
import { createProgress } from './progress.js';

export type Losses = Record<string, number>;

export type TrainEvent =
  | { type: 'stage-start'; stage: string; total: number; startIter: number }
  | { type: 'step'; stage: string; iter: number; total: number; lr: number; losses: Losses; loss: number; itPerSec: number }
  | { type: 'checkpoint'; stage: string; iter: number; final: boolean }
  | { type: 'stage-end'; stage: string; iter: number; aborted: boolean };

export interface StageHooks {
  beforeStep?(iter: number): Promise<void> | void;
  afterStep?(iter: number, losses: Losses): Promise<void> | void;
}

export interface StageSpec {
  stage: string;
  total: number;
  /** Steps already done (resume). */
  startIter?: number;
  lr(iter: number): number;
  /** Runs optimizer step `iter` at learning rate `lr`; returns named losses (their sum is the loss). */
  step(iter: number, lr: number): Promise<Losses>;
  /** Saves a checkpoint after `iterDone` steps. */
  checkpoint(iterDone: number, final: boolean): Promise<void>;
  checkpointEvery: number;
  signal?: AbortSignal | undefined;
  metrics?: MetricsLog | undefined;
  onEvent?: ((e: TrainEvent) => void) | undefined;
  hooks?: StageHooks;
  progress?: { quiet?: boolean; stream?: NodeJS.WriteStream };
  /** Extra fields for every metrics record (e.g. {teacher: "x101"}). */
  tags?: Record<string, unknown>;
  /** Extra text for the progress line, from the step's losses (e.g. "distill/det 1.2"). */
  progressNote?: (losses: Losses) => string | undefined;
}

export interface StageResult {
  iter: number;
  completed: boolean;
  aborted: boolean;
  lastLosses: Losses | null;
}

/** A clear error for an allocation failure inside a step (CPU or CUDA), or null for any other error. */
export function outOfMemory(err: unknown, stage: string, iter: number): MtpdError | null {
  const msg = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string } | null)?.code;
  if (code !== 'ERR_MTPD_OUT_OF_MEMORY' && !/out of memory|can't allocate memory|std::bad_alloc/i.test(msg)) return null;
  const when = iter === 0 ? 'in its first step' : `at step ${iter + 1}`;
  const e = new MtpdError(
    'ERR_MTPD_OUT_OF_MEMORY',
    `${stage}: out of memory ${when} (${msg.split('\n')[0]}). Lower data.batchSize or data.maxSize (or the model's minSize/maxSize), or train fewer teachers at once; the last complete checkpoint is kept.`,
    { cause: err },
  );
  return e;
}

export async function runStage(s: StageSpec): Promise<StageResult> {
  const start = s.startIter ?? 0;
  s.onEvent?.({ type: 'stage-start', stage: s.stage, total: s.total, startIter: start });
  const progress = createProgress(s.stage, s.total, s.progress ?? {});
  let iter = start;
  let lastLosses: Losses | null = null;
  let ema: number | null = null;
  const t0 = process.hrtime.bigint();
  try {
    while (iter < s.total) {
      if (s.signal?.aborted) {
        await s.checkpoint(iter, false);
        s.onEvent?.({ type: 'checkpoint', stage: s.stage, iter, final: false });
        s.onEvent?.({ type: 'stage-end', stage: s.stage, iter, aborted: true });
        return { iter, completed: false, aborted: true, lastLosses };
      }
      await s.hooks?.beforeStep?.(iter);
      const lr = s.lr(iter);
      let losses: Losses;
      try {
        losses = await s.step(iter, lr);
      } catch (err) {
        throw outOfMemory(err, s.stage, iter) ?? err;
      }
      const bad = Object.entries(losses).find(([, v]) => !Number.isFinite(v));
      if (bad) {
        throw new MtpdError(
          'ERR_MTPD_NONFINITE_LOSS',
          `${s.stage}: step ${iter + 1}: loss "${bad[0]}" is ${bad[1]}; stopping. The last good checkpoint is kept (resume with --resume after lowering the learning rate).`,
        );
      }
      const loss = Object.values(losses).reduce((a, b) => a + b, 0);
      iter++;
      lastLosses = losses;
      ema = ema === null ? loss : 0.9 * ema + 0.1 * loss;
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const itPerSec = (iter - start) / Math.max(secs, 1e-9);
      s.metrics?.write({ stage: s.stage, iter, lr, loss, ...losses, ...s.tags });
      s.onEvent?.({ type: 'step', stage: s.stage, iter, total: s.total, lr, losses, loss, itPerSec });
      const note = s.progressNote?.(losses);
      progress.update({ iter, total: s.total, loss: ema, lr, itPerSec, ...(note ? { note } : {}) });
      await s.hooks?.afterStep?.(iter, losses);
      if (iter < s.total && iter % s.checkpointEvery === 0) {
        await s.checkpoint(iter, false);
        s.onEvent?.({ type: 'checkpoint', stage: s.stage, iter, final: false });
      }
    }
    await s.checkpoint(iter, true);
    s.onEvent?.({ type: 'checkpoint', stage: s.stage, iter, final: true });
    s.onEvent?.({ type: 'stage-end', stage: s.stage, iter, aborted: false });
    return { iter, completed: true, aborted: false, lastLosses };
  } finally {
    progress.stop();
  }
}
