/**
 * Deterministic release of native objects. A detector, a distiller, a distillation session or an
 * optimizer holds tensors (on the GPU, too) that V8's garbage collector cannot see: it would
 * free them whenever it gets round to the small JS object, if ever. `dispose()` frees them now;
 * every later call on the object throws ERR_MTPD_DISPOSED naming it.
 *
 * `await using det = await createDetector(...)` (TypeScript 5.2+, Symbol.asyncDispose) disposes
 * at the end of the scope; `withDisposable(resource, fn)` does the same without the syntax, and
 * `DisposableStack`-like `Disposer` collects everything a stage makes and frees it in reverse.
 */
import { MtpdError } from './errors.js';

/** Anything with an async `dispose()`. */
export interface Disposable {
  dispose(): Promise<void>;
}

/** The error every call on a disposed object throws. */
export function disposedError(what: string, method: string): MtpdError {
  return new MtpdError('ERR_MTPD_DISPOSED', `${what}.${method}(): used after dispose()`);
}

/** Runs `fn(resource)` and disposes `resource` afterwards, whether fn resolved or threw. */
export async function withDisposable<R extends Disposable, T>(resource: R | Promise<R>, fn: (r: R) => Promise<T> | T): Promise<T> {
  const r = await resource;
  try {
    return await fn(r);
  } finally {
    await r.dispose();
  }
}

/**
 * Collects disposables and frees them in reverse order of adding (a session before the models it
 * holds). `dispose()` frees all of them even when one throws, then rethrows the first error.
 */
export class Disposer implements Disposable {
  private readonly items: Disposable[] = [];

  /** Adds `r` and returns it: `const det = disposer.add(await createDetector(...))`. */
  add<R extends Disposable | null | undefined>(r: R): R {
    if (r) this.items.push(r);
    return r;
  }

  async dispose(): Promise<void> {
    let first: unknown = null;
    while (this.items.length) {
      const r = this.items.pop() as Disposable;
      try {
        await r.dispose();
      } catch (err) {
        first ??= err;
      }
    }
    if (first) throw first;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
