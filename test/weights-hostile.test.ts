// Hostile and unusual torch.save archives, built here byte by byte (a small zip writer and a
// protocol-2 pickle builder) so CI needs no Python. Each must load correctly or fail with a clear
// ERR_MTPD_WEIGHTS / ERR_MTPD_UNSAFE_PICKLE error: never hang, never blow up memory, never
// return wrong numbers.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import t from 'tap';
import { toNumbers } from '../src/tensor.js';
import { loadPth } from '../src/weights/pth.js';
import { unpickle } from '../src/weights/pickle.js';
import { tempDir } from './helpers.js';

interface ZipEntry {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** Lie about the uncompressed size in the headers. */
  declaredSize?: number;
}

function zip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const body = e.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const method = e.deflate ? 8 : 0;
    const crc = crc32(e.data);
    const usize = e.declaredSize ?? e.data.byteLength;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.byteLength, 18);
    local.writeUInt32LE(usize, 22);
    local.writeUInt16LE(name.byteLength, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.byteLength, 20);
    central.writeUInt32LE(usize, 24);
    central.writeUInt16LE(name.byteLength, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.byteLength + body.byteLength;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.byteLength, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// ---- protocol-2 pickle pieces ----
const op = (...bytes: number[]) => Buffer.from(bytes);
const str = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.byteLength);
  return Buffer.concat([op(0x58), len, b]);
};
const int = (n: number) => {
  const b = Buffer.alloc(5);
  b[0] = 0x4a; // BININT
  b.writeInt32LE(n, 1);
  return b;
};
const float = (x: number) => {
  const b = Buffer.alloc(9);
  b[0] = 0x47; // BINFLOAT
  b.writeDoubleBE(x, 1);
  return b;
};
const global = (module: string, name: string) => Buffer.from(`c${module}\n${name}\n`, 'latin1');
const tuple = (items: Buffer[]) => Buffer.concat([op(0x28), ...items, op(0x74)]);
const MARK = op(0x28);
const REDUCE = op(0x52);
const orderedDict = () => Buffer.concat([global('collections', 'OrderedDict'), op(0x29), REDUCE]);

interface TensorSpec {
  key?: string;
  storage?: string;
  numel: number;
  offset: Buffer;
  size: number[];
  stride: number[];
}

