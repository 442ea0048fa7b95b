/**
 * A process group of a data-parallel job: libtorch's c10d (rendezvous through a TCPStore that
 * rank 0 hosts, ProcessGroupGloo for CPU tensors, ProcessGroupNCCL for CUDA tensors where
 * libtorch has it; native/dist/process_group.h). Every collective runs off the event loop. A
 * collective that fails (a peer died: its sockets closed) or times out is turned into an error
 * that names the ranks whose heartbeat stopped, and a watchdog ends this process with such an
 * error when a peer stops beating while this one waits (a hung or stopped rank).
 */
import { MtpdError } from '../errors.js';
import { native } from '../native.js';
import type { Tensor } from '../tensor.js';

/** The native gradient sync (native/dist/grad_sync.h): bucketed allreduce overlapped with backward. */
export interface NativeGradSyncHandle {
  setWeight(w: number): void;
  weight(): number;
  bucketSizes(): number[];
}

export interface NativeProcessGroupHandle {
  info(): { rank: number; worldSize: number; backends: string; host: string; port: number; timeoutMs: number };
  allreduce(tensors: Tensor[]): Promise<Tensor[]>;
  broadcast(tensors: Tensor[], root: number): Promise<Tensor[]>;
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array[]>;
  barrier(): Promise<void>;
  stalledRanks(windowMs: number): Promise<number[]>;
  heartbeats(): Promise<number[]>;
  createGradSync(bucketBytes?: number): NativeGradSyncHandle;
  close(): void;
}

declare module '../native.js' {
  interface Binding {
    dist: {
      backends(): string[];
      exitNow(code: number): never;
      /** The detector's trainable BatchNorm layers synchronized over the job of `sync` (null: plain again); how many layers. */
      setSyncBatchNorm(detector: unknown, sync: NativeGradSyncHandle | null): number;
      createGroup(options: { host: string; port: number; rank: number; worldSize: number; timeoutMs?: number; heartbeatMs?: number; cuda?: boolean }): Promise<NativeProcessGroupHandle>;
    };
  }
}

export interface GroupOptions {
  host: string;
  port: number;
  rank: number;
  worldSize: number;
  /** Rendezvous and every collective (ms). */
  timeoutMs: number;
  /** A peer whose heartbeat stops for this long is reported dead or hung (ms). */
  heartbeatTimeoutMs: number;
  /** Also NCCL for CUDA tensors. */
  cuda?: boolean;
  /** Where the watchdog's last words go before it ends the process (default stderr). */
  onFatal?: (message: string) => void;
}

const HEARTBEAT_MS = 500;

/** The distributed backends of this build: "gloo", and "nccl" where libtorch has it. */
export function distBackends(): string[] {
  return native().dist.backends();
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}

export class ProcessGroup {
  private watchdog: { stop: boolean; busy: boolean; timer: NodeJS.Timeout | null } = { stop: false, busy: false, timer: null };
  private closed = false;

  private constructor(
    readonly handle: NativeProcessGroupHandle,
    readonly options: GroupOptions,
  ) {}

  get rank(): number {
    return this.options.rank;
  }

  get worldSize(): number {
    return this.options.worldSize;
  }

  /** Joins the job: resolves once all worldSize ranks met at host:port (or fails after timeoutMs naming the address). */
  static async create(o: GroupOptions): Promise<ProcessGroup> {
    let handle: NativeProcessGroupHandle;
    try {
      handle = await native().dist.createGroup({ host: o.host, port: o.port, rank: o.rank, worldSize: o.worldSize, timeoutMs: o.timeoutMs, heartbeatMs: HEARTBEAT_MS, cuda: o.cuda ?? false });
    } catch (err) {
      throw new MtpdError('ERR_MTPD_DIST', `distributed: rank ${o.rank} of ${o.worldSize} could not join at ${o.host}:${o.port}: ${(err as Error).message}`, { cause: err });
    }
    const g = new ProcessGroup(handle, o);
    g.startWatchdog();
    return g;
  }

  info() {
    return this.handle.info();
  }

  /** Which peers stopped: a message naming them, or null when every peer still beats. */
  async diagnose(windowMs = Math.min(this.options.heartbeatTimeoutMs, 4 * HEARTBEAT_MS)): Promise<string | null> {
    let stalled: number[];
    try {
      stalled = await this.handle.stalledRanks(windowMs);
    } catch (err) {
      return (err as Error).message;
    }
    if (stalled.length === 0) return null;
    return `${plural(stalled.length, 'rank', 'ranks')} ${stalled.join(', ')} stopped (no heartbeat for ${(windowMs / 1000).toFixed(1)} s: the process died, was stopped or hangs)`;
  }

