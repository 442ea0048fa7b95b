import t from 'tap';
import { backwardGreedySelection } from '../../src/order/bgs.js';
import { computeCostMatrix, type FeatureSource } from '../../src/order/cost-matrix.js';
import type { Tensor } from '../../src/tensor.js';
import { haveAddon, mulberry32 } from '../helpers.js';
import { coefs, fieldMap, type GridSpec, type Size } from '../distill/field.js';

/** mulberry32 shifted to [-0.5, 0.5). */
function rng(seed: number) {
  const u = mulberry32(seed);
  return () => u() - 0.5;
}

/**
 * Fake "models" over shared latent features z (N, 8, H, W) per image batch: model k sees a
 * random linear mix of z's first `dims` channels, so a model that sees more channels can
 * linearly reproduce one that sees fewer, but not the reverse (the paper's asymmetry).
 */
function source(name: string, ap: number, dims: number, seed: number, calls: { n: number }): FeatureSource {
  const r = rng(seed);
  const out = 8; // >= every model's latent dims, so the strongest map is invertible
  const mix = Array.from({ length: out * dims }, () => r());
  return {
    name,
    ap,
    features: async (images: Tensor[]) => {
      calls.n++;
      const z = images[0] as Tensor<'float32'>; // the "image" is the latent itself: (N, 8, H, W)
      const [n, c, h, w] = z.shape as [number, number, number, number];
      const maps: Record<string, Tensor> = {};
      for (const [level, stride] of [['p3', 1], ['p4', 2]] as const) {
        const H = h / stride;
        const W = w / stride;
        const data = new Float32Array(n * out * H * W);
        for (let i = 0; i < n; i++)
          for (let o = 0; o < out; o++)
            for (let y = 0; y < H; y++)
              for (let x = 0; x < W; x++) {
                let s = 0;
                for (let d = 0; d < dims; d++) s += (mix[o * dims + d] as number) * (z.data[((i * c + d) * h + y * stride) * w + x * stride] as number);
                data[((i * out + o) * H + y) * W + x] = s;
              }
        maps[level] = { dtype: 'float32', shape: [n, out, H, W], data };
      }
      return maps;
    },
  };
}

t.test('cost matrix: features once per model, asymmetric costs, BGS on top', async (t) => {
  if (!haveAddon(t)) return;
  const r = rng(7);
  const batch = (): Tensor[] => [{ dtype: 'float32', shape: [2, 8, 8, 8], data: Float32Array.from({ length: 2 * 8 * 8 * 8 }, () => r()) }];
  const train = [batch(), batch(), batch()];
  const val = [batch()];
  const calls = { n: 0 };
  const models = [source('student', 0.3, 2, 1, calls), source('mid', 0.4, 4, 2, calls), source('strong', 0.5, 8, 3, calls)];
  const events: string[] = [];
  const m = await computeCostMatrix(models, train, val, { student: 'student', onProgress: (e) => events.push(e.phase) });
  t.equal(calls.n, 3 * 4, 'each model ran once per batch');
  t.same(m.levels, ['p3', 'p4']);
  t.same(Object.keys(m.costs.student ?? {}).sort(), ['mid', 'strong'], 'pairs "bgs": no costs towards the student');
  const d = (a: string, b: string) => m.costs[a]?.[b] as number;
  t.ok(d('strong', 'mid') < 1e-6, `d(strong -> mid) = ${d('strong', 'mid')} ~ 0: mid is a linear map of strong`);
  t.ok(d('mid', 'strong') > 0.01, `d(mid -> strong) = ${d('mid', 'strong')} > 0`);
  t.ok(d('student', 'strong') > d('mid', 'strong'), 'the student is farther from the strong teacher than mid is');
  t.ok(Math.abs((m.perLevel.mid?.strong?.p3 ?? 0) + (m.perLevel.mid?.strong?.p4 ?? 0) - d('mid', 'strong')) < 1e-12, 'levels sum');
  t.same(backwardGreedySelection(m, 'student').order, ['mid', 'strong']);
  t.ok(events.includes('features') && events.includes('fit'));
  const all = await computeCostMatrix(models, train, val, { pairs: 'all', fitter: 'sgd', steps: 150, lr: 0.05 });
  t.ok((all.costs.mid?.student ?? 1) < 0.05 * (all.costs.student?.mid ?? 0), 'pairs "all" include costs towards the student; sgd agrees on the asymmetry');
});

