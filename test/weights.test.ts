import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Module } from '../src/module.js';
import { type Tensor, tensor, toNumbers } from '../src/tensor.js';
import { decodeSafetensors, encodeSafetensors, loadPth, loadSafetensors, readSafetensorsHeader, readWeights, saveSafetensors, sniffWeightsFormat, type StateDict } from '../src/weights/index.js';
import { haveAddon, tempDir } from './helpers.js';

const fixtures = new URL('./fixtures/weights/', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')) as {
  conv_bn: { keys: string[]; shapes: Record<string, number[]>; conv_input: number[]; conv_output: number[]; conv_output_shape: number[]; num_batches_tracked: number };
  dtypes: Record<string, { shape: number[]; values: number[] }>;
};

const allDtypes = (): StateDict =>
  new Map<string, Tensor>([
    ['a.f32', tensor('float32', [2, 2], [1, -2, 3.5, 1e-20])],
    ['a.f64', tensor('float64', [2], [Math.PI, -1e300])],
    ['b.f16', { dtype: 'float16', shape: [3], data: Uint16Array.from([0x3c00, 0x8001, 0x7bff]) }],
    ['b.i32', tensor('int32', [1, 3], [-1, 0, 2147483647])],
    ['c.i64', { dtype: 'int64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]) }],
    ['c.u8', tensor('uint8', [4], [0, 1, 127, 255])],
    ['c.bool', tensor('bool', [2], [1, 0])],
    ['empty', tensor('float32', [0, 5], [])],
    ['scalar', tensor('float32', [], [7])],
  ]);

t.test('safetensors round trip keeps names, order, dtypes and bytes', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'w.safetensors');
  const sd = allDtypes();
  await saveSafetensors(path, sd, { note: 'hello' });
  const back = await loadSafetensors(path);
  t.same([...back.tensors.keys()], [...sd.keys()]);
  t.equal(back.metadata.note, 'hello');
  for (const [k, v] of sd) {
    const b = back.tensors.get(k) as Tensor;
    t.equal(b.dtype, v.dtype, k);
    t.same(b.shape, v.shape, k);
    t.same(Array.from(b.data as ArrayLike<unknown>), Array.from(v.data as ArrayLike<unknown>), k);
  }
  const raw = readFileSync(path);
  const headerLen = Number(raw.readBigUInt64LE(0));
  t.equal(headerLen % 8, 0, 'header padded to 8 bytes');
  t.equal((JSON.parse(raw.subarray(8, 8 + headerLen).toString()) as Record<string, { dtype: string }>)['b.f16']?.dtype, 'F16');
  t.same(readdirSync(dir), ['w.safetensors'], 'no temp files left');
});

t.test('a save replaces the old file atomically', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'w.safetensors');
  await saveSafetensors(path, allDtypes());
  await saveSafetensors(path, new Map([['x', tensor('float32', [1], [3])]]));
  t.same([...(await loadSafetensors(path)).tensors.keys()], ['x']);
  t.same(readdirSync(dir), ['w.safetensors']);
});

t.test('broken safetensors files are clear errors naming the file', async (t) => {
  const dir = tempDir(t);
  const good = Buffer.concat(encodeSafetensors(allDtypes()));
  const cases: [string, Uint8Array, RegExp][] = [
    ['short', good.subarray(0, 5), /too short/],
    ['truncated', good.subarray(0, good.length - 3), /run past the end of the file/],
    ['hugeheader', Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x7b]), /header length/],
    ['notjson', Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{abc')]), /not valid JSON/],
  ];
  for (const [name, bytes, re] of cases) {
    const p = join(dir, `${name}.safetensors`);
    writeFileSync(p, bytes);
    await t.rejects(loadSafetensors(p), { code: 'ERR_MTPD_WEIGHTS', message: new RegExp(`${name}\\.safetensors: .*${re.source}`) }, name);
  }
  // Wrong byte count for the dtype.
  const bad = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(bad.length));
  t.throws(() => decodeSafetensors(Buffer.concat([len, bad, Buffer.alloc(8)]), 'x.st'), { message: /x\.st: tensor "w" \(F32 \[3\]\) needs 12 bytes, has 8/ });
  await t.rejects(loadSafetensors(join(dir, 'missing.safetensors')), { message: /missing\.safetensors: cannot read \(ENOENT\)/ });
});