  /** Runs a collective; a failure becomes an ERR_MTPD_DIST error naming the ranks that stopped. */
  async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new MtpdError('ERR_MTPD_DIST', `distributed ${what}: the process group is closed`);
    try {
      return await fn();
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      const who = await this.diagnose();
      throw new MtpdError('ERR_MTPD_DIST', `distributed ${what} on rank ${this.rank} of ${this.worldSize} failed: ${who ?? 'every peer is still alive'} (${msg.split('\n')[0]})`, { cause: err });
    }
  }

  /** Elementwise sums over the ranks (one collective for all the tensors). */
  allreduce(tensors: Tensor[], what = 'allreduce'): Promise<Tensor[]> {
    return this.guard(what, () => this.handle.allreduce(tensors));
  }

  broadcast(tensors: Tensor[], root = 0, what = 'broadcast'): Promise<Tensor[]> {
    return this.guard(what, () => this.handle.broadcast(tensors, root));
  }

  barrier(what = 'barrier'): Promise<void> {
    return this.guard(what, () => this.handle.barrier());
  }

  /** Every rank's JSON value, in rank order. */
  async allgatherJson<T>(value: T, what = 'allgather'): Promise<T[]> {
    const parts = await this.guard(what, () => this.handle.allgatherBytes(Buffer.from(JSON.stringify(value))));
    return parts.map((b) => JSON.parse(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')) as T);
  }

  /** Rank root's JSON value on every rank. */
  async broadcastJson<T>(value: T | undefined, root = 0, what = 'broadcast'): Promise<T> {
    const all = await this.allgatherJson(this.rank === root ? (value ?? null) : null, what);
    return all[root] as T;
  }

  /** A gradient sync for an optimizer (bucketed allreduce overlapped with backward). */
  createGradSync(bucketBytes?: number): NativeGradSyncHandle {
    return this.handle.createGradSync(bucketBytes);
  }

  /**
   * Polls the peers' heartbeats off the event loop; a peer silent for heartbeatTimeoutMs ends
   * this process with an error naming it (a collective blocked on it would otherwise wait for
   * the whole c10d timeout).
   */
  private startWatchdog(): void {
    if (this.worldSize < 2) return;
    const last = new Array<number>(this.worldSize).fill(-1);
    const since = new Array<number>(this.worldSize).fill(Date.now());
    const fatal = (who: string) => {
      if (this.watchdog.stop) return;
      const msg = `mtpd: distributed: rank ${this.rank} of ${this.worldSize} stops: ${who} (ERR_MTPD_DIST)`;
      (this.options.onFatal ?? ((m: string) => process.stderr.write(`${m}\n`)))(msg);
      // Not process.exit: tearing down the group would wait for the collective stuck on the peer.
      native().dist.exitNow(1);
    };
    const poll = async () => {
      if (this.watchdog.stop) return;
      let beats: number[];
      try {
        beats = await this.handle.heartbeats();
      } catch (err) {
        fatal((err as Error).message);
        return;
      }
      const now = Date.now();
      const stalled: number[] = [];
      for (let r = 0; r < this.worldSize; r++) {
        if (beats[r] !== last[r]) {
          last[r] = beats[r] as number;
          since[r] = now;
        } else if (r !== this.rank && now - (since[r] as number) > this.options.heartbeatTimeoutMs) stalled.push(r);
      }
      if (stalled.length) fatal(`${plural(stalled.length, 'rank', 'ranks')} ${stalled.join(', ')} stopped (no heartbeat for ${(this.options.heartbeatTimeoutMs / 1000).toFixed(0)} s: the process died, was stopped or hangs)`);
    };
    const timer = setInterval(() => {
      if (!this.watchdog.busy) {
        this.watchdog.busy = true;
        void poll().finally(() => {
          this.watchdog.busy = false;
        });
      }
    }, 1000);
    timer.unref();
    this.watchdog.timer = timer;
  }

  /** Ends the job for this rank: a last barrier (everyone is done), then the watchdog stops and the group closes. */
  async finish(): Promise<void> {
    if (this.closed) return;
    await this.barrier('final barrier');
    // Every watchdog stops before any rank leaves (rank 0 leaving takes the store with it).
    this.stopWatchdog();
    await this.guard('final barrier', () => this.handle.barrier());
    await this.close();
  }

  private stopWatchdog(): void {
    this.watchdog.stop = true;
    if (this.watchdog.timer) clearInterval(this.watchdog.timer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopWatchdog();
    this.closed = true;
    this.handle.close();
  }
}
