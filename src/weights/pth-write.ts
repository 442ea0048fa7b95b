/**
 * Writes a state dict as `torch.save` does (PyTorch >= 1.6, the zip format): an uncompressed zip
 * archive of `<name>/data.pkl` (a protocol-2 pickle of an OrderedDict of
 * `torch._utils._rebuild_tensor_v2` calls, one persistent storage per tensor), the raw
 * little-endian storages `<name>/data/<key>` (each aligned to 64 bytes in the file, as torch
 * aligns them) and `<name>/version`. Only the globals `torch.load(f, weights_only=True)` allows
 * appear, so Python reads it with the safe loader, and pth.ts reads it back.
 */
import { crc32 } from 'node:zlib';
import { MtpdError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, numel, toBytes } from '../tensor.js';
import { writeFileAtomic } from './atomic.js';
import type { StateDict } from './safetensors.js';

const STORAGE_OF: Record<DType, string> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

/** Protocol-2 pickle opcodes used here. */
const OP = {
  PROTO: 0x80,
  GLOBAL: 0x63, // c
  EMPTY_TUPLE: 0x29, // )
  REDUCE: 0x52, // R
  MARK: 0x28, // (
  TUPLE: 0x74, // t
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  BINUNICODE: 0x58, // X
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  BININT2: 0x4d, // M
  LONG1: 0x8a,
  BINPERSID: 0x51, // Q
  NEWFALSE: 0x89,
  SETITEMS: 0x75, // u
  STOP: 0x2e, // .
} as const;