t.test('.pth written by torch.save: bare OrderedDict state dict', async (t) => {
  const f = await loadPth(join(fixtures, 'conv_bn.pth'));
  t.equal(f.key, null);
  t.same([...f.tensors.keys()], expected.conv_bn.keys);
  for (const [k, shape] of Object.entries(expected.conv_bn.shapes)) t.same(f.tensors.get(k)?.shape, shape, k);
  const nbt = f.tensors.get('bn.num_batches_tracked') as Tensor;
  t.equal(nbt.dtype, 'int64');
  t.same(toNumbers(nbt), [expected.conv_bn.num_batches_tracked]);
});

t.test('.pth: nested under "model", one-entry dicts, every dtype and strided views', async (t) => {
  const nested = await loadPth(join(fixtures, 'nested_model.pth'));
  t.equal(nested.key, 'model');
  t.same([...nested.tensors.keys()], ['weight', 'bias']);
  const one = await loadPth(join(fixtures, 'one_entry.pth'));
  t.same(toNumbers(one.tensors.get('weight') as Tensor), [1.5, -2, 3.25, 4]);
  const zoo = await loadPth(join(fixtures, 'dtypes.pth'));
  for (const [k, e] of Object.entries(expected.dtypes)) {
    const got = zoo.tensors.get(k) as Tensor;
    t.ok(got, `${k} present`);
    t.same(got.shape, e.shape, `${k} shape`);
    const vals = toNumbers(got);
    const want = e.values;
    t.equal(vals.length, want.length, `${k} length`);
    const close = vals.every((v, i) => Math.abs(v - (want[i] as number)) <= 1e-6 * Math.max(1, Math.abs(want[i] as number)));
    t.ok(close, `${k} values ${JSON.stringify(vals)} ~ ${JSON.stringify(want)}`);
  }
  t.equal(zoo.tensors.get('f16')?.dtype, 'float16');
  t.equal(zoo.tensors.get('bf16')?.dtype, 'float32', 'bfloat16 widens to float32');
  t.equal(zoo.tensors.get('i64')?.dtype, 'int64');
});

t.test('.pth naming any other global is refused and never executed', async (t) => {
  rmSync('/tmp/mtpd-pwned', { force: true });
  await t.rejects(loadPth(join(fixtures, 'evil.pth')), { code: 'ERR_MTPD_UNSAFE_PICKLE', message: /evil\.pth: refuses to load: .*(posix|os)\.system/ });
  t.notOk(existsSync('/tmp/mtpd-pwned'), 'payload did not run');
});

t.test('format sniffing and non-weight files', async (t) => {
  const dir = tempDir(t);
  t.equal(await sniffWeightsFormat(join(fixtures, 'conv_bn.pth')), 'pth');
  const st = join(dir, 'a.bin');
  await saveSafetensors(st, allDtypes());
  t.equal(await sniffWeightsFormat(st), 'safetensors');
  const txt = join(dir, 'notes.pth');
  writeFileSync(txt, 'hello world, not weights');
  await t.rejects(readWeights(txt), { message: /notes\.pth: is neither a safetensors file nor a torch\.save \.pth archive/ });
  const legacy = join(dir, 'legacy.pth');
  writeFileSync(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
  await t.rejects(readWeights(legacy), { message: /legacy torch\.save format/ });
  const zip = join(dir, 'broken.pth');
  writeFileSync(zip, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(20)]));
  await t.rejects(readWeights(zip), { code: 'ERR_MTPD_WEIGHTS', message: /broken\.pth/ });
});

t.test('a torch.save conv loads into mtpd by name and computes what torch computed', async (t) => {
  if (!haveAddon(t)) return;
  const conv = await Module.create('nn.Conv2d', { in_channels: 3, out_channels: 4, kernel_size: 3, padding: 1 });
  const path = join(fixtures, 'conv_bn.pth');
  await t.rejects(conv.loadWeights(path), { code: 'ERR_MTPD_ARGUMENT', message: /conv_bn\.pth: state dict does not match the model: 2 missing key\(s\): weight, bias; 7 unexpected key\(s\)/ });
  const report = await conv.loadWeights(path, { stripPrefix: 'conv.', strict: false });
  t.same(report.missing, []);
  t.equal(report.unexpected.length, 5, 'the bn keys are reported');
  t.equal(report.loaded, 2);
  const x = tensor('float32', [1, 3, 5, 5], expected.conv_bn.conv_input);
  const [y] = await conv.forward([x]);
  t.same(y?.shape, expected.conv_bn.conv_output_shape);
  const maxErr = Math.max(...toNumbers(y as Tensor).map((v, i) => Math.abs(v - (expected.conv_bn.conv_output[i] as number))));
  t.ok(maxErr < 1e-5, `max abs error ${maxErr}`);
});

