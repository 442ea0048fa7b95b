/** metrics.jsonl: one JSON object per line (per step, per evaluation), appended as the run goes. */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export type MetricsRecord = Record<string, unknown>;

export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  /** Appends one record (synchronously, so a crash loses at most the line being written). */
  write(record: MetricsRecord): void {
    appendFileSync(this.path, `${JSON.stringify({ time: Math.round(Date.now()) / 1000, ...record })}\n`);
  }

  /** Every complete record so far (a torn last line from a crash is skipped). */
  read(): MetricsRecord[] {
    if (!existsSync(this.path)) return [];
    const out: MetricsRecord[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as MetricsRecord);
      } catch {
        // a partial last line
      }
    }
    return out;
  }

  /** Keeps only the records `keep` accepts (on resume: drop steps past the checkpoint). Atomic. */
  retain(keep: (r: MetricsRecord) => boolean): void {
    const kept = this.read().filter(keep);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    renameSync(tmp, this.path);
  }
}
