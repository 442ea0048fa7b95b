/**
 * The torch.save-format writer (src/weights/pth-write.ts): what it writes reads back through
 * mtpd's own .pth reader with every dtype, shape and byte; the zip holds data.pkl, the
 * storages aligned to 64 bytes, and version; the pickle names only the globals that
 * torch.load(weights_only=True) allows. (That Python's torch.load and torchvision's builders take
 * it was checked with scripts/golden/export_check.py.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type Tensor, tensor } from '../../src/tensor.js';
import { readWeights, type StateDict } from '../../src/weights/index.js';
import { unpickle } from '../../src/weights/pickle.js';
import { encodePth, pickleStateDict, savePth } from '../../src/weights/pth-write.js';
import { tempDir } from '../helpers.js';

const dict = (): StateDict =>
  new Map<string, Tensor>([
    ['backbone.body.conv1.weight', tensor('float32', [2, 1, 3, 3], Array.from({ length: 18 }, (_, i) => i / 7 - 1))],
    ['a.f64', tensor('float64', [2], [Math.PI, -1e300])],
    ['b.f16', { dtype: 'float16', shape: [3], data: Uint16Array.from([0x3c00, 0x8001, 0x7bff]) }],
    ['b.i32', tensor('int32', [1, 3], [-1, 0, 2147483647])],
    ['c.i64', { dtype: 'int64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]) }],
    ['c.u8', tensor('uint8', [4], [0, 1, 127, 255])],
    ['c.bool', tensor('bool', [2], [1, 0])],
    ['empty', tensor('float32', [0, 5], [])],
    ['scalar', tensor('float32', [], [7])],
    ['big', tensor('float32', [70000], Array.from({ length: 70000 }, (_, i) => i))],
    ['rank5', tensor('float32', [1, 1, 1, 2, 1], [1, 2])],
  ]);

t.test('a written .pth reads back with the same names, order, dtypes, shapes and bytes', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'model.pth');
  const sd = dict();
  await savePth(path, sd);
  const back = await readWeights(path);
  t.same([...back.keys()], [...sd.keys()]);
  for (const [k, v] of sd) {
    const b = back.get(k)!;
    t.equal(b.dtype, v.dtype, k);
    t.same(b.shape, v.shape, k);
    t.same(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength), Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength), `${k} bytes`);
  }
});

/** Entries of a stored zip: name, data offset, size (local headers walked from the start). */
function zipEntries(buf: Buffer): { name: string; offset: number; size: number }[] {
  const out = [];
  let p = 0;
  while (buf.readUInt32LE(p) === 0x04034b50) {
    t.equal(buf.readUInt16LE(p + 8), 0, 'stored, not deflated');
    const size = buf.readUInt32LE(p + 18);
    const n = buf.readUInt16LE(p + 26);
    const m = buf.readUInt16LE(p + 28);
    const name = buf.subarray(p + 30, p + 30 + n).toString('utf8');
    out.push({ name, offset: p + 30 + n + m, size });
    p += 30 + n + m + size;
  }
  return out;
}

t.test("the archive: <name>/data.pkl, storages aligned to 64 bytes, version 3; only weights_only's globals", async (t) => {
  const buf = Buffer.concat(encodePth(dict(), 'student'));
  const entries = zipEntries(buf);
  t.same(entries.map((e) => e.name), ['student/data.pkl', ...[...Array(11).keys()].map((i) => `student/data/${i}`), 'student/version']);
  for (const e of entries.slice(1, -1)) t.equal(e.offset % 64, 0, `${e.name} at ${e.offset}`);
  const version = entries.at(-1)!;
  t.equal(buf.subarray(version.offset, version.offset + version.size).toString(), '3\n');
  t.equal(buf.readUInt32LE(buf.length - 22), 0x06054b50, 'end of central directory');
  const raw = pickleStateDict(dict());
  const pkl = raw.toString('latin1');
  const globals: string[] = [];
  unpickle(raw, {
    findGlobal: (module, name) => {
      globals.push(`${module}.${name}`);
      return { module, name, call: () => (name === 'OrderedDict' ? new Map() : {}) };
    },
    persistentLoad: (pid) => pid,
  });
  const allowed = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch.FloatStorage', 'torch.DoubleStorage', 'torch.HalfStorage', 'torch.IntStorage', 'torch.LongStorage', 'torch.ByteStorage', 'torch.BoolStorage']);
  t.ok(globals.length > 0 && globals.every((g) => allowed.has(g)), `globals: ${[...new Set(globals)].join(', ')}`);
  t.equal(pkl.charCodeAt(0), 0x80, 'PROTO');
  t.equal(pkl.charCodeAt(1), 2, 'protocol 2');
  t.equal(pkl.at(-1), '.', 'STOP');
});

t.test('the base name of the file names the archive folder; a tensor of the wrong size is refused', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'my model.v1.pth');
  await savePth(path, new Map([['x', tensor('float32', [1], [1])]]));
  t.equal(zipEntries(readFileSync(path))[0]!.name, 'my_model.v1/data.pkl');
  t.throws(() => encodePth(new Map([['x', { dtype: 'float32', shape: [3], data: new Float32Array(2) }]])), /tensor "x": float32 \[3\] needs 12 bytes, its data has 8/);
  t.throws(() => encodePth(new Map(), 'a/b'), /archive name/);
  writeFileSync(join(dir, 'unused'), '');
});
