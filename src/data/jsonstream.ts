/**
 * Streams a JSON file whose top level is an object, handing each element of chosen top-level arrays
 * (COCO's `images`, `annotations`, `categories`) to a callback one at a time. The file is never
 * held as one string, so annotation files beyond V8's ~512 MB string limit load; each element is a
 * small slice parsed with the native JSON.parse, which is much faster than a JS token stream.
 * Keys may come in any order. Other top-level values are parsed whole and handed to `other`.
 *
 * Errors name the file, the line and what was being read (`annotations[1234]`).
 */
import { createReadStream } from 'node:fs';
import { MtpdError } from '../errors.js';

export interface TopLevelHandlers {
  /** Callbacks for top-level keys whose value must be an array, streamed element by element. */
  arrays: Record<string, (element: unknown, index: number) => void>;
  /** Any other top-level key, with its parsed value. */
  other?: (key: string, value: unknown) => void;
  /** Called for every top-level key as it is met. */
  onKey?: (key: string) => void;
}

type Mode =
  | 'start'
  | 'key-or-end'
  | 'key'
  | 'colon'
  | 'value-start'
  | 'elem-start'
  | 'elem'
  | 'elem-sep'
  | 'value'
  | 'after-value'
  | 'done';

const enum B {
  Quote = 34,
  Backslash = 92,
  LBrace = 123,
  RBrace = 125,
  LBracket = 91,
  RBracket = 93,
  Comma = 44,
  Colon = 58,
  NL = 10,
  CR = 13,
  Space = 32,
  Tab = 9,
}

/** 0: nothing, 1: quote, 2: opening bracket, 3: closing bracket, 4: newline. */
const CLASS = new Uint8Array(256);
CLASS[B.Quote] = 1;
CLASS[B.LBrace] = 2;
CLASS[B.LBracket] = 2;
CLASS[B.RBrace] = 3;
CLASS[B.RBracket] = 3;
CLASS[B.NL] = 4;

function isWs(b: number): boolean {
  return b === B.Space || b === B.NL || b === B.CR || b === B.Tab;
}

export class TopLevelJsonStream {
  private mode: Mode = 'start';
  private line = 1;
  private offset = 0; // bytes consumed before the current chunk
  private key = '';
  private keyPieces: Buffer[] = [];
  private elemIndex = 0;
  private afterComma = false;
  // value capture
  private pieces: Buffer[] = [];
  private capDepth = 0;
  private capInStr = false;
  private capEsc = false;
  private capKind: 'container' | 'string' | 'literal' = 'container';
  private capLine = 1;
  private first = true;

  constructor(
    private readonly file: string,
    private readonly handlers: TopLevelHandlers,
  ) {}

  private fail(msg: string, at?: number): never {
    const where = at === undefined ? `line ${this.line}` : `line ${this.line}, byte ${at}`;
    throw new MtpdError('ERR_MTPD_DATA', `${this.file}: ${msg} (${where})`);
  }

  private what(): string {
    return this.mode === 'elem' || this.mode === 'elem-sep' || this.mode === 'elem-start' ? `'${this.key}'[${this.elemIndex}]` : `'${this.key}'`;
  }

