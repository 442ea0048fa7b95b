/**
 * Independent stages at once (config `jobs`): the progressive curriculum (its stages chained, one
 * after the other) and each baseline are independent of one another (method.md 1.5: every
 * baseline starts from the off-the-shelf student), so a run can train them side by side, each
 * in its own process with its share of the cores (`threads` / `jobs` intra-op threads each).
 *
 * Why processes, not threads of one process: libtorch's random generator and intra-op thread
 * settings are process-wide, and a stage's checkpoint saves and restores that generator; a
 * process per part keeps each part exactly what it would be alone (same seeds, same steps, same
 * resume). On small models this is also where the cores go furthest: one thread per stage does
 * no cross-thread hand-offs per operator (the kernel time of two intra-op threads on 96-px maps).
 *
 * The parent has already made everything the parts share (the dataset, the teachers, every
 * evaluation, the cost matrix and the order); each part re-reads them from the run folder, trains
 * its stages into <output>/models and <output>/eval as the sequential run would, with its
 * checkpoints in <output>/parts/<part> (so --resume continues every part where it stopped), and
 * the parent then finds every stage done and writes the report. Teachers' maps are shared through
 * the run's teacher cache (teacher-cache.ts), whose entries are the same values whoever wrote them.
 *
 * Parts are started in the order given (the caller's, longest first) and a free slot takes the
 * next one. A part's output lines (its stage lines, progress, time lines) are
 * passed on as they come; its events reach the parent's onEvent. Stopping the parent (the signal)
 * asks every part to stop after its current step, and a part that fails fails the run with its name
 * and its last lines.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Config } from '../config/schema.js';
import { siblingUrl } from '../data/pool.js';
import { type ErrorCode, MtpdError } from '../errors.js';
import type { Baseline } from './baselines.js';
import type { PhaseTime } from './timing.js';

/** One independently trainable part of a run: the whole curriculum, or one baseline. */
export type Part = 'curriculum' | Baseline;

/** What the parent sends a part process. */
export interface PartRequest {
  config: Config;
  part: Part;
  resume: boolean;
}

/** What a part process sends back. */
export type PartMessage =
  | { type: 'event'; event: unknown }
  | { type: 'done'; aborted: boolean; phases: PhaseTime[]; total: PhaseTime }
  | { type: 'error'; code?: string; message: string };

export interface ParallelOptions {
  /** The run's config (as given to train()). */
  config: Config;
  /** In the order to start them (the longest first). */
  parts: Part[];
  jobs: number;
  /** Intra-op threads of each part. */
  threads: number;
  resume: boolean;
  signal?: AbortSignal;
  log: (line: string) => void;
  onEvent?: (e: unknown) => void;
}

export interface ParallelResult {
  aborted: boolean;
  /** Each part's own phases (its stages' training and evaluation), CPU seconds its own. */
  phases: { part: Part; phases: PhaseTime[]; total: PhaseTime }[];
}

/** Runs `parts` in at most `jobs` processes at once; resolves when all have ended. */
export async function runParallelStages(o: ParallelOptions): Promise<ParallelResult> {
  const queue = [...o.parts];
  const result: ParallelResult = { aborted: false, phases: [] };
  const running = new Set<ChildProcess>();
  let failure: Error | null = null;
  const stopAll = () => {
    for (const c of running) if (c.connected) c.send({ type: 'stop' });
  };
  o.signal?.addEventListener('abort', stopAll, { once: true });

  const runOne = (part: Part) =>
    new Promise<void>((resolve) => {
      const config: Config = { ...o.config, threads: o.threads, jobs: 1 };
      // The worker inherits this process's loader flags (execArgv), so it runs under tests too.
      const child = fork(siblingUrl(import.meta.url, 'stage-worker'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' });
      running.add(child);
      const tail: string[] = [];
      const pass = (line: string) => {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        o.log(line);
      };
      for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', pass);
      let done: Extract<PartMessage, { type: 'done' }> | null = null;
      let error: Extract<PartMessage, { type: 'error' }> | null = null;
      child.on('message', (m: PartMessage) => {
        if (m.type === 'event') o.onEvent?.(m.event);
        else if (m.type === 'done') done = m;
        else if (m.type === 'error') error = m;
      });
      child.on('error', (err) => {
        failure ??= new MtpdError('ERR_MTPD_JOBS', `jobs: the ${part} process could not run: ${err.message}`);
      });
      child.on('exit', (code, sig) => {
        running.delete(child);
        const d = done as Extract<PartMessage, { type: 'done' }> | null;
        const e = error as Extract<PartMessage, { type: 'error' }> | null;
        if (d) {
          result.phases.push({ part, phases: d.phases, total: d.total });
          if (d.aborted) result.aborted = true;
        } else if (!failure) {
          const why = e ? e.message : `it exited with ${sig ?? `code ${code}`}`;
          const err = new MtpdError(((e?.code ?? 'ERR_MTPD_JOBS') as ErrorCode), `jobs: the ${part} part failed: ${why}${e ? '' : `\n${tail.join('\n')}`}`);
          failure = err;
          stopAll();
        }
        resolve();
      });
      child.send({ config, part, resume: o.resume } satisfies PartRequest);
    });

  const slot = async () => {
    for (let part = queue.shift(); part !== undefined; part = queue.shift()) {
      if (failure || o.signal?.aborted) return;
      await runOne(part);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs, queue.length)) }, slot));
  o.signal?.removeEventListener('abort', stopAll);
  if (failure) throw failure;
  if (o.signal?.aborted) result.aborted = true;
  return result;
}
