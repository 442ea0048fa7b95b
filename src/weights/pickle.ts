/**
 * A restricted unpickler for PyTorch checkpoints, in the spirit of `torch.load(weights_only=True)`:
 * it never executes code from the file. Globals are resolved only from an allowlist supplied by
 * the caller (OrderedDict, tensor-rebuild functions, storage types); any other global makes the
 * whole load fail with ERR_MTPD_UNSAFE_PICKLE naming it. Supports pickle protocols 0-5 as far as
 * plain data needs (dicts, lists, tuples, strings, numbers, bytes, persistent ids).
 */
import { MtpdError } from '../errors.js';

/** A global the file referenced, resolved by the allowlist. */
export interface PickleGlobal {
  module: string;
  name: string;
  /** Called for REDUCE (callable(*args)) and NEWOBJ (cls.__new__(cls, *args)). */
  call?: (args: unknown[]) => unknown;
}

/** An object built by BUILD / REDUCE whose type the allowlist knows (e.g. OrderedDict). */
export class PickleObject {
  constructor(
    readonly global: PickleGlobal,
    readonly args: unknown[],
    public state: unknown = undefined,
  ) {}
}

export class PickleTuple extends Array<unknown> {}

export interface UnpickleOptions {
  /** Resolve `module.name` or return undefined to refuse it. */
  findGlobal: (module: string, name: string) => PickleGlobal | undefined;
  /** Resolve a persistent id (BINPERSID / PERSID). */
  persistentLoad?: (pid: unknown) => unknown;
  /** Source file, for error messages. */
  file?: string;
}


function unsafe(file: string, what: string): never {
  throw new MtpdError(
    'ERR_MTPD_UNSAFE_PICKLE',
    `${file}: refuses to load: the pickle references ${what}, which is not on the list of globals a state dict needs ` +
      '(like torch.load(weights_only=True)). If you trust the file, re-save its state dict alone with torch.save(model.state_dict()).',
  );
}

function bad(file: string, msg: string): never {
  throw new MtpdError('ERR_MTPD_WEIGHTS', `${file}: malformed pickle: ${msg}`);
}