  feed(buf: Buffer): void {
    let i = 0;
    const n = buf.length;
    if (this.first) {
      this.first = false;
      if (n >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) i = 3; // UTF-8 BOM
    }
    while (i < n) {
      switch (this.mode) {
        case 'start': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (b !== B.LBrace) this.fail(`expected a JSON object at the top level, found ${JSON.stringify(String.fromCharCode(b))}`, this.offset + i);
          this.mode = 'key-or-end';
          this.afterComma = false;
          i++;
          break;
        }
        case 'key-or-end': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (b === B.Quote) { this.mode = 'key'; this.keyPieces = []; i++; this.capEsc = false; break; }
          if (b === B.RBrace && !this.afterComma) { this.mode = 'done'; i++; break; }
          this.fail(`malformed JSON: expected a key string at the top level, found ${JSON.stringify(String.fromCharCode(b))}`, this.offset + i);
        }
        // falls through (unreachable: fail throws)
        case 'key': {
          const start = i;
          let done = false;
          for (; i < n; i++) {
            const b = buf[i]!;
            if (this.capEsc) { this.capEsc = false; continue; }
            if (b === B.Backslash) { this.capEsc = true; continue; }
            if (b === B.Quote) { done = true; break; }
          }
          this.keyPieces.push(buf.subarray(start, i));
          if (done) {
            const raw = Buffer.concat(this.keyPieces).toString('utf8');
            try {
              this.key = JSON.parse(`"${raw}"`) as string;
            } catch {
              this.fail(`malformed JSON: bad key string ${JSON.stringify(raw.slice(0, 40))}`);
            }
            this.mode = 'colon';
            this.handlers.onKey?.(this.key);
            i++;
          }
          break;
        }
        case 'colon': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (b !== B.Colon) this.fail(`malformed JSON: expected ':' after key '${this.key}'`, this.offset + i);
          this.mode = 'value-start';
          i++;
          break;
        }
        case 'value-start': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (Object.hasOwn(this.handlers.arrays, this.key)) {
            if (b !== B.LBracket) this.fail(`'${this.key}' must be an array`, this.offset + i);
            this.mode = 'elem-start';
            this.afterComma = false;
            this.elemIndex = 0;
            i++;
          } else {
            this.beginCapture(b);
            this.mode = 'value';
          }
          break;
        }
        case 'elem-start': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (b === B.RBracket && !this.afterComma) { this.mode = 'after-value'; i++; break; }
          this.beginCapture(b);
          this.mode = 'elem';
          break;
        }
        case 'elem':
        case 'value': {
          const [next, done] = this.capture(buf, i);
          i = next;
          if (done) {
            const text = this.pieces.length === 1 ? this.pieces[0]!.toString('utf8') : Buffer.concat(this.pieces).toString('utf8');
            this.pieces = [];
            let value: unknown;
            try {
              value = JSON.parse(text);
            } catch (e) {
              const saved = this.line;
              this.line = this.capLine;
              const msg = (e as Error).message;
              try {
                this.fail(`malformed JSON in ${this.what()} starting here: ${msg}`);
              } finally {
                this.line = saved;
              }
            }
            if (this.mode === 'elem') {
              this.handlers.arrays[this.key]!(value, this.elemIndex);
              this.elemIndex++;
              this.mode = 'elem-sep';
            } else {
              this.handlers.other?.(this.key, value);
              this.mode = 'after-value';
            }
          }
          break;
        }
        case 'elem-sep': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (b === B.Comma) { this.mode = 'elem-start'; this.afterComma = true; i++; break; }
          if (b === B.RBracket) { this.mode = 'after-value'; i++; break; }
          this.fail(`malformed JSON: expected ',' or ']' after '${this.key}'[${this.elemIndex - 1}]`, this.offset + i);
        }
        // falls through (unreachable)
        case 'after-value': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          if (b === B.Comma) { this.mode = 'key-or-end'; this.afterComma = true; i++; break; }
          if (b === B.RBrace) { this.mode = 'done'; i++; break; }
          this.fail(`malformed JSON: expected ',' or '}' after the value of '${this.key}'`, this.offset + i);
        }
        // falls through (unreachable)
        case 'done': {
          const b = buf[i]!;
          if (isWs(b)) { if (b === B.NL) this.line++; i++; break; }
          this.fail('malformed JSON: unexpected data after the top-level object', this.offset + i);
        }
      }
    }
    this.offset += n;
  }

  private beginCapture(b: number): void {
    this.pieces = [];
    this.capInStr = false;
    this.capEsc = false;
    this.capDepth = 0;
    this.capLine = this.line;
    this.capKind = b === B.LBrace || b === B.LBracket ? 'container' : b === B.Quote ? 'string' : 'literal';
  }

  /** Scans the value being captured from buf[i]; returns [next index, complete]. */
  private capture(buf: Buffer, i: number): [number, boolean] {
    const n = buf.length;
    const start = i;
    let inStr = this.capInStr;
    let esc = this.capEsc;
    let depth = this.capDepth;
    let line = this.line;
    let done = false;
    if (this.capKind === 'literal') {
      for (; i < n; i++) {
        const b = buf[i]!;
        if (b === B.Comma || b === B.RBracket || b === B.RBrace || isWs(b)) { done = true; break; }
      }
    } else if (this.capKind === 'string') {
      // the opening quote is at `start` on the first call
      let j = this.pieces.length === 0 ? i + 1 : i;
      for (; j < n; j++) {
        const b = buf[j]!;
        if (esc) { esc = false; continue; }
        if (b === B.Backslash) { esc = true; continue; }
        if (b === B.Quote) { done = true; j++; break; }
      }
      i = j;
    } else {
      // Outside strings only 6 byte values matter; a class table makes the common case one load.
      // Inside strings, jump to the next quote with indexOf and count the backslashes before it.
      for (; i < n; i++) {
        if (inStr) {
          if (esc) {
            esc = false;
            continue;
          }
          const q = buf.indexOf(B.Quote, i);
          if (q < 0) {
            // string continues in the next chunk; remember a trailing backslash run
            let k = n - 1;
            while (k >= i && buf[k] === B.Backslash) k--;
            esc = (n - 1 - k) % 2 === 1;
            i = n;
            break;
          }
          let k = q - 1;
          while (k >= i && buf[k] === B.Backslash) k--;
          i = q;
          if ((q - 1 - k) % 2 === 0) inStr = false; // an unescaped quote
          continue;
        }
        const c = CLASS[buf[i]!]!;
        if (c === 0) continue;
        if (c === 1) inStr = true;
        else if (c === 2) depth++;
        else if (c === 3) {
          if (--depth === 0) {
            i++;
            done = true;
            break;
          }
        } else line++;
      }
    }
    this.capInStr = inStr;
    this.capEsc = esc;
    this.capDepth = depth;
    this.line = line;
    this.pieces.push(buf.subarray(start, i));
    return [i, done];
  }

  end(): void {
    if (this.mode === 'value' && this.capKind === 'literal' && this.pieces.length > 0) {
      this.fail(`unexpected end of file inside ${this.what()} (truncated file?)`);
    }
    if (this.mode !== 'done') {
      const inside = this.mode === 'start' ? 'before the top-level object' : this.mode === 'after-value' || this.mode === 'key-or-end' ? 'in the top-level object' : `inside ${this.what()}`;
      this.fail(`unexpected end of file ${inside} (truncated file?)`);
    }
  }
}

/** Streams `file` through a TopLevelJsonStream. */
export async function streamTopLevelJson(file: string, handlers: TopLevelHandlers, chunkSize = 1 << 20): Promise<void> {
  const parser = new TopLevelJsonStream(file, handlers);
  const stream = createReadStream(file, { highWaterMark: chunkSize });
  try {
    for await (const chunk of stream) parser.feed(chunk as Buffer);
  } catch (e) {
    stream.destroy();
    if (e instanceof MtpdError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new MtpdError('ERR_MTPD_DATA', `${file}: annotation file not found`, { cause: e });
    throw new MtpdError('ERR_MTPD_DATA', `${file}: cannot read: ${err.message}`, { cause: e });
  }
  parser.end();
}
