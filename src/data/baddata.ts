/**
 * What to do with bad data: stop with a clear error naming the file and the annotation (or image)
 * id (`'error'`, the default), or skip the offending item, count it, and report a summary at the end
 * (`'skip'`).
 */
import { MtpdError } from '../errors.js';

export type BadDataPolicy = 'error' | 'skip';

export type BadDataKind =
  | 'malformed-image-entry'
  | 'duplicate-image-id'
  | 'malformed-annotation'
  | 'duplicate-annotation-id'
  | 'malformed-category'
  | 'unknown-category'
  | 'missing-image'
  | 'zero-area-box'
  | 'box-outside-image'
  | 'missing-image-file'
  | 'unreadable-image'
  | 'image-size-mismatch';

export class BadDataLog {
  readonly counts = new Map<BadDataKind, number>();
  readonly examples = new Map<BadDataKind, string[]>();

  constructor(readonly policy: BadDataPolicy = 'error') {
    if (policy !== 'error' && policy !== 'skip') throw new MtpdError('ERR_MTPD_CONFIG', `badData must be 'error' or 'skip', got ${JSON.stringify(policy)}`);
  }

  /** Throws under 'error'; counts under 'skip'. */
  record(kind: BadDataKind, message: string): void {
    if (this.policy === 'error') throw new MtpdError('ERR_MTPD_DATA', `${message} [${kind}; set badData: 'skip' to skip and count these]`);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const ex = this.examples.get(kind) ?? [];
    if (ex.length < 3) ex.push(message);
    this.examples.set(kind, ex);
  }

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** One line per kind, with up to three examples; '' when nothing was skipped. */
  summary(): string {
    if (this.total === 0) return '';
    const lines = [`skipped ${this.total} bad item(s):`];
    for (const [kind, n] of [...this.counts].sort((a, b) => a[0].localeCompare(b[0]))) {
      lines.push(`  ${kind}: ${n} (e.g. ${(this.examples.get(kind) ?? []).join('; ')})`);
    }
    return lines.join('\n');
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
