import t from 'tap';
import { fitLinearMap } from '../../src/order/linear-fit.js';
import type { Tensor } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';
import { mulberry32 as rng } from '../helpers.js';


function randn(r: () => number, shape: number[]): Tensor<'float32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return { dtype: 'float32', shape, data: d };
}

/** y = W x + b per pixel, with x (N, Ca, H, W). */
function linearMap(x: Tensor<'float32'>, w: Float32Array, b: Float32Array, cb: number): Tensor<'float32'> {
  const [n, ca, h, wd] = x.shape as [number, number, number, number];
  const out = new Float32Array(n * cb * h * wd);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < cb; o++)
      for (let p = 0; p < h * wd; p++) {
        let s = b[o] as number;
        for (let c = 0; c < ca; c++) s += (w[o * ca + c] as number) * (x.data[(i * ca + c) * h * wd + p] as number);
        out[(i * cb + o) * h * wd + p] = s;
      }
  return { dtype: 'float32', shape: [n, cb, h, wd], data: out };
}

t.test('both fitters recover cost ~ 0 when B is a linear map of A, and a positive cost otherwise', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(1);
  const ca = 8;
  const cb = 6;
  const w = randn(r, [cb * ca]).data;
  const b = randn(r, [cb]).data;
  const mk = (n: number) => Array.from({ length: n }, () => randn(r, [2, ca, 6, 6]));
  const trainA = mk(4);
  const valA = mk(2);
  const trainB = trainA.map((x) => linearMap(x, w, b, cb));
  const valB = valA.map((x) => linearMap(x, w, b, cb));
  const exact = await fitLinearMap({ a: trainA, b: trainB }, { a: valA, b: valB }, { fitter: 'closed-form' });
  t.ok(exact.valMse < 1e-8, `closed-form cost ${exact.valMse}`);
  t.same(exact.weight.shape, [cb, ca]);
  const maxW = Math.max(...Array.from(exact.weight.data).map((v, i) => Math.abs(v - (w[i] as number))));
  t.ok(maxW < 1e-3, `recovered the map (max weight error ${maxW})`);
  const sgd = await fitLinearMap({ a: trainA, b: trainB }, { a: valA, b: valB }, { fitter: 'sgd', steps: 300, lr: 0.05 });
  const varB = valB.flatMap((y) => Array.from(y.data)).reduce((s, v) => s + v * v, 0) / valB.reduce((s, y) => s + y.data.length, 0);
  t.ok(sgd.valMse < 1e-3 * varB, `sgd cost ${sgd.valMse} (B's mean square ${varB.toFixed(3)})`);

  // B independent of A: the cost is about B's variance.
  const noiseB = trainA.map(() => randn(r, [2, cb, 6, 6]));
  const noiseVal = valA.map(() => randn(r, [2, cb, 6, 6]));
  const unrelated = await fitLinearMap({ a: trainA, b: noiseB }, { a: valA, b: noiseVal });
  t.ok(unrelated.valMse > 0.7, `unrelated features cost ${unrelated.valMse}`);
});

t.test('closed-form: the ridge chosen on held-out training batches beats no ridge when data is scarce', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(5);
  const ca = 24;
  const cb = 4;
  const w = randn(r, [cb * ca]).data;
  const b = new Float32Array(cb);
  const noisy = (x: Tensor<'float32'>) => {
    const y = linearMap(x, w, b, cb);
    for (let i = 0; i < y.data.length; i++) y.data[i] = (y.data[i] as number) + 3 * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    return y;
  };
  // 8 batches of 1 image at 2x2 pixels: 32 training pixels for 25 parameters per output channel.
  const trainA = Array.from({ length: 8 }, () => randn(r, [1, ca, 2, 2]));
  const valA = Array.from({ length: 4 }, () => randn(r, [4, ca, 4, 4]));
  const train = { a: trainA, b: trainA.map(noisy) };
  const val = { a: valA, b: valA.map(noisy) };
  const none = await fitLinearMap(train, val, { ridge: 0 });
  const auto = await fitLinearMap(train, val);
  t.ok(auto.ridge > 0, `auto ridge ${auto.ridge}`);
  t.ok(auto.valMse < 0.8 * none.valMse, `auto ${auto.valMse.toFixed(2)} < none ${none.valMse.toFixed(2)}`);
  t.equal(none.ridge, 0);
});

