/**
 * `mtpd train --nproc N` (torchrun style): starts N worker processes of the same command on this
 * machine with the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT), `--nnodes M --node-rank K` making them ranks K*N .. K*N+N-1 of a
 * job of M*N. Rank 0's output passes through as it is; the others' lines carry "[rank r]". When a
 * worker fails, the others get `graceMs` to stop on their own (they name the rank that died),
 * then they are ended; the launcher's error names the first rank that failed and how.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { MtpdError } from '../errors.js';

export interface LaunchOptions {
  /** Worker processes on this machine. */
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The worker's command line after the node binary (script and arguments). */
  args: string[];
  /** Time the others get to stop by themselves after a worker failed (ms). */
  graceMs: number;
  env?: NodeJS.ProcessEnv;
  /** Where the launcher's own lines go (default stderr). */
  log?: (line: string) => void;
}

export interface LaunchResult {
  /** The exit code for the launcher: 0 when every worker succeeded. */
  code: number;
  failed: { rank: number; how: string } | null;
}

function prefixed(stream: NodeJS.ReadableStream, out: NodeJS.WritableStream, prefix: string): void {
  const rl = createInterface({ input: stream });
  rl.on('line', (line) => out.write(`${prefix}${line}\n`));
}

export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  if (!Number.isInteger(o.nproc) || o.nproc < 1) throw new MtpdError('ERR_MTPD_ARGUMENT', `--nproc must be an integer >= 1, got ${o.nproc}`);
  if (!Number.isInteger(o.nnodes) || o.nnodes < 1) throw new MtpdError('ERR_MTPD_ARGUMENT', `--nnodes must be an integer >= 1, got ${o.nnodes}`);
  if (!Number.isInteger(o.nodeRank) || o.nodeRank < 0 || o.nodeRank >= o.nnodes) throw new MtpdError('ERR_MTPD_ARGUMENT', `--node-rank must be in 0..${o.nnodes - 1}, got ${o.nodeRank}`);
  if (!Number.isInteger(o.masterPort) || o.masterPort < 1 || o.masterPort > 65535) throw new MtpdError('ERR_MTPD_ARGUMENT', `--master-port must be in 1..65535, got ${o.masterPort}`);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const world = o.nproc * o.nnodes;
  const children: { rank: number; child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }[] = [];
  for (let local = 0; local < o.nproc; local++) {
    const rank = o.nodeRank * o.nproc + local;
    const env = {
      ...process.env,
      ...o.env,
      RANK: String(rank),
      WORLD_SIZE: String(world),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(o.nproc),
      GROUP_RANK: String(o.nodeRank),
      MASTER_ADDR: o.masterAddr,
      MASTER_PORT: String(o.masterPort),
    };
    const child = spawn(process.execPath, [...process.execArgv, ...o.args], { env, stdio: rank === 0 ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'] });
    if (rank !== 0) {
      prefixed(child.stdout as NodeJS.ReadableStream, process.stdout, `[rank ${rank}] `);
      prefixed(child.stderr as NodeJS.ReadableStream, process.stderr, `[rank ${rank}] `);
    }
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    children.push({ rank, child, done });
  }
  // Ctrl-C: every worker is asked to stop after its current step (they agree on the step).
  const forward = (sig: NodeJS.Signals) => () => {
    for (const c of children) if (c.child.exitCode === null) c.child.kill(sig);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let failed: LaunchResult['failed'] = null;
  let firstCode = 0;
  let timer: NodeJS.Timeout | null = null;
  try {
    await Promise.all(
      children.map(async (c) => {
        const r = await c.done;
        if ((r.code ?? 1) !== 0 && !failed) {
          failed = { rank: c.rank, how: r.signal ? `was killed by ${r.signal}` : `exited with code ${r.code}` };
          firstCode = r.code ?? 1;
          timer = setTimeout(() => {
            for (const o2 of children) if (o2.child.exitCode === null && o2.child.signalCode === null) o2.child.kill('SIGKILL');
          }, o.graceMs);
        }
      }),
    );
  } finally {
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  const f = failed as LaunchResult['failed'];
  if (f) log(`mtpd: distributed: rank ${f.rank} of ${world} ${f.how}; the job stopped`);
  return { code: f ? (firstCode > 0 ? firstCode : 1) : 0, failed: f };
}