function tensorPickle(t: TensorSpec): Buffer {
  const pid = tuple([str('storage'), global('torch', t.storage ?? 'FloatStorage'), str(t.key ?? '0'), str('cpu'), int(t.numel)]);
  return Buffer.concat([
    global('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    pid,
    op(0x51), // BINPERSID
    t.offset,
    tuple(t.size.map(int)),
    tuple(t.stride.map(int)),
    op(0x89), // False
    orderedDict(),
    op(0x74), // TUPLE
    REDUCE,
  ]);
}

/** A state dict {name: tensor, ...} pickle. */
function stateDictPickle(tensors: [string, Buffer][]): Buffer {
  const items = tensors.flatMap(([k, v]) => [str(k), v]);
  return Buffer.concat([op(0x80, 2), orderedDict(), MARK, ...items, op(0x75), op(0x2e)]);
}

const f32 = (...xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

function archive(dir: string, name: string, pkl: Uint8Array, storages: Record<string, Uint8Array | ZipEntry>, extra: ZipEntry[] = []): string {
  const entries: ZipEntry[] = [{ name: `${name}/data.pkl`, data: pkl }];
  for (const [k, v] of Object.entries(storages)) entries.push(v instanceof Uint8Array ? { name: `${name}/data/${k}`, data: v } : { ...v, name: `${name}/data/${k}` });
  entries.push(...extra.map((e) => ({ ...e, name: `${name}/${e.name}` })));
  const p = join(dir, `${name}.pth`);
  writeFileSync(p, zip(entries));
  return p;
}

t.test('the builders make archives the reader accepts (storage offset, strides)', async (t) => {
  const dir = tempDir(t);
  const pkl = stateDictPickle([
    ['tail', tensorPickle({ numel: 4, offset: int(1), size: [3], stride: [1] })],
    ['cols', tensorPickle({ numel: 4, offset: int(0), size: [2, 2], stride: [1, 2] })],
  ]);
  const f = await loadPth(archive(dir, 'good', pkl, { '0': f32(1, 2, 3, 4) }));
  t.same(toNumbers(f.tensors.get('tail')!), [2, 3, 4]);
  t.same(toNumbers(f.tensors.get('cols')!), [1, 3, 2, 4]);
});

t.test('a big-endian archive (byteorder "big") is swapped per element size', async (t) => {
  const dir = tempDir(t);
  const be = Buffer.alloc(16);
  [1, -2, 3.5, 4].forEach((v, i) => be.writeFloatBE(v, 4 * i));
  const le = Buffer.alloc(16);
  le.writeBigInt64BE(-5n, 0);
  le.writeBigInt64BE(1n << 40n, 8);
  const pkl = stateDictPickle([
    ['w', tensorPickle({ numel: 4, offset: int(0), size: [4], stride: [1] })],
    ['l', tensorPickle({ key: '1', storage: 'LongStorage', numel: 2, offset: int(0), size: [2], stride: [1] })],
  ]);
  const f = await loadPth(archive(dir, 'bigend', pkl, { '0': be, '1': le }, [{ name: 'byteorder', data: Buffer.from('big') }]));
  t.same(toNumbers(f.tensors.get('w')!), [1, -2, 3.5, 4]);
  t.same(Array.from(f.tensors.get('l')!.data as BigInt64Array), [-5n, 1n << 40n]);
});

t.test('negative, fractional or non-numeric offsets, sizes and strides are refused', async (t) => {
  const dir = tempDir(t);
  const cases: [string, TensorSpec][] = [
    ['negstride', { numel: 4, offset: int(3), size: [4], stride: [-1] }],
    ['fracoffset', { numel: 4, offset: float(0.5), size: [2], stride: [1] }],
    ['stroffset', { numel: 4, offset: str('x'), size: [2], stride: [1] }],
    ['negoffset', { numel: 4, offset: int(-1), size: [1], stride: [1] }],
    ['negsize', { numel: 4, offset: int(0), size: [-1, -1], stride: [1, 1] }],
    ['negsize1', { numel: 4, offset: int(0), size: [-2], stride: [1] }],
  ];
  for (const [name, spec] of cases) {
    const p = archive(dir, name, stateDictPickle([['w', tensorPickle(spec)]]), { '0': f32(1, 2, 3, 4) });
    await t.rejects(loadPth(p), { code: 'ERR_MTPD_WEIGHTS', message: new RegExp(`${name}\\.pth: tensor "w"`) }, name);
  }
});

t.test('a storage whose size disagrees with the pickle is refused before it is read (zip bomb)', async (t) => {
  const dir = tempDir(t);
  const pkl = stateDictPickle([['w', tensorPickle({ numel: 4, offset: int(0), size: [4], stride: [1] })]]);
  // 64 MiB of zeros deflate to ~64 KiB; the pickle says the storage holds 4 floats.
  const bomb = archive(dir, 'bomb', pkl, { '0': { name: '', data: new Uint8Array(64 << 20), deflate: true } });
  await t.rejects(loadPth(bomb), { code: 'ERR_MTPD_WEIGHTS', message: /bomb\.pth: storage 0 of "w" holds 67108864 bytes, but the file declares 4 FloatStorage elements \(16 bytes\)/ });
  const short = archive(dir, 'short', pkl, { '0': f32(1, 2, 3) });
  await t.rejects(loadPth(short), { code: 'ERR_MTPD_WEIGHTS', message: /short\.pth: storage 0 of "w" holds 12 bytes, but the file declares 4 FloatStorage elements \(16 bytes\)/ });
});

t.test('a data.pkl too large to be a state dict pickle is refused before it is read', async (t) => {
  const dir = tempDir(t);
  const p = join(dir, 'hugepkl.pth');
  writeFileSync(p, zip([{ name: 'hugepkl/data.pkl', data: stateDictPickle([]), deflate: true, declaredSize: 0xfff00000 }]));
  await t.rejects(loadPth(p), { code: 'ERR_MTPD_WEIGHTS', message: /hugepkl\.pth: data\.pkl is 4293918720 bytes/ });
});

t.test('globals are looked up as own names only (no Object.prototype members)', async (t) => {
  const dir = tempDir(t);
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const pkl = Buffer.concat([op(0x80, 2), global('torch', name), op(0x29), REDUCE, op(0x2e)]);
    await t.rejects(loadPth(archive(dir, `g-${name}`, pkl, {})), { code: 'ERR_MTPD_UNSAFE_PICKLE', message: new RegExp(`torch\\.${name}`) }, name);
  }
});

t.test('negative string lengths are malformed, not a loop that eats memory', async (t) => {
  // BINSTRING with length -5 would step back onto its own opcode forever.
  const pkl = Buffer.concat([op(0x80, 2, 0x54), Buffer.from([0xfb, 0xff, 0xff, 0xff]), op(0x2e)]);
  t.throws(() => unpickle(pkl, { findGlobal: () => undefined, file: 'neg.pkl' }), { code: 'ERR_MTPD_WEIGHTS', message: /neg\.pkl: malformed pickle: negative length/ });
});

t.test('large LONG4 integers decode in linear time and exactly', { timeout: 20_000 }, async (t) => {
  const n = 1 << 20;
  const body = Buffer.alloc(n, 0xff);
  body[n - 1] = 0x7f; // positive: 2^(8n-1) - 1
  const len = Buffer.alloc(4);
  len.writeUInt32LE(n);
  const v = unpickle(Buffer.concat([op(0x80, 2, 0x8b), len, body, op(0x2e)]), { findGlobal: () => undefined });
  t.equal(typeof v, 'bigint');
  t.equal(v, (1n << BigInt(8 * n - 1)) - 1n);
  const neg = unpickle(Buffer.concat([op(0x80, 2, 0x8a, 9), Buffer.alloc(9, 0xff), op(0x2e)]), { findGlobal: () => undefined });
  t.equal(neg, -1, 'a 9-byte -1 fits a number');
});

t.test('tuples and APPENDS of many items do not overflow the call stack', async (t) => {
  const n = 300_000;
  const nones = Buffer.alloc(n, 0x4e);
  const tup = unpickle(Buffer.concat([op(0x80, 2, 0x28), nones, op(0x74, 0x2e)]), { findGlobal: () => undefined });
  t.equal((tup as unknown[]).length, n);
  const list = unpickle(Buffer.concat([op(0x80, 2, 0x5d, 0x28), nones, op(0x65, 0x2e)]), { findGlobal: () => undefined });
  t.equal((list as unknown[]).length, n);
});

t.test('an expanded (stride 0) view is materialized when small and refused when huge', async (t) => {
  const dir = tempDir(t);
  const small = archive(dir, 'expand-small', stateDictPickle([['w', tensorPickle({ numel: 1, offset: int(0), size: [2, 3], stride: [0, 0] })]]), { '0': f32(7) });
  t.same(toNumbers((await loadPth(small)).tensors.get('w')!), [7, 7, 7, 7, 7, 7]);
  // 744 bytes from torch.save(torch.zeros(1).expand(40000, 40000)): was a RangeError naming no
  // file ("Invalid typed array length"); at 10000 x 10000, 400 MB and 10 s of gathering.
  for (const [name, n] of [['expand-huge', 40000], ['expand-big', 10000]] as const) {
    const p = archive(dir, name, stateDictPickle([['w', tensorPickle({ numel: 1, offset: int(0), size: [n, n], stride: [0, 0] })]]), { '0': f32(0) });
    await t.rejects(loadPth(p), { code: 'ERR_MTPD_WEIGHTS', message: new RegExp(`${name}\\.pth: tensor "w" \\[${n}, ${n}\\] with stride \\[0, 0\\] views 1 stored elements as ${n * n} `) }, name);
  }
});
