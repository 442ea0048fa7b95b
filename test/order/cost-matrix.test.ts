import t from 'tap';
import { backwardGreedySelection } from '../../src/order/bgs.js';
import { computeCostMatrix, type FeatureSource } from '../../src/order/cost-matrix.js';
import type { Tensor } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
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
