/**
 * A small pool of worker threads answering requests in any order; results come back as promises.
 * The worker module calls `serveWorker(handler)`. Errors thrown in a worker come back as
 * MtpdError (or Error) with their message and code.
 */
import { Worker, parentPort, type Transferable } from 'node:worker_threads';
import { MtpdError, type ErrorCode } from '../errors.js';

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { message: string; code?: string; name?: string };
}

/** URL of a sibling module, `.ts` when running from sources (tests) and `.js` from dist. */
export function siblingUrl(base: string, name: string): URL {
  return new URL(`./${name}${base.endsWith('.ts') ? '.ts' : '.js'}`, base);
}

export class WorkerPool<Req, Res> {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly waiting = new Map<number, { resolve: (r: Res) => void; reject: (e: unknown) => void; worker: number }>();
  private nextId = 0;
  private closed = false;
  private failure: Error | null = null;

  constructor(url: URL, size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`worker pool size must be a positive integer, got ${size}`);
    for (let w = 0; w < size; w++) {
      const worker = new Worker(url);
      worker.unref();
      worker.on('message', (m: Reply) => this.onReply(m));
      worker.on('error', (e) => this.onFatal(e));
      worker.on('exit', (code) => {
        if (!this.closed && code !== 0) this.onFatal(new Error(`data worker exited with code ${code}`));
      });
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private onReply(m: Reply): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (--this.load[w.worker]! === 0) this.workers[w.worker]!.unref(); // idle workers do not keep the process alive
    if (m.ok) w.resolve(m.result as Res);
    else {
      const e = m.error ?? { message: 'unknown worker error' };
      w.reject(e.name === 'MtpdError' && e.code ? new MtpdError(e.code as ErrorCode, e.message) : Object.assign(new Error(e.message), e.code ? { code: e.code } : {}));
    }
  }

  private onFatal(e: Error): void {
    this.failure = e;
    for (const [, w] of this.waiting) w.reject(e);
    this.waiting.clear();
  }

  /** Sends a request to the least busy worker. */
  run(req: Req, transfer: Transferable[] = []): Promise<Res> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    if (this.failure) return Promise.reject(this.failure);
    let best = 0;
    for (let w = 1; w < this.workers.length; w++) if (this.load[w]! < this.load[best]!) best = w;
    const id = this.nextId++;
    if (this.load[best]!++ === 0) this.workers[best]!.ref(); // busy workers keep the process alive until they answer
    return new Promise<Res>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker: best });
      this.workers[best]!.postMessage({ id, req }, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A timer keeps the event loop alive until every worker has exited. terminate() alone does
    // not always (Node 20, workers still answering requests): a loop opening pools of 2 workers
    // and closing each with decodes in flight ended within its first few pools, inside
    // `await close()` with a termination pending (test/data/loader.test.ts).
    const keepAlive = setInterval(() => {}, 1 << 30);
    try {
      await Promise.all(this.workers.map((w) => w.terminate()));
    } finally {
      clearInterval(keepAlive);
    }
    for (const [, w] of this.waiting) w.reject(new Error('worker pool closed'));
    this.waiting.clear();
  }
}

/** Worker side: answer requests with `handler`; its result may say which buffers to transfer. */
export function serveWorker<Req, Res>(handler: (req: Req) => Promise<{ result: Res; transfer?: Transferable[] }>): void {
  const port = parentPort;
  if (!port) throw new Error('serveWorker must run in a worker thread');
  port.on('message', (m: { id: number; req: Req }) => {
    handler(m.req).then(
      ({ result, transfer }) => port.postMessage({ id: m.id, ok: true, result } satisfies Reply, transfer ?? []),
      (e: unknown) => {
        const err = e as { message?: string; code?: string; name?: string };
        port.postMessage({ id: m.id, ok: false, error: { message: err.message ?? String(e), code: err.code, name: err.name } } satisfies Reply);
      },
    );
  });
}