t.test('misshaped keys are reported by name; strict loads change nothing', async (t) => {
  if (!haveAddon(t)) return;
  const lin = await Module.create('nn.Linear', { in_features: 3, out_features: 2 });
  const before = await lin.stateDict();
  const bad: StateDict = new Map([
    ['weight', tensor('float32', [2, 4], new Array(8).fill(1))],
    ['bias', tensor('float32', [2], [5, 6])],
  ]);
  await t.rejects(lin.loadStateDict(bad), { message: /1 misshaped key\(s\): weight \(model \[2, 3\], file \[2, 4\]\)/ });
  t.same(toNumbers((await lin.stateDict()).get('bias') as Tensor), toNumbers(before.get('bias') as Tensor), 'strict failure left weights alone');
  const r = await lin.loadStateDict(bad, { strict: false });
  t.same(r.mismatched, [{ key: 'weight', expected: [2, 3], got: [2, 4] }]);
  t.same(toNumbers((await lin.stateDict()).get('bias') as Tensor), [5, 6]);
});

t.test('module weights round trip through safetensors, including buffers', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const bn = await Module.create('nn.BatchNorm2d', { num_features: 4 });
  await bn.loadWeights(join(fixtures, 'conv_bn.pth'), { stripPrefix: 'bn.', strict: false });
  const path = join(dir, 'bn.safetensors');
  await bn.saveWeights(path);
  const fresh = await Module.create('nn.BatchNorm2d', { num_features: 4 });
  const r = await fresh.loadWeights(path);
  t.equal(r.loaded, 5);
  const a = await bn.stateDict();
  const b = await fresh.stateDict();
  for (const [k, v] of a) t.same(Array.from(b.get(k)?.data as ArrayLike<unknown>), Array.from(v.data as ArrayLike<unknown>), k);
  t.same(toNumbers(b.get('num_batches_tracked') as Tensor), [expected.conv_bn.num_batches_tracked]);
});

t.test('the safetensors writer refuses tensors whose data does not match their shape', async (t) => {
  const dir = tempDir(t);
  const bad: [string, Tensor][] = [
    ['short', { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) }],
    ['negative', { dtype: 'float32', shape: [-1], data: new Float32Array(0) }],
    ['dtype', { dtype: 'complex64' as 'float32', shape: [1], data: new Float32Array(1) }],
  ];
  for (const [name, tensor] of bad) {
    t.throws(() => encodeSafetensors(new Map([[name, tensor]])), { code: 'ERR_MTPD_WEIGHTS', message: new RegExp(`tensor "${name}"`) }, name);
  }
  const p = join(dir, 'never.safetensors');
  await t.rejects(saveSafetensors(p, new Map([['short', bad[0]![1]]])), { code: 'ERR_MTPD_WEIGHTS' });
  t.notOk(existsSync(p), 'nothing written');
});

t.test('readSafetensorsHeader: broken files are ERR_MTPD_WEIGHTS naming the file', async (t) => {
  const dir = tempDir(t);
  const good = join(dir, 'good.safetensors');
  await saveSafetensors(good, allDtypes(), { k: 'v' });
  const h = await readSafetensorsHeader(good);
  t.same((h['a.f32'] as { shape: number[] }).shape, [2, 2]);
  const full = readFileSync(good);
  const cases: [string, Uint8Array, RegExp][] = [
    ['short', full.subarray(0, 5), /too short/],
    ['cut', full.subarray(0, 20), /does not fit the file/],
    ['huge', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x40, 0x7b]), /too large/],
    ['notjson', Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{abc')]), /not valid JSON/],
  ];
  for (const [name, bytes, re] of cases) {
    const p = join(dir, `${name}.safetensors`);
    writeFileSync(p, bytes);
    await t.rejects(readSafetensorsHeader(p), { code: 'ERR_MTPD_WEIGHTS', message: new RegExp(`${name}\\.safetensors: .*${re.source}`) }, name);
  }
  await t.rejects(readSafetensorsHeader(join(dir, 'missing.safetensors')), { code: 'ERR_MTPD_WEIGHTS', message: /cannot read \(ENOENT\)/ });
});