export function unpickle(data: Uint8Array, options: UnpickleOptions): unknown {
  const file = options.file ?? 'pickle';
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const memo = new Map<number, unknown>();
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  let pos = 0;

  const need = (n: number) => {
    if (pos + n > data.byteLength) bad(file, `truncated at byte ${pos}`);
  };
  const u8 = () => {
    need(1);
    return data[pos++] as number;
  };
  const u16 = () => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(file, 'length too large');
    return Number(v);
  };
  const bytes = (n: number) => {
    if (n < 0) bad(file, `negative length ${n} at byte ${pos}`);
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) bad(file, 'unterminated text line');
    const s = Buffer.from(data.subarray(pos, end)).toString('utf8');
    pos = end + 1;
    return s;
  };
  const utf8 = (n: number) => Buffer.from(bytes(n)).toString('utf8');
  const pop = () => {
    if (stack.length === 0) bad(file, 'stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) bad(file, 'stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) bad(file, 'MARK missing');
    stack = prev;
    return items;
  };
  const resolve = (module: string, name: string): PickleGlobal => {
    const g = options.findGlobal(module, name);
    if (!g) unsafe(file, `the global ${module}.${name}`);
    return g;
  };
  const tuple = (items: unknown[]) => {
    const t = new PickleTuple();
    for (const x of items) t.push(x); // no spread: it overflows the call stack past ~100k items
    return t;
  };
  const setItem = (obj: unknown, k: unknown, v: unknown) => {
    if (obj instanceof Map) obj.set(k, v);
    else if (obj instanceof PickleObject && obj.state instanceof Map) obj.state.set(k, v);
    else bad(file, 'SETITEM on something that is not a dict');
  };
  const longFromBytes = (b: Uint8Array): number | bigint => {
    if (b.byteLength === 0) return 0;
    // Little-endian two's complement; via hex so a long LONG4 costs linear, not quadratic, time.
    let v = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
    if ((b[b.byteLength - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.byteLength);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const callGlobal = (g: unknown, args: unknown[]): unknown => {
    if (!(g && typeof g === 'object' && 'module' in g)) bad(file, 'REDUCE on something that is not a global');
    const pg = g as PickleGlobal;
    return pg.call ? pg.call(args) : new PickleObject(pg, args);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad(file, 'pickle protocol newer than 5');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x74: {
        // TUPLE (pop the mark before touching `stack`: popMark replaces it)
        const items = popMark();
        stack.push(tuple(items));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: {
        // LIST
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const m = new Map();
        for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i], items[i + 1]);
        stack.push(m);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) bad(file, 'ADDITEMS on something that is not a set');
        for (const it of items) s.add(it);
        break;
      }
      case 0x91: {
        // FROZENSET
        const items = popMark();
        stack.push(new Set(items));
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) bad(file, 'APPEND on something that is not a list');
        l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) bad(file, 'APPENDS on something that is not a list');
        for (const x of items) l.push(x);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = top();
        for (let i = 0; i + 1 < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: // LONG1
        stack.push(longFromBytes(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(longFromBytes(bytes(u32())));
        break;
      case 0x49: {
        // INT (text)
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(Number.parseInt(line().replace(/L$/, ''), 10));
        break;
      case 0x47: {
        // BINFLOAT (big-endian double)
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x46: // FLOAT (text)
        stack.push(Number.parseFloat(line()));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(u64()));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        stack.push(line());
        break;
      case 0x54: // BINSTRING
        stack.push(Buffer.from(bytes(i32())).toString('latin1'));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(Buffer.from(bytes(u8())).toString('latin1'));
        break;
      case 0x42: // BINBYTES
        stack.push(new Uint8Array(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(new Uint8Array(bytes(u8())));
        break;
      case 0x8e: // BINBYTES8
        stack.push(new Uint8Array(bytes(u64())));
        break;
      case 0x96: // BYTEARRAY8
        stack.push(new Uint8Array(bytes(u64())));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT (text)
        memo.set(Number.parseInt(line(), 10), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: {
        // BINGET
        const k = u8();
        if (!memo.has(k)) bad(file, `memo ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x6a: {
        // LONG_BINGET
        const k = u32();
        if (!memo.has(k)) bad(file, `memo ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x67: {
        // GET (text)
        const k = Number.parseInt(line(), 10);
        if (!memo.has(k)) bad(file, `memo ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(resolve(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad(file, 'STACK_GLOBAL needs two strings');
        stack.push(resolve(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!Array.isArray(args)) bad(file, 'REDUCE arguments are not a tuple');
        stack.push(callGlobal(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) bad(file, 'NEWOBJ arguments are not a tuple');
        stack.push(callGlobal(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) bad(file, 'NEWOBJ_EX arguments are not a tuple');
        stack.push(callGlobal(cls, args));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state) / obj.__dict__.update(state)
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        else if (obj instanceof Map) {
          // OrderedDict carries attributes such as _metadata: kept aside, never executed.
          (obj as Map<unknown, unknown> & { pickleState?: unknown }).pickleState = state;
        } else if (obj && typeof obj === 'object' && 'tensorBuild' in obj) {
          (obj as { tensorBuild: unknown }).tensorBuild = state;
        } else bad(file, 'BUILD on a plain value');
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) bad(file, 'persistent id without a loader');
        stack.push(options.persistentLoad(pid));
        break;
      }
      case 0x50: {
        // PERSID (text)
        const pid = line();
        if (!options.persistentLoad) bad(file, 'persistent id without a loader');
        stack.push(options.persistentLoad(pid));
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        unsafe(file, 'an extension-registry code (EXT1/2/4)');
        break;
      case 0x69: // INST
      case 0x6f: // OBJ
        unsafe(file, 'a class instantiated with INST/OBJ');
        break;
      default:
        bad(file, `unknown opcode 0x${op.toString(16)} at byte ${pos - 1}`);
    }
  }
}