t.test('a lower-resolution A is upsampled to B (the heterogeneous adapter)', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(2);
  // B = 2 * upsample(A): a 1x1 conv after bilinear upsampling reproduces it exactly.
  const small = Array.from({ length: 3 }, () => randn(r, [1, 4, 4, 4]));
  const up = (x: Tensor<'float32'>): Tensor<'float32'> => {
    // bilinear x2, align_corners=false, computed here to keep the test independent of the code under test
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const H = 2 * h;
    const W = 2 * w;
    const out = new Float32Array(n * c * H * W);
    const src = (o: number, size: number) => Math.min(Math.max((o + 0.5) / 2 - 0.5, 0), size - 1);
    for (let i = 0; i < n * c; i++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          const sy = src(y, h);
          const sx = src(xx, w);
          const y0 = Math.floor(sy);
          const x0 = Math.floor(sx);
          const y1 = Math.min(y0 + 1, h - 1);
          const x1 = Math.min(x0 + 1, w - 1);
          const fy = sy - y0;
          const fx = sx - x0;
          const g = (yy: number, xq: number) => x.data[i * h * w + yy * w + xq] as number;
          out[i * H * W + y * W + xx] = 2 * ((1 - fy) * ((1 - fx) * g(y0, x0) + fx * g(y0, x1)) + fy * ((1 - fx) * g(y1, x0) + fx * g(y1, x1)));
        }
    return { dtype: 'float32', shape: [n, c, H, W], data: out };
  };
  const big = small.map(up);
  const res = await fitLinearMap({ a: small.slice(0, 2), b: big.slice(0, 2) }, { a: small.slice(2), b: big.slice(2) });
  t.ok(res.valMse < 1e-8, `cost ${res.valMse}`);
  // The other way round, A's larger map is resampled bilinearly onto B's, as the adapter does (at a
  // factor of 2, the 2x2 means): not exactly the originals, but close, and far better than unrelated features.
  const down = await fitLinearMap({ a: big.slice(0, 2), b: small.slice(0, 2) }, { a: big.slice(2), b: small.slice(2) });
  t.ok(down.valMse < 0.2, `downsampled cost ${down.valMse}`);
  // Larger in one dimension and smaller in the other: resampled all the same.
  const odd = randn(r, [1, 4, 2, 16]);
  const mixed = await fitLinearMap({ a: [odd], b: [small[0] as Tensor] }, { a: [odd], b: [small[0] as Tensor] });
  t.ok(Number.isFinite(mixed.valMse));
});

t.test('with masks only the valid positions count, in the fit and in both MSEs, for both fitters', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(9);
  const ca = 5;
  const cb = 3;
  const w = randn(r, [cb * ca]).data;
  const b = randn(r, [cb]).data;
  const mk = () => randn(r, [2, ca, 6, 7]);
  // Image 0 holds the top-left 4x5 cells, image 1 the top-left 6x3; the rest is padding where B
  // holds garbage that no linear map of A explains.
  const valid = (n: number, y: number, x: number) => (n === 0 ? y < 4 && x < 5 : x < 3);
  const mask: Tensor<'float32'> = { dtype: 'float32', shape: [2, 1, 6, 7], data: new Float32Array(2 * 42) };
  for (let n = 0; n < 2; n++) for (let y = 0; y < 6; y++) for (let x = 0; x < 7; x++) mask.data[n * 42 + y * 7 + x] = valid(n, y, x) ? 1 : 0;
  const withGarbage = (x: Tensor<'float32'>) => {
    const y = linearMap(x, w, b, cb);
    for (let n = 0; n < 2; n++)
      for (let c = 0; c < cb; c++)
        for (let p = 0; p < 42; p++) if (!valid(n, Math.floor(p / 7), p % 7)) y.data[(n * cb + c) * 42 + p] = 50 * (r() - 0.5);
    return y;
  };
  const trainA = [mk(), mk(), mk()];
  const valA = [mk()];
  const train = { a: trainA, b: trainA.map(withGarbage), mask: trainA.map(() => mask) };
  const val = { a: valA, b: valA.map(withGarbage), mask: [mask] };
  const exact = await fitLinearMap(train, val, { fitter: 'closed-form', ridge: 0 });
  t.ok(exact.valMse < 1e-8, `closed-form on valid positions: cost ${exact.valMse}`);
  t.equal(exact.trainPixels, 3 * (20 + 18), 'training positions counted: the valid ones');
  t.equal(exact.valPixels, 38);
  const sgd = await fitLinearMap(train, val, { fitter: 'sgd', steps: 400, lr: 0.05 });
  t.ok(sgd.valMse < 1e-3, `sgd on valid positions: cost ${sgd.valMse}`);
  t.equal(sgd.valPixels, 38);
  const unmasked = await fitLinearMap({ a: train.a, b: train.b }, { a: val.a, b: val.b }, { fitter: 'closed-form', ridge: 0 });
  t.ok(unmasked.valMse > 10, `counting padding, the cost is the garbage's (${unmasked.valMse.toFixed(1)})`);
  await t.rejects(fitLinearMap(train, { a: val.a, b: val.b }), /masks for both splits or neither/);
  await t.rejects(fitLinearMap({ ...train, mask: [mask] }, val), { name: 'RangeError', message: /train: 1 masks for 3 feature batches/ });
  const small = randn(r, [2, ca, 3, 3]);
  await t.rejects(fitLinearMap({ a: [small], b: [train.b[0] as Tensor], mask: [mask] }, val), { name: 'RangeError', message: /must already be on B's grid/ });
});

t.test('bad inputs name the split and batch', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(3);
  const x = randn(r, [1, 3, 4, 4]);
  const y = randn(r, [2, 3, 4, 4]);
  await t.rejects(fitLinearMap({ a: [x], b: [y] }, { a: [x], b: [x] }), { name: 'RangeError', message: /train\[0\]: A has 1 images, B has 2/ });
  await t.rejects(fitLinearMap({ a: [x], b: [] }, { a: [x], b: [x] }), { message: /train: 1 batches of A features but 0/ });
  await t.rejects(fitLinearMap({ a: [x], b: [x] }, { a: [x], b: [x] }, { fitter: 'magic' as 'sgd' }), { name: 'TypeError', message: /fitter must be/ });
  await t.rejects(fitLinearMap({ a: [x], b: [x] }, { a: [x], b: [x] }, { steps: 0, fitter: 'sgd' }), { name: 'RangeError', message: /steps/ });
});

