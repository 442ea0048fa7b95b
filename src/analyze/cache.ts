/**
 * What makes `mtpd analyze` cheap to rerun: every measurement of one model (its loss on the
 * subset, a landscape, the sharpness) is kept as JSON in <out>/cache/, named by the model and a
 * hash of everything it depends on (the weights file's path, size and time, the subset, the
 * measurement's options), and read back instead of recomputed.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileNameOf } from '../train/eval-cache.js';
import { writeFileAtomic } from '../weights/atomic.js';

export class AnalysisCache {
  constructor(readonly dir: string) {}

  private path(model: string, kind: string, weights: string, key: unknown): string {
    const st = statSync(weights);
    const h = createHash('sha256').update(JSON.stringify({ weights, size: st.size, mtime: st.mtimeMs, key })).digest('hex').slice(0, 16);
    return join(this.dir, `${fileNameOf(model)}.${kind}.${h}.json`);
  }

  /** The cached value, or `compute()`'s, written for next time. */
  async get<T>(model: string, kind: string, weights: string, key: unknown, compute: () => Promise<T>): Promise<T> {
    const p = this.path(model, kind, weights, key);
    if (existsSync(p)) return JSON.parse(readFileSync(p, 'utf8')) as T;
    const v = await compute();
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(p, [Buffer.from(JSON.stringify(v))]);
    return v;
  }
}
