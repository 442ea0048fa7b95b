/**
 * What a training stage needs from the job it runs in: the loader's shard, a gradient sync on
 * its optimizer, one stop decision for all ranks, the job's batch and learning rate (stated in
 * the log), and checkpoints written by rank 0 while every rank waits.
 */
import type { Config } from '../config/schema.js';
import type { NativeGradSyncHandle } from './group.js';
import { MtpdError } from '../errors.js';
import { native } from '../native.js';
import { dist, isMainRank } from './context.js';

/** The loader shard of this rank (undefined: one process). */
export function loaderShard(): { rank: number; worldSize: number } | undefined {
  const d = dist();
  return d.worldSize > 1 ? { rank: d.rank, worldSize: d.worldSize } : undefined;
}

/** Images per optimizer step over the whole job (data.batchSize per process). */
export function jobBatch(config: Config): number {
  return config.data.batchSize * dist().worldSize;
}

/** The learning-rate multiplier of the job (dist.scaleLr). */
export function lrScale(config: Config): number {
  return config.dist.scaleLr === 'linear' ? dist().worldSize : 1;
}

/** One line for the log: processes, batch per process, the job's batch, the learning rate rule. */
export function describeJob(config: Config, lr: number): string | null {
  const d = dist();
  if (d.worldSize === 1) return null;
  const backends = d.group?.info().backends ?? 'gloo';
  const scaled = config.dist.scaleLr === 'linear' ? `learning rate ${lr} x ${d.worldSize} = ${lr * d.worldSize} (dist.scaleLr linear)` : `learning rate ${lr} as configured (dist.scaleLr none; linear would make it ${lr * d.worldSize})`;
  return `data-parallel: ${d.worldSize} processes (${backends}) x batch ${config.data.batchSize} = effective batch ${jobBatch(config)}; ${scaled}; gradients averaged over all ${jobBatch(config)} images in ${config.dist.bucketMb} MiB buckets, overlapped with backward`;
}

/**
 * A gradient sync over the job's group for an optimizer (or a distillation session); null for one
 * process. `syncBN`: the model whose trainable BatchNorm layers then compute their statistics over
 * the job (student.syncBN), weighted as this sync weighs the gradients; `log` says how many.
 */
export async function attachGradSync(
  target: { setGradSync(sync: NativeGradSyncHandle | null): Promise<void> },
  config: Config,
  syncBN?: { model: { detectorHandle: unknown }; stage: string; log?: ((line: string) => void) | undefined },
): Promise<NativeGradSyncHandle | null> {
  const g = dist().group;
  if (!g) return null;
  const sync = g.createGradSync(Math.max(1, Math.round(config.dist.bucketMb * 1024 * 1024)));
  await target.setGradSync(sync);
  if (syncBN && config.student.syncBN) {
    const n = native().dist.setSyncBatchNorm(syncBN.model.detectorHandle, sync);
    if (isMainRank()) syncBN.log?.(`${syncBN.stage}: SyncBatchNorm: ${n} BatchNorm layer${n === 1 ? '' : 's'} compute their statistics over all ${dist().worldSize} processes${n === 0 ? ' (none: the student has frozen BatchNorm)' : ''}`);
  }
  return sync;
}

/** True on every rank when any rank was asked to stop (one decision, so all stop at the same step). */
export async function agreeToStop(local: boolean): Promise<boolean> {
  const g = dist().group;
  if (!g) return local;
  const [t] = await g.allreduce([{ dtype: 'int32', shape: [1], data: Int32Array.of(local ? 1 : 0) }], 'stop vote');
  return ((t?.data as Int32Array)[0] ?? 0) > 0;
}

/**
 * A failed step of a data-parallel job: when the failure came from the job's collectives (a peer
 * died, hung or was stopped), an ERR_MTPD_DIST error that names the ranks that stopped; any
 * other error as it is.
 */
export async function explainStepFailure(err: unknown, stage: string, iter: number): Promise<unknown> {
  const g = dist().group;
  if (!g) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (!/distributed|gloo|nccl|connection|timed out|peer/i.test(msg)) return err;
  const who = await g.diagnose();
  return new MtpdError('ERR_MTPD_DIST', `${stage}: step ${iter + 1} failed on rank ${g.rank} of ${g.worldSize}: ${who ?? 'every peer is still alive'} (${msg.split('\n')[0]})`, { cause: err });
}
