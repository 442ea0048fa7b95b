/**
 * safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__}, then
 * the raw little-endian tensor bytes. Files written here are readable by the Python
 * `safetensors` package and vice versa; writes are atomic.
 */
import { open, readFile } from 'node:fs/promises';
import { MtpdError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, fromBytes, numel, type Tensor, toBytes } from '../tensor.js';
import { writeFileAtomic } from './atomic.js';

export type StateDict = Map<string, Tensor>;

/** A state dict from the addon's {names, tensors} pair (parallel arrays, in the module's order). */
export function stateDictFromNative(sd: { names: string[]; tensors: Tensor[] }): StateDict {
  return new Map(sd.names.map((n, i) => [n, sd.tensors[i] as Tensor]));
}

const TO_ST: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  int32: 'I32',
  int64: 'I64',
  uint8: 'U8',
  bool: 'BOOL',
};

const MAX_HEADER = 100 * 1024 * 1024;

function fail(file: string, msg: string): never {
  throw new MtpdError('ERR_MTPD_WEIGHTS', `${file}: ${msg}`);
}

/** Serializes tensors (in the map's order) with optional string metadata. */
export function encodeSafetensors(tensors: StateDict, metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new MtpdError('ERR_MTPD_WEIGHTS', 'a tensor cannot be named __metadata__');
    const st = Object.hasOwn(TO_ST, t.dtype) ? TO_ST[t.dtype] : undefined;
    if (!st) throw new MtpdError('ERR_MTPD_WEIGHTS', `tensor "${name}": dtype ${String(t.dtype)} cannot be written as safetensors`);
    const bytes = toBytes(t);
    const want = numel(t.shape) * BYTES_PER_ELEMENT[t.dtype];
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || bytes.byteLength !== want) {
      // Written anyway, the file would not read back (or would read back other tensors).
      throw new MtpdError('ERR_MTPD_WEIGHTS', `tensor "${name}": ${t.dtype} [${t.shape.join(', ')}] needs ${want} bytes, its data has ${bytes.byteLength}`);
    }
    header[name] = { dtype: st, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    parts.push(bytes);
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return [len, json, ...parts];
}

export async function saveSafetensors(path: string, tensors: StateDict, metadata?: Record<string, string>, options: { sync?: boolean } = {}): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata), options);
}

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

/** Parses a safetensors image. `file` names the source in errors. */
export function decodeSafetensors(buf: Uint8Array, file = 'safetensors'): SafetensorsFile {
  if (buf.byteLength < 8) fail(file, 'too short to be a safetensors file');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, buf.byteLength - 8))) {
    fail(file, `header length ${n} does not fit the file (${buf.byteLength} bytes); not a safetensors file or truncated`);
  }
  const headerLen = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, headerLen).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    fail(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(file, 'header is not a JSON object');
  const data = buf.subarray(8 + headerLen);
  const metadata: Record<string, string> = {};
  const tensors: StateDict = new Map();
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry && typeof entry === 'object') {
        for (const [k, v] of Object.entries(entry)) if (typeof v === 'string') metadata[k] = v;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') fail(file, `entry "${name}" is not an object`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(file, `tensor "${name}": bad shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[0] > offs[1]) {
      fail(file, `tensor "${name}": bad data_offsets`);
    }
    const [begin, end] = offs as [number, number];
    if (end > data.byteLength) fail(file, `tensor "${name}": data_offsets [${begin}, ${end}] run past the end of the file (truncated?)`);
    const bytes = data.subarray(begin, end);
    const count = numel(shape as number[]);
    spans.push([begin, end, name]);
    tensors.set(name, decodeTensor(file, name, String(e.dtype), shape as number[], count, bytes));
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1] as [number, number, string];
    const cur = spans[i] as [number, number, string];
    if (cur[0] < prev[1]) fail(file, `tensors "${prev[2]}" and "${cur[2]}" overlap`);
  }
  return { tensors, metadata };
}

function decodeTensor(file: string, name: string, dtype: string, shape: number[], count: number, bytes: Uint8Array): Tensor {
  const expect = (size: number) => {
    if (bytes.byteLength !== count * size) {
      fail(file, `tensor "${name}" (${dtype} [${shape.join(', ')}]) needs ${count * size} bytes, has ${bytes.byteLength}`);
    }
  };
  const direct: Record<string, DType> = { F32: 'float32', F64: 'float64', F16: 'float16', I32: 'int32', I64: 'int64', U8: 'uint8', BOOL: 'bool' };
  const d = direct[dtype];
  if (d) {
    expect(BYTES_PER_ELEMENT[d]);
    return fromBytes(d, shape, bytes);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'BF16') {
    expect(2);
    const out = new Float32Array(count);
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u[i] = dv.getUint16(2 * i, true) << 16;
    return { dtype: 'float32', shape, data: out };
  }
  if (dtype === 'I16' || dtype === 'I8' || dtype === 'U16') {
    const size = dtype === 'I8' ? 1 : 2;
    expect(size);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      out[i] = dtype === 'I8' ? dv.getInt8(i) : dtype === 'I16' ? dv.getInt16(2 * i, true) : dv.getUint16(2 * i, true);
    }
    return { dtype: 'int32', shape, data: out };
  }
  fail(file, `tensor "${name}" has dtype ${dtype}, which mtpd does not read`);
}

/**
 * Reads a safetensors file. `buffer(bytes)`: where to read it, a buffer of at least that many
 * bytes the caller reuses from read to read (streaming many same-sized files without a new
 * allocation each); the tensors then view that buffer and are valid until it is reused.
 */
export async function loadSafetensors(path: string, options: { buffer?: (bytes: number) => Uint8Array } = {}): Promise<SafetensorsFile> {
  const cannot = (err: unknown): never => {
    throw new MtpdError('ERR_MTPD_WEIGHTS', `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  };
  if (!options.buffer) {
    let buf: Buffer;
    try {
      buf = await readFile(path);
    } catch (err) {
      return cannot(err);
    }
    return decodeSafetensors(buf, path);
  }
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, 'r');
    const size = (await fh.stat()).size;
    const buf = options.buffer(size);
    if (buf.byteLength < size) throw new MtpdError('ERR_MTPD_ARGUMENT', `${path}: the read buffer holds ${buf.byteLength} bytes, the file has ${size}`);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) fail(path, `ends after ${off} of ${size} bytes (changed while read?)`);
      off += bytesRead;
    }
    return decodeSafetensors(buf.subarray(0, size), path);
  } catch (err) {
    if (err instanceof MtpdError) throw err;
    return cannot(err);
  } finally {
    await fh?.close();
  }
}

/** Reads only the header (names, dtypes, shapes, metadata) without the tensor bytes. */
export async function readSafetensorsHeader(path: string): Promise<Record<string, unknown>> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    fail(path, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const len = Buffer.alloc(8);
    if ((await fh.read(len, 0, 8, 0)).bytesRead < 8) fail(path, 'too short to be a safetensors file');
    const big = len.readBigUInt64LE();
    const n = Number(big);
    if (big > BigInt(MAX_HEADER)) fail(path, `header length ${big} is too large; not a safetensors file`);
    const h = Buffer.alloc(n);
    if ((await fh.read(h, 0, n, 8)).bytesRead < n) fail(path, `header length ${n} does not fit the file; not a safetensors file or truncated`);
    try {
      return JSON.parse(h.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      fail(path, `header is not valid JSON (${(err as Error).message})`);
    }
  } finally {
    await fh.close();
  }
}
