/**
 * This process's place in a data-parallel job: rank, world size, local rank and the process
 * group, from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT;
 * `mtpd train --nproc` sets them for its workers). A single process is rank 0 of 1 with no
 * group, and every helper here is then a no-op, so the training code reads the same either way.
 */
import { MtpdError } from '../errors.js';
import { ProcessGroup } from './group.js';

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, lo: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo) throw new MtpdError('ERR_MTPD_ARGUMENT', `environment variable ${name} must be an integer >= ${lo}, got "${v}"`);
  return n;
}

/** The torchrun variables of `env`, or null when WORLD_SIZE is not set. */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const worldSize = envInt(env, 'WORLD_SIZE', 1, 1);
  const rank = envInt(env, 'RANK', 0, 0);
  if (rank >= worldSize) throw new MtpdError('ERR_MTPD_ARGUMENT', `environment variable RANK (${rank}) must be below WORLD_SIZE (${worldSize})`);
  const localRank = envInt(env, 'LOCAL_RANK', rank, 0);
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize: envInt(env, 'LOCAL_WORLD_SIZE', worldSize, 1),
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: envInt(env, 'MASTER_PORT', 29500, 1),
  };
}

export interface Dist {
  rank: number;
  worldSize: number;
  localRank: number;
  group: ProcessGroup | null;
}

let current: Dist = { rank: 0, worldSize: 1, localRank: 0, group: null };

/** The job this process is part of (rank 0 of 1 when not distributed). */
export function dist(): Dist {
  return current;
}

/** True on the process that writes checkpoints, logs and reports (rank 0). */
export function isMainRank(): boolean {
  return current.rank === 0;
}

/** Joins the job described by `env` (a world of one needs no group). */
export async function initDist(env: DistEnv, o: { timeoutMs: number; heartbeatTimeoutMs: number; cuda?: boolean }): Promise<Dist> {
  if (current.group) throw new MtpdError('ERR_MTPD_DIST', 'distributed: this process already joined a job');
  const group =
    env.worldSize > 1
      ? await ProcessGroup.create({ host: env.masterAddr, port: env.masterPort, rank: env.rank, worldSize: env.worldSize, timeoutMs: o.timeoutMs, heartbeatTimeoutMs: o.heartbeatTimeoutMs, ...(o.cuda ? { cuda: true } : {}) })
      : null;
  current = { rank: env.rank, worldSize: env.worldSize, localRank: env.localRank, group };
  return current;
}

/** Leaves the job (a last barrier first when `clean`). */
export async function endDist(clean: boolean): Promise<void> {
  const g = current.group;
  current = { rank: 0, worldSize: 1, localRank: 0, group: null };
  if (!g) return;
  if (clean) await g.finish();
  else await g.close();
}

/** Runs `fn` on rank 0 only, then every rank waits for it (its files exist for everyone after). */
export async function onMainRank<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  const g = current.group;
  if (!g) return fn();
  let out: T | undefined;
  let failure: string | null = null;
  if (current.rank === 0) {
    try {
      out = await fn();
    } catch (err) {
      failure = (err as Error).message;
      // the others learn of it below, then rank 0 rethrows
      await g.broadcastJson<string | null>(failure, 0, what).catch(() => undefined);
      throw err;
    }
  }
  const f = await g.broadcastJson<string | null>(failure, 0, what);
  if (f !== null) throw new MtpdError('ERR_MTPD_DIST', `${what} failed on rank 0: ${f}`);
  return out;
}

/** Rank 0's value on every rank (JSON). */
export async function fromMainRank<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  const g = current.group;
  if (!g) return fn();
  return onMainRank(what, async () => fn()).then(async (v) => g.broadcastJson<T>(v, 0, what));
}