class PickleWriter {
  private readonly parts: Buffer[] = [];
  op(code: number): void {
    this.parts.push(Buffer.of(code));
  }
  global(module: string, name: string): void {
    this.parts.push(Buffer.of(OP.GLOBAL), Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.byteLength);
    this.parts.push(Buffer.of(OP.BINUNICODE), len, b);
  }
  int(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot pickle ${n}`);
    if (n < 0x100) this.parts.push(Buffer.of(OP.BININT1, n));
    else if (n < 0x10000) this.parts.push(Buffer.of(OP.BININT2, n & 0xff, n >> 8));
    else if (n < 0x80000000) {
      const b = Buffer.alloc(5);
      b[0] = OP.BININT;
      b.writeInt32LE(n, 1);
      this.parts.push(b);
    } else {
      // LONG1: little-endian two's complement, 8 bytes suffice for any safe integer
      const b = Buffer.alloc(10);
      b[0] = OP.LONG1;
      b[1] = 8;
      b.writeBigInt64LE(BigInt(n), 2);
      this.parts.push(b);
    }
  }
  tuple(items: number[]): void {
    if (items.length === 0) return this.op(OP.EMPTY_TUPLE);
    if (items.length > 3) this.op(OP.MARK);
    for (const v of items) this.int(v);
    this.op(items.length === 1 ? OP.TUPLE1 : items.length === 2 ? OP.TUPLE2 : items.length === 3 ? OP.TUPLE3 : OP.TUPLE);
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Contiguous strides of a shape (C order). */
function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i] as number;
  }
  return s;
}

/** data.pkl of a state dict: OrderedDict([(name, _rebuild_tensor_v2(storage i, 0, size, stride, False, OrderedDict())), ...]). */
export function pickleStateDict(tensors: StateDict): Buffer {
  const p = new PickleWriter();
  p.op(OP.PROTO);
  p.op(2);
  p.global('collections', 'OrderedDict');
  p.op(OP.EMPTY_TUPLE);
  p.op(OP.REDUCE);
  p.op(OP.MARK);
  let key = 0;
  for (const [name, t] of tensors) {
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.op(OP.MARK);
    // persistent id ('storage', torch.<Type>Storage, key, location, numel)
    p.op(OP.MARK);
    p.str('storage');
    p.global('torch', STORAGE_OF[t.dtype]);
    p.str(String(key++));
    p.str('cpu');
    p.int(numel(t.shape));
    p.op(OP.TUPLE);
    p.op(OP.BINPERSID);
    p.int(0); // storage offset
    p.tuple(t.shape);
    p.tuple(contiguousStrides(t.shape));
    p.op(OP.NEWFALSE); // requires_grad
    p.global('collections', 'OrderedDict'); // backward hooks
    p.op(OP.EMPTY_TUPLE);
    p.op(OP.REDUCE);
    p.op(OP.TUPLE);
    p.op(OP.REDUCE);
  }
  p.op(OP.SETITEMS);
  p.op(OP.STOP);
  return p.bytes();
}

const ALIGN = 64;

/**
 * The zip archive of `entries` (stored, no compression), each entry's data aligned to 64 bytes
 * in the file by padding its local header's extra field, as torch's writer does.
 */
export function zipStored(entries: { name: string; data: Uint8Array }[]): Buffer[] {
  const out: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const size = e.data.byteLength;
    if (size >= 0xffffffff || offset >= 0xffffffff) throw new MtpdError('ERR_MTPD_WEIGHTS', `${e.name}: archives of 4 GiB or more (zip64) are not written`);
    const crc = crc32(e.data);
    const headerLen = 30 + name.byteLength;
    // extra field: id 'FB' (torch's), 2-byte length, then padding up to the alignment
    let pad = (ALIGN - ((offset + headerLen + 4) % ALIGN)) % ALIGN;
    const extra = Buffer.alloc(4 + pad);
    extra.write('FB', 0, 'latin1');
    extra.writeUInt16LE(pad, 2);
    pad = extra.byteLength;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // date 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(size, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.byteLength, 26);
    local.writeUInt16LE(extra.byteLength, 28);
    out.push(local, name, extra, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4); // version made by
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0, 8);
    cd.writeUInt16LE(0, 10);
    cd.writeUInt16LE(0, 12);
    cd.writeUInt16LE(0x21, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(size, 20);
    cd.writeUInt32LE(size, 24);
    cd.writeUInt16LE(name.byteLength, 28);
    cd.writeUInt16LE(0, 30); // extra
    cd.writeUInt16LE(0, 32); // comment
    cd.writeUInt16LE(0, 34); // disk
    cd.writeUInt16LE(0, 36); // internal attrs
    cd.writeUInt32LE(0, 38); // external attrs
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    offset += 30 + name.byteLength + pad + size;
  }
  const cdSize = central.reduce((n, b) => n + b.byteLength, 0);
  if (offset + cdSize >= 0xffffffff) throw new MtpdError('ERR_MTPD_WEIGHTS', 'archives of 4 GiB or more (zip64) are not written');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return [...out, ...central, end];
}

/** The chunks of a torch.save-format file of `tensors`; `archive` names its top folder (torch: the file's base name). */
export function encodePth(tensors: StateDict, archive = 'archive'): Buffer[] {
  if (!/^[A-Za-z0-9_.-]+$/.test(archive)) throw new MtpdError('ERR_MTPD_ARGUMENT', `archive name ${JSON.stringify(archive)}: use letters, digits, _ . -`);
  const entries: { name: string; data: Uint8Array }[] = [{ name: `${archive}/data.pkl`, data: pickleStateDict(tensors) }];
  let key = 0;
  for (const [name, t] of tensors) {
    if (!Object.hasOwn(STORAGE_OF, t.dtype)) throw new MtpdError('ERR_MTPD_WEIGHTS', `tensor "${name}": dtype ${String(t.dtype)} cannot be written to a .pth`);
    const bytes = toBytes(t);
    const want = numel(t.shape) * BYTES_PER_ELEMENT[t.dtype];
    if (bytes.byteLength !== want) throw new MtpdError('ERR_MTPD_WEIGHTS', `tensor "${name}": ${t.dtype} [${t.shape.join(', ')}] needs ${want} bytes, its data has ${bytes.byteLength}`);
    entries.push({ name: `${archive}/data/${key++}`, data: bytes });
  }
  entries.push({ name: `${archive}/version`, data: Buffer.from('3\n') });
  return zipStored(entries);
}

/** Writes `tensors` as a torch.save `.pth` (atomically: a temporary file renamed over `path`). */
export async function savePth(path: string, tensors: StateDict): Promise<void> {
  const base = (path.split(/[\\/]/).pop() ?? 'archive').replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_') || 'archive';
  await writeFileAtomic(path, encodePth(tensors, base));
}
