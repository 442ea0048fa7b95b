import t from 'tap';
import { native } from '../src/native.js';
import { Module } from '../src/module.js';
import { checkDevice, setThreads, systemInfo } from '../src/runtime.js';
import { float16BitsToFloat32, float32ToFloat16Bits, tensor, type Tensor, toNumbers, zeros } from '../src/tensor.js';
import { haveAddon } from './helpers.js';

t.test('every dtype survives the round trip through libtorch', async (t) => {
  if (!haveAddon(t)) return;
  const cases: Tensor[] = [
    tensor('float32', [2, 3], [0, -1.5, 3.25, 1e-30, 3.4e38, -0]),
    tensor('float64', [3], [1e-300, -2.5, Math.PI]),
    { dtype: 'float16', shape: [4], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001]) },
    tensor('int32', [2, 2], [-2147483648, 2147483647, 0, 7]),
    { dtype: 'int64', shape: [3], data: BigInt64Array.from([-(2n ** 62n), 2n ** 62n + 5n, 0n]) },
    tensor('uint8', [1, 4], [0, 1, 128, 255]),
    tensor('bool', [5], [1, 0, 1, 1, 0]),
    zeros('float32', [0, 3]),
    tensor('float32', [], [42]),
  ];
  for (const c of cases) {
    const back = await native().ops.toDevice(c, 'cpu');
    t.equal(back.dtype, c.dtype, `${c.dtype} dtype`);
    t.same(back.shape, c.shape, `${c.dtype} shape`);
    t.same(Array.from(back.data as ArrayLike<unknown>), Array.from(c.data as ArrayLike<unknown>), `${c.dtype} values`);
    t.equal(back.data.constructor, c.data.constructor, `${c.dtype} array type`);
  }
});

t.test('float16 conversion matches IEEE rounding', async (t) => {
  t.equal(float32ToFloat16Bits(1), 0x3c00);
  t.equal(float32ToFloat16Bits(-2), 0xc000);
  t.equal(float32ToFloat16Bits(65504), 0x7bff);
  t.equal(float32ToFloat16Bits(1e6), 0x7c00);
  t.equal(float32ToFloat16Bits(2 ** -24), 0x0001);
  t.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00, 'ties to even');
  t.equal(float16BitsToFloat32(0x3555), 0.333251953125);
  t.ok(Number.isNaN(float16BitsToFloat32(0x7e00)));
});

t.test('bad tensors are TypeError / RangeError naming the argument', async (t) => {
  if (!haveAddon(t)) return;
  const ops = native().ops;
  const good = tensor('float32', [2], [1, 2]);
  const call = (x: unknown) => ops.toDevice(x as Tensor, 'cpu');
  await t.rejects(async () => call(null), { name: 'TypeError', message: /expected tensor to be a tensor/ });
  await t.rejects(async () => call({ ...good, dtype: 'complex64' }), { name: 'TypeError', message: /tensor\.dtype "complex64"/ });
  await t.rejects(async () => call({ ...good, data: new Float64Array(2) }), { name: 'TypeError', message: /Float32Array for dtype float32/ });
  await t.rejects(async () => call({ ...good, shape: [3] }), { name: 'RangeError', message: /has 2 elements but shape \[3\] needs 3/ });
  await t.rejects(async () => call({ ...good, shape: [-2] }), { name: 'RangeError', message: /shape\[0\] must be a non-negative integer/ });
  await t.rejects(async () => call({ ...good, shape: [1.5] }), { name: 'RangeError' });
  await t.rejects(async () => call({ ...good, shape: 'x' }), { name: 'TypeError', message: /tensor\.shape/ });
  await t.rejects(async () => ops.matmul(good, good, 7 as unknown as string), { name: 'TypeError', message: /device/ });
});