t.test('no pixels is an error, not a cost of 0 (a perfect adapter)', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(4);
  const x = randn(r, [2, 3, 4, 4]);
  const none = randn(r, [0, 3, 4, 4]);
  const flat = randn(r, [2, 3, 0, 4]);
  await t.rejects(fitLinearMap({ a: [none], b: [none] }, { a: [x], b: [x] }), { name: 'RangeError', message: /train: the feature batches hold no pixels/ });
  await t.rejects(fitLinearMap({ a: [x], b: [x] }, { a: [flat], b: [flat] }), { name: 'RangeError', message: /val: the feature batches hold no pixels/ });
  await t.rejects(fitLinearMap({ a: [x], b: [x] }, { a: [none], b: [none] }, { fitter: 'sgd', steps: 2 }), { name: 'RangeError', message: /val: .*no pixels/ });
  const noChannels = randn(r, [2, 0, 4, 4]);
  await t.rejects(fitLinearMap({ a: [noChannels], b: [x] }, { a: [noChannels], b: [x] }), { name: 'RangeError', message: /at least one channel/ });
});

t.test('options are range-checked: seed, ridge, lr, momentum', async (t) => {
  if (!haveAddon(t)) return;
  const x = randn(rng(5), [1, 2, 3, 3]);
  const fit = (o: Record<string, unknown>) => fitLinearMap({ a: [x], b: [x] }, { a: [x], b: [x] }, { fitter: 'sgd', steps: 2, ...o });
  for (const seed of [-1, 1.5, Infinity, Number.NaN, 1e30]) await t.rejects(fit({ seed }), { name: 'RangeError', message: /options\.seed must be a non-negative integer/ }, `seed ${seed}`);
  await t.rejects(fit({ momentum: Number.NaN, optimizer: 'sgd' }), { name: 'RangeError', message: /momentum/ });
  await t.rejects(fit({ lr: Infinity }), { name: 'RangeError', message: /lr/ });
  await t.rejects(fit({ fitter: 'closed-form', ridge: Infinity }), { name: 'RangeError', message: /ridge/ });
  const ok = await fit({ seed: 2 ** 40 });
  t.ok(Number.isFinite(ok.valMse));
});

t.test('the sgd fitter seeds its own generator, not the process-wide one', async (t) => {
  if (!haveAddon(t)) return;
  const { Module } = await import('../../src/module.js');
  const x = randn(rng(6), [1, 2, 3, 3]);
  const weightsAfterFit = async () => {
    await fitLinearMap({ a: [x], b: [x] }, { a: [x], b: [x] }, { fitter: 'sgd', steps: 1, seed: 7 });
    const lin = await Module.create('nn.Linear', { in_features: 8, out_features: 8 });
    return Array.from((await lin.stateDict()).get('weight')?.data as Float32Array);
  };
  const a = await weightsAfterFit();
  const b = await weightsAfterFit();
  t.notSame(a, b, 'a module built after a fit draws fresh numbers (torch::manual_seed made every such module identical)');
  const f1 = await fitLinearMap({ a: [x], b: [x] }, { a: [x], b: [x] }, { fitter: 'sgd', steps: 3, seed: 11 });
  const f2 = await fitLinearMap({ a: [x], b: [x] }, { a: [x], b: [x] }, { fitter: 'sgd', steps: 3, seed: 11 });
  t.same(Array.from(f1.weight.data), Array.from(f2.weight.data), 'the same seed still gives the same fit');
});
