import t from 'tap';
import { fitLinearMap, fitLinearMapStreamed, type FitBatch, type FitSplit } from '../../src/order/linear-fit.js';
import type { Tensor } from '../../src/tensor.js';
import { haveAddon, mulberry32 } from '../helpers.js';

/** Batches of A (4 channels) and B (3 channels, a noisy linear map of A), with masks when asked. */
function split(seed: number, batches: number, masked: boolean): FitBatch[] {
  const rnd = mulberry32(seed);
  const out: FitBatch[] = [];
  for (let b = 0; b < batches; b++) {
    const [n, h, w] = [2, 5, 6];
    const a = new Float32Array(n * 4 * h * w).map(() => rnd() * 2 - 1);
    const y = new Float32Array(n * 3 * h * w);
    for (let i = 0; i < n; i++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < h * w; p++) {
          const x = (k: number) => a[(i * 4 + k) * h * w + p] as number;
          y[(i * 3 + c) * h * w + p] = 0.5 * x(c) - 0.3 * x(3) + 0.1 * c + 0.05 * (rnd() - 0.5);
        }
    const batch: FitBatch = { a: { dtype: 'float32', shape: [n, 4, h, w], data: a }, b: { dtype: 'float32', shape: [n, 3, h, w], data: y } };
    if (masked) batch.mask = { dtype: 'float32', shape: [n, 1, h, w], data: new Float32Array(n * h * w).map((_, k) => (k % w < w - 1 - (k % 2) ? 1 : 0)) };
    out.push(batch);
  }
  return out;
}

const asSplit = (bs: FitBatch[]): FitSplit => ({ a: bs.map((b) => b.a), b: bs.map((b) => b.b), ...(bs[0]?.mask ? { mask: bs.map((b) => b.mask as Tensor) } : {}) });
const asSource = (bs: FitBatch[]) => ({ count: bs.length, batch: async (i: number) => bs[i] as FitBatch });

t.test('the streamed closed form gives exactly fitLinearMap on the same batches (auto and fixed ridge, masks or not)', async (t) => {
  if (!haveAddon(t)) return;
  for (const batches of [1, 3, 5, 8])
    for (const masked of [false, true])
      for (const ridge of [undefined, 0, 0.01]) {
        const train = split(batches * 10 + (masked ? 1 : 0), batches, masked);
        const val = split(99, 2, masked);
        const opts = ridge === undefined ? {} : { ridge };
        const whole = await fitLinearMap(asSplit(train), asSplit(val), opts);
        const streamed = await fitLinearMapStreamed(asSource(train), asSource(val), opts);
        const what = `${batches} batches, ${masked ? 'masked' : 'whole maps'}, ridge ${ridge ?? 'auto'}`;
        t.equal(streamed.valMse, whole.valMse, `${what}: validation MSE`);
        t.equal(streamed.trainMse, whole.trainMse, `${what}: training MSE`);
        t.equal(streamed.ridge, whole.ridge, `${what}: ridge`);
        t.same([streamed.trainPixels, streamed.valPixels], [whole.trainPixels, whole.valPixels], `${what}: pixels`);
        t.same(Array.from(streamed.weight.data), Array.from(whole.weight.data), `${what}: weight`);
        t.same(Array.from(streamed.bias.data), Array.from(whole.bias.data), `${what}: bias`);
      }
});

t.test('the streamed fitter reads one batch at a time and falls back to fitLinearMap for sgd', async (t) => {
  if (!haveAddon(t)) return;
  const train = split(5, 4, true);
  const val = split(6, 2, true);
  const reads: number[] = [];
  const src = { count: 4, batch: async (i: number) => (reads.push(i), train[i] as FitBatch) };
  await fitLinearMapStreamed(src, asSource(val));
  t.same(reads, [0, 1, 2, 3], 'one pass over the training batches (the training error comes from the moments)');
  const sgd = await fitLinearMapStreamed(asSource(train), asSource(val), { fitter: 'sgd', steps: 20, lr: 0.05 });
  const ref = await fitLinearMap(asSplit(train), asSplit(val), { fitter: 'sgd', steps: 20, lr: 0.05 });
  t.equal(sgd.valMse, ref.valMse, 'sgd: the same fit');
  await t.rejects(fitLinearMapStreamed({ count: 0, batch: async () => train[0] as FitBatch }, asSource(val)), /train: no feature batches/);
  const mixed = [train[0] as FitBatch, { a: train[1]!.a, b: train[1]!.b }];
  await t.rejects(fitLinearMapStreamed(asSource(mixed), asSource(val)), /give masks for every batch of both splits or for none/);
});