t.test('libtorch errors become JS errors without the C++ backtrace', async (t) => {
  if (!haveAddon(t)) return;
  const a = tensor('float32', [2, 3], [1, 2, 3, 4, 5, 6]);
  const err = await native()
    .ops.matmul(a, a, 'cpu')
    .then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
  t.ok(err, 'rejects');
  t.equal(err?.code, 'ERR_MTPD_TORCH');
  t.match(err?.message, /mat1 and mat2 shapes cannot be multiplied/);
  t.notMatch(err?.message, /Exception raised from|frame #/);
});

t.test('devices: cpu works, cuda is a clear error on a CPU libtorch', async (t) => {
  if (!haveAddon(t)) return;
  t.equal(checkDevice('cpu'), 'cpu');
  const info = systemInfo();
  if (!info.cuda.built) {
    t.throws(() => checkDevice('cuda'), { name: 'TypeError', code: 'ERR_MTPD_ARGUMENT', message: /built without CUDA/ });
    t.throws(() => checkDevice('cuda:1'), { code: 'ERR_MTPD_ARGUMENT' });
    await t.rejects(native().ops.toDevice(tensor('float32', [1], [1]), 'cuda'), { message: /built without CUDA/ });
  } else {
    t.equal(checkDevice('cuda'), 'cuda:0');
  }
  t.throws(() => checkDevice('gpu'), { message: /device must be "cpu", "cuda" or "cuda:N"/ });
  t.throws(() => checkDevice('cpu:0'), { message: /cpu takes no index/ });
});

t.test('threads default to all cores and are configurable', async (t) => {
  if (!haveAddon(t)) return;
  const info = systemInfo();
  t.equal(info.threads.intraOp, info.threads.cores);
  t.equal(setThreads(1), 1);
  t.equal(systemInfo({ threads: 1 }).threads.intraOp, 1);
  const other = info.threads.cores === 1 ? 2 : 1; // anything but the all-cores default
  t.equal(setThreads(other), other);
  t.equal(systemInfo().threads.intraOp, other, 'systemInfo() reports the setting and leaves it alone');
  t.equal(native().runtimeInfo().numThreads, other);
  t.throws(() => native().setNumThreads(-1), { name: 'RangeError' });
  setThreads(0);
});

t.test('the event loop keeps running during a long native call', async (t) => {
  if (!haveAddon(t)) return;
  const n = 768;
  const a = tensor('float32', [n, n], Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = Date.now();
  const calls: Promise<Tensor>[] = [];
  for (let i = 0; i < 8; i++) calls.push(native().ops.matmul(a, a, 'cpu'));
  await Promise.all(calls);
  const elapsed = Date.now() - started;
  clearInterval(timer);
  t.ok(elapsed > 30, `native work took ${elapsed} ms`);
  // A call that blocked the main thread would leave the timer at 0 ticks until every call had
  // returned. How many more ticks fit depends on how busy the cores are (eight calls' compute
  // threads compete with the main thread; 2 ticks in 450 ms were seen in CI on 2 cores), so the
  // test asks for the timer to have run at all while the calls were in flight, not for a rate.
  t.ok(ticks >= 1, `timer fired ${ticks} times in ${elapsed} ms`);
});

t.test('one call in flight per native module: raw handle refuses, Module queues', async (t) => {
  if (!haveAddon(t)) return;
  const m = await Module.create('nn.Linear', { in_features: 256, out_features: 256 });
  const x = tensor('float32', [512, 256], new Array(512 * 256).fill(0.5));
  const first = m.handle.forward([x]);
  t.throws(() => m.handle.forward([x]), { code: 'ERR_MTPD_BUSY', message: /still running/ });
  await first;
  const [a, b, c] = await Promise.all([m.forward([x]), m.stateDict(), m.forward([x])]);
  t.same(a?.[0]?.shape, [512, 256]);
  t.ok(b.has('weight'));
  t.same(toNumbers(c?.[0] as Tensor).slice(0, 4), toNumbers(a?.[0] as Tensor).slice(0, 4));
});

t.test('module construction errors name the option', async (t) => {
  if (!haveAddon(t)) return;
  await t.rejects(Module.create('nn.Conv2d', { in_channels: 3 }), { name: 'TypeError', message: /option "out_channels" is required/ });
  await t.rejects(Module.create('nn.Conv2d', { in_channels: 3, out_channels: 4, kernal_size: 3 }), { message: /unknown option "kernal_size"/ });
  await t.rejects(Module.create('nn.Conv2d', { in_channels: 'x', out_channels: 4 }), { message: /"in_channels" must be an integer/ });
  await t.rejects(Module.create('nn.Nope', {}), { message: /unknown module "nn.Nope"/ });
  // 2^63 reaches the addon as the JSON integer 9223372036854776000, beyond int64.
  await t.rejects(Module.create('nn.Conv2d', { in_channels: 2 ** 63, out_channels: 4 }), { name: 'TypeError', message: /option "in_channels" must be an integer of magnitude at most 2\^53/ });
  await t.rejects(Module.create('nn.Conv2d', { in_channels: 1, out_channels: 1, padding: 2 ** 62 }), { name: 'TypeError', message: /option "padding" must be an integer of magnitude at most 2\^53/ });
  const conv = await Module.create('nn.Conv2d', { in_channels: 3, out_channels: 4, kernel_size: 3 });
  await t.rejects(conv.forward([zeros('float32', [1, 2, 8, 8])]), { name: 'RangeError', code: 'ERR_MTPD_SHAPE', message: /\(N, 3, H, W\)/ });
  const err = await conv.forward([zeros('float32', [1, 2, 8, 8])]).catch((e: Error) => e);
  t.match((err as Error).stack, /boundary\.test/, 'error stack points at the JS call site');
});

t.test('typed arrays over a SharedArrayBuffer cross like any other', async (t) => {
  if (!haveAddon(t)) return;
  const data = new Float32Array(new SharedArrayBuffer(24), 4, 3);
  data.set([1.5, -2, 3]);
  const back = await native().ops.toDevice({ dtype: 'float32', shape: [3], data }, 'cpu');
  t.same(Array.from(back.data as Float32Array), [1.5, -2, 3]);
});

t.test('a CPU allocation libtorch cannot satisfy is ERR_MTPD_OUT_OF_MEMORY', async (t) => {
  if (!haveAddon(t)) return;
  // 2^22 x 2^22 float32 weights: 64 TiB.
  await t.rejects(Module.create('nn.Linear', { in_features: 2 ** 22, out_features: 2 ** 22 }), { code: 'ERR_MTPD_OUT_OF_MEMORY', message: /can't allocate memory/ });
});

t.test('setSeed makes weight initialization reproducible', async (t) => {
  if (!haveAddon(t)) return;
  const { setSeed } = await import('../src/runtime.js');
  const make = async () => (await (await Module.create('nn.Linear', { in_features: 4, out_features: 3 })).stateDict()).get('weight') as Tensor;
  setSeed(7);
  const a = await make();
  setSeed(7);
  const b = await make();
  const c = await make();
  t.same(Array.from(a.data as Float32Array), Array.from(b.data as Float32Array));
  t.notSame(Array.from(b.data as Float32Array), Array.from(c.data as Float32Array));
  t.throws(() => setSeed(-1), { name: 'RangeError' });
});