t.test('cost matrix input errors', async (t) => {
  await t.rejects(computeCostMatrix([], [], []), { message: /at least one training and one validation batch/ });
  const calls = { n: 0 };
  const a = source('a', 1, 2, 1, calls);
  await t.rejects(computeCostMatrix([a, a], [[]], [[]]), { message: /unique/ });
  await t.rejects(computeCostMatrix([a], [[]], [[]], { student: 'zz' }), { message: /needs the student's name/ });
});

/**
 * Two "models" of the same images at different resolutions and aspect ratios (test/distill/field.ts):
 * A at stride 8 / 16 on its own resize, B at 1.6x and 1.3x, whose maps are a fixed linear map of
 * A's content on B's own grid. Aligned, B is exactly a 1x1 conv of A: zero cost. Padding holds
 * garbage. `plain` hands out maps without their layout (every image then fills its map).
 */
function fieldSources(plain: boolean): FeatureSource[] {
  const ca = 4;
  const cb = 3;
  const w = Array.from({ length: cb * ca }, (_, i) => Math.cos(1.7 * i + 0.3));
  const bias = [0.5, -0.25, 0.125];
  const layouts = [
    { a: [[45, 60], [60, 40]] as Size[], b: [[72, 96], [96, 64]] as Size[], pa: [64, 64] as Size, pb: [96, 96] as Size },
    { a: [[64, 48], [50, 64]] as Size[], b: [[83, 62], [65, 83]] as Size[], pa: [64, 64] as Size, pb: [96, 96] as Size },
  ];
  const strides = { p3: 8, p4: 16 };
  const batchOf = (images: Tensor[]) => (images[0] as Tensor<'float32'>).data[0] as number;
  const grid = (sizes: Size[], stride: number, padded: Size): GridSpec => ({ sizes, stride, hw: [Math.ceil(padded[0] / stride), Math.ceil(padded[1] / stride)] });
  const out = (maps: Record<string, Tensor<'float32'>>, sizes: Size[]) => (plain ? maps : { maps, imageSizes: sizes, strides });
  return [
    {
      name: 'A',
      ap: 0.3,
      features: async (images) => {
        const k = batchOf(images);
        const l = layouts[k % 2]!;
        const coef = coefs(10 + k);
        const maps: Record<string, Tensor<'float32'>> = {};
        for (const [tap, s] of Object.entries(strides)) maps[tap] = fieldMap(ca, grid(l.a, s, l.pa), grid(l.a, s, l.pa), coef, (n, c, i, j) => 7 + i - j);
        return out(maps, l.a);
      },
    },
    {
      name: 'B',
      ap: 0.5,
      features: async (images) => {
        const k = batchOf(images);
        const l = layouts[k % 2]!;
        const coef = coefs(10 + k);
        const mixed = (n: number, o: number): [number, number, number, number] => {
          const r: [number, number, number, number] = [bias[o] as number, 0, 0, 0];
          for (let c = 0; c < ca; c++) {
            const q = coef(n, c);
            for (let z = 0; z < 4; z++) r[z] = (r[z] as number) + (w[o * ca + c] as number) * (q[z] as number);
          }
          return r;
        };
        const maps: Record<string, Tensor<'float32'>> = {};
        for (const [tap, s] of Object.entries(strides)) maps[tap] = fieldMap(cb, grid(l.b, s, l.pb), grid(l.a, s, l.pa), mixed, (n, c, i, j) => -5 * Math.sin(i * j + c));
        return out(maps, l.b);
      },
    },
  ];
}

t.test('aligned costs: B an exact resized linear map of A costs zero (both fitters); the whole-padded-map fit does not; levels narrow', async (t) => {
  if (!haveAddon(t)) return;
  const batch = (k: number): Tensor[] => [{ dtype: 'float32', shape: [1], data: Float32Array.of(k) }];
  const train = [batch(0), batch(1), batch(2), batch(3)];
  const val = [batch(4), batch(5)];
  const m = await computeCostMatrix(fieldSources(false), train, val, { pairs: 'all', ridge: 0 });
  const d = m.costs.A?.B as number;
  t.ok(d < 1e-8, `d(A -> B) aligned, closed-form: ${d}`);
  const old = await computeCostMatrix(fieldSources(true), train, val, { pairs: 'all', ridge: 0 });
  t.ok((old.costs.A?.B as number) > 1, `the whole-padded-map fit: ${old.costs.A?.B}`);
  const sgd = await computeCostMatrix(fieldSources(false), train, val, { pairs: 'all', fitter: 'sgd', steps: 200, lr: 0.05 });
  const oldSgd = await computeCostMatrix(fieldSources(true), train, val, { pairs: 'all', fitter: 'sgd', steps: 200, lr: 0.05 });
  t.ok((sgd.costs.A?.B as number) < 1e-3 * (oldSgd.costs.A?.B as number), `sgd: aligned ${sgd.costs.A?.B} vs whole-map ${oldSgd.costs.A?.B}`);
  // Only the distilled levels.
  const p3 = await computeCostMatrix(fieldSources(false), train, val, { pairs: 'all', ridge: 0, levels: ['p3'] });
  t.same(p3.levels, ['p3']);
  t.same(Object.keys(p3.perLevel.A?.B ?? {}), ['p3']);
  await t.rejects(computeCostMatrix(fieldSources(false), train, val, { pairs: 'all', levels: ['p3', 'p5'] }), /level p5 is not a feature map of A, B/);
});
