/**
 * The paired bootstrap over images: its re-accumulation with image weights against COCOeval
 * (all weights 1, and physically duplicated images), and the behaviour of its intervals.
 */
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { accumulate, accumulateStats, evaluateImages, indexMatches, runEval } from '../../src/eval/cocoeval.js';
import { bootstrap, modelOf, pairOf, quantileSorted, resampleWeights } from '../../src/eval/bootstrap.js';
import { Detections, GroundTruth, defaultParams, evaluate, type CocoDataset, type CocoDetection, type EvalResult } from '../../src/eval/index.js';
import { mulberry32 } from '../helpers.js';

interface GoldenCase {
  name: string;
  iouType: 'bbox' | 'segm';
  gt: string;
  dets: CocoDetection[];
  imgIds: number[] | null;
}
const golden = JSON.parse(readFileSync(new URL('../fixtures/coco/eval_golden.json', import.meta.url), 'utf8')) as {
  gts: Record<string, CocoDataset>;
  cases: GoldenCase[];
};

function stores(gt: CocoDataset, dets: readonly CocoDetection[], iouType: 'bbox' | 'segm' = 'bbox') {
  const g = new GroundTruth(gt, iouType);
  const d = new Detections(g, iouType);
  d.add(dets, 'dets');
  return { g, d };
}

function sameArrays(t: Test, a: EvalResult, b: EvalResult, what: string): void {
  t.same(a.counts, b.counts, `${what}: counts`);
  t.same(a.imgIds, b.imgIds, `${what}: imgIds`);
  t.ok(a.precision.every((v, i) => v === b.precision[i]), `${what}: precision identical`);
  t.ok(a.recall.every((v, i) => v === b.recall[i]), `${what}: recall identical`);
  t.ok(a.scores.every((v, i) => v === b.scores[i]), `${what}: scores identical`);
  t.same(a.stats, b.stats, `${what}: stats identical`);
  t.same(a.perCategory, b.perCategory, `${what}: per-category stats identical`);
}

/** A dataset where image i appears w[i] times: copy c of image id gets id * 16 + c (sorting right after it). */
function duplicate(gt: CocoDataset, dets: readonly CocoDetection[], imgIds: readonly number[], w: ArrayLike<number>) {
  const copies = new Map<number, number[]>();
  imgIds.forEach((id, i) => copies.set(id, Array.from({ length: w[i]! }, (_, c) => id * 16 + c)));
  const images = gt.images.flatMap((im) => (copies.get(im.id) ?? []).map((id) => ({ ...im, id })));
  const annotations = gt.annotations.flatMap((a, j) => (copies.get(a.image_id) ?? []).map((id, c) => ({ ...a, id: (j + 1) * 16 + c, image_id: id })));
  const dd = dets.flatMap((d) => (copies.get(d.image_id) ?? []).map((id) => ({ ...d, image_id: id })));
  return { gt: { ...gt, images, annotations }, dets: dd };
}

/** Annotation ids 1, 2, ... (pycocotools treats a gt with id 0 as unmatched; copies cannot keep id 0). */
function renumbered(gt: CocoDataset): CocoDataset {
  return { ...gt, annotations: gt.annotations.map((a, j) => ({ ...a, id: (j + 1) * 16 })) };
}


/** Demo-like data: 4 categories, 1-6 objects per image; a model finds each with probability `quality`. */
function synth(images: number, qualities: number[], seed: number, opts: { quantize?: number } = {}) {
  const rand = mulberry32(seed);
  const gt: CocoDataset = { images: [], categories: [1, 2, 3, 4].map((id) => ({ id, name: `c${id}` })), annotations: [] };
  for (let i = 1; i <= images; i++) {
    gt.images.push({ id: i, width: 160, height: 160 });
    const n = 1 + Math.floor(rand() * 6);
    for (let j = 0; j < n; j++) {
      const s = 10 + rand() * 100;
      const w = s * (0.7 + 0.6 * rand());
      const h = s * (0.7 + 0.6 * rand());
      gt.annotations.push({ id: gt.annotations.length + 1, image_id: i, category_id: 1 + Math.floor(rand() * 4), bbox: [rand() * 40, rand() * 40, w, h], area: w * h, iscrowd: 0 });
    }
  }
  const q = (x: number) => (opts.quantize ? Math.round(x * opts.quantize) / opts.quantize : x);
  const models = qualities.map((quality) => {
    const dets: CocoDetection[] = [];
    for (const a of gt.annotations) {
      if (rand() > quality) continue;
      const [x, y, w, h] = a.bbox as [number, number, number, number];
      const j = (1 - quality) * 0.4;
      dets.push({ image_id: a.image_id, category_id: a.category_id, score: q(0.2 + 0.8 * rand()), bbox: [x + j * w * (rand() - 0.5), y + j * h * (rand() - 0.5), w, h] });
    }
    for (const im of gt.images) {
      for (let f = 0; f < 4; f++) dets.push({ image_id: im.id, category_id: 1 + Math.floor(rand() * 4), score: q(0.6 * rand()), bbox: [rand() * 100, rand() * 100, 10 + rand() * 60, 10 + rand() * 60] });
    }
    return dets;
  });
  return { gt, models };
}

t.test('weights all 1: the re-accumulation is COCOeval, on every golden case', async (t) => {
  for (const c of golden.cases) {
    const { g, d } = stores(golden.gts[c.gt]!, c.dets, c.iouType);
    const p = defaultParams(c.iouType);
    const ids = c.imgIds ?? undefined;
    const ref = runEval(g, d, p, ids);
    const ev = evaluateImages(g, d, p, ids);
    sameArrays(t, accumulate(ev, new Array(ev.imgIds.length).fill(1)), ref, c.name);
    t.same(accumulateStats(ev), ref.stats, `${c.name}: stats-only path`);
    t.same(accumulateStats(indexMatches(ev), new Int32Array(ev.imgIds.length).fill(1)), ref.stats, `${c.name}: indexed, weights 1`);
  }
});

t.test('a resample that repeats images is COCOeval on a dataset with those images duplicated', async (t) => {
  const rand = mulberry32(3);
  const quantized = synth(40, [0.7], 11, { quantize: 10 });
  const cases: { name: string; gt: CocoDataset; dets: CocoDetection[]; iouType: 'bbox' | 'segm' }[] = [
    ...golden.cases
      .filter((c) => c.imgIds === null && c.dets.length > 0)
      .map((c) => ({ name: c.name, gt: renumbered(golden.gts[c.gt]!), dets: c.dets, iouType: c.iouType })),
    // scores on a 0.1 grid: ties inside images and across them
    { name: 'synthetic, tied scores', gt: quantized.gt, dets: quantized.models[0]!, iouType: 'bbox' },
  ];
  for (const c of cases) {
    const { g, d } = stores(c.gt, c.dets, c.iouType);
    const ev = indexMatches(evaluateImages(g, d, defaultParams(c.iouType)));
    for (let rep = 0; rep < 3; rep++) {
      // multiplicities 0..3, and one resample as the bootstrap draws them
      const w = rep < 2 ? Array.from(ev.imgIds, () => Math.floor(rand() * 4)) : [...resampleWeights(ev.imgIds.length, 1, rep)][0]!;
      const dup = duplicate(c.gt, c.dets, ev.imgIds, w);
      const dd = stores(dup.gt, dup.dets, c.iouType);
      const ref = runEval(dd.g, dd.d, defaultParams(c.iouType));
      const got = accumulate(ev, w);
      t.same(got.counts, ref.counts);
      t.ok(got.precision.every((v, i) => v === ref.precision[i]), `${c.name} #${rep}: precision identical`);
      t.ok(got.recall.every((v, i) => v === ref.recall[i]), `${c.name} #${rep}: recall identical`);
      t.ok(got.scores.every((v, i) => v === ref.scores[i]), `${c.name} #${rep}: scores identical`);
      t.same(got.stats, ref.stats, `${c.name} #${rep}: stats identical`);
      t.same(accumulateStats(ev, w), ref.stats, `${c.name} #${rep}: stats-only path identical`);
    }
  }
  // the tied case really has ties within an image
  const { g, d } = stores(quantized.gt, quantized.models[0]!);
  const ev = evaluateImages(g, d, defaultParams());
  t.ok(ev.tieNext.some((x) => x === 1), 'tie blocks present');
});

t.test('weights are checked', async (t) => {
  const c = golden.cases[0]!;
  const { g, d } = stores(golden.gts[c.gt]!, c.dets);
  const ev = evaluateImages(g, d, defaultParams());
  t.throws(() => accumulate(ev, [1, 1]), /weights: expected one per evaluated image \(4\), got 2/);
  t.throws(() => accumulate(ev, [1, 1, -1, 1]), /weights\[2\] must be a non-negative integer, got -1/);
  t.throws(() => accumulateStats(ev, [1, 0.5, 1, 1]), /weights\[1\] must be a non-negative integer/);
  t.same(accumulate(ev, [0, 0, 0, 0]).stats, new Array(12).fill(-1), 'no images: every stat undefined');
});

t.test('point estimates are COCOeval; intervals hold them; pairs are paired differences', async (t) => {
  const { gt, models } = synth(120, [0.5, 0.8], 5);
  const r = bootstrap(gt, [
    { name: 'weak', detections: models[0]! },
    { name: 'strong', detections: models[1]! },
  ], { resamples: 300, seed: 2 });
  t.equal(r.resamples, 300);
  t.equal(r.images, 120);
  t.equal(r.level, 0.95);
  t.same(r.statNames.slice(0, 3), ['AP', 'AP50', 'AP75']);
  const weak = modelOf(r, 'weak');
  const strong = modelOf(r, 'strong');
  t.same(weak.stats, evaluate(gt, models[0]!).stats, 'weak: stats equal COCOeval');
  t.same(strong.stats, evaluate(gt, models[1]!).stats, 'strong: stats equal COCOeval');
  for (const m of [weak, strong]) {
    for (let s = 0; s < 12; s++) {
      t.ok(m.lo[s]! <= m.stats[s]! && m.stats[s]! <= m.hi[s]!, `${m.name} ${r.statNames[s]}: ${m.lo[s]} <= ${m.stats[s]} <= ${m.hi[s]}`);
      t.ok(m.hi[s]! > m.lo[s]!, `${m.name} ${r.statNames[s]}: a real spread`);
    }
  }
  const d = pairOf(r, 'strong', 'weak');
  const back = pairOf(r, 'weak', 'strong');
  t.equal(r.pairs.length, 2);
  t.equal(d.diff[0], strong.stats[0]! - weak.stats[0]!);
  t.ok(d.lo[0]! > 0, `strong - weak AP interval excludes 0: [${d.lo[0]}, ${d.hi[0]}]`);
  t.equal(d.above[0], 1);
  t.equal(back.above[0], 0);
  for (let s = 0; s < 12; s++) {
    t.ok(Math.abs(back.lo[s]! + d.hi[s]!) < 1e-15 && Math.abs(back.hi[s]! + d.lo[s]!) < 1e-15, `${r.statNames[s]}: a - b mirrors b - a`);
  }
  // paired: the difference's interval is narrower than the two intervals side by side suggest
  t.ok(d.hi[0]! - d.lo[0]! < weak.hi[0]! - weak.lo[0]! + (strong.hi[0]! - strong.lo[0]!), 'paired interval narrower than the sum of widths');
  t.throws(() => pairOf(r, 'strong', 'nope'), /no pair "strong" - "nope"/);
  t.throws(() => modelOf(r, 'nope'), /no model "nope" \(models: weak, strong\)/);
});

t.test('the interval shrinks as the images grow', async (t) => {
  const widths: number[] = [];
  for (const n of [40, 160, 640]) {
    const { gt, models } = synth(n, [0.6], 21);
    const r = bootstrap(gt, [{ name: 'm', detections: models[0]! }], { resamples: 200, seed: 1 });
    const m = modelOf(r, 'm');
    widths.push(m.hi[0]! - m.lo[0]!);
  }
  t.ok(widths[1]! < widths[0]! && widths[2]! < widths[1]!, `AP interval widths ${widths.map((w) => w.toFixed(4)).join(' > ')}`);
  // about 1/sqrt(n): four times the images, about half the width
  t.ok(widths[2]! / widths[0]! < 0.4, `640 vs 40 images: ratio ${(widths[2]! / widths[0]!).toFixed(3)}`);
});

t.test('identical detection sets: difference 0 with a zero-width interval', async (t) => {
  const { gt, models } = synth(60, [0.6], 8);
  const r = bootstrap(gt, [
    { name: 'a', detections: models[0]! },
    { name: 'b', detections: models[0]!.map((d) => ({ ...d })) },
  ], { resamples: 100 });
  const d = pairOf(r, 'a', 'b');
  for (let s = 0; s < 12; s++) {
    if (Number.isNaN(d.diff[s]!)) continue;
    t.equal(d.diff[s], 0, `${r.statNames[s]} difference`);
    t.equal(d.lo[s], 0, `${r.statNames[s]} lo`);
    t.equal(d.hi[s], 0, `${r.statNames[s]} hi`);
    t.equal(d.above[s], 0, `${r.statNames[s]} above 0 in no resample`);
  }
  t.same(modelOf(r, 'a').lo, modelOf(r, 'b').lo);
  t.same(modelOf(r, 'a').hi, modelOf(r, 'b').hi);
});

t.test('deterministic for a seed', async (t) => {
  const { gt, models } = synth(50, [0.5, 0.7], 9);
  const input = [
    { name: 'x', detections: models[0]! },
    { name: 'y', detections: models[1]! },
  ];
  const a = bootstrap(gt, input, { resamples: 80, seed: 42 });
  const b = bootstrap(gt, input, { resamples: 80, seed: 42 });
  const c = bootstrap(gt, input, { resamples: 80, seed: 43 });
  t.same(a, b, 'same seed, same result');
  t.not(JSON.stringify(a.models), JSON.stringify(c.models), 'another seed, other intervals');
  t.same(a.models.map((m) => m.stats), c.models.map((m) => m.stats), 'point estimates do not depend on the seed');
  const w1 = [...resampleWeights(10, 3, 7)].map((w) => Array.from(w));
  const w2 = [...resampleWeights(10, 3, 7)].map((w) => Array.from(w));
  t.same(w1, w2);
  t.ok(w1.every((w) => w.reduce((s, x) => s + x, 0) === 10), 'each resample draws as many images as there are');
});

t.test('stats undefined on a resample are left out of the interval', async (t) => {
  // one image holds the only large object: resamples without it have no APl
  const gt: CocoDataset = {
    images: [1, 2, 3, 4, 5, 6].map((id) => ({ id, width: 200, height: 200 })),
    categories: [{ id: 1, name: 'a' }],
    annotations: [
      ...[1, 2, 3, 4, 5].map((i) => ({ id: i, image_id: i, category_id: 1, bbox: [10, 10, 20, 20], area: 400, iscrowd: 0 })),
      { id: 6, image_id: 6, category_id: 1, bbox: [0, 0, 150, 150], area: 22500, iscrowd: 0 },
    ],
  };
  const dets = gt.annotations.map((a, i) => ({ image_id: a.image_id, category_id: 1, score: 0.5 + i / 20, bbox: a.bbox! }));
  const r = bootstrap(gt, [{ name: 'm', detections: dets }], { resamples: 50, seed: 3 });
  const m = modelOf(r, 'm');
  // (1 / (1 + eps) where the large object is drawn once, as pycocotools computes it)
  t.ok(m.stats[5]! > 1 - 1e-12, 'APl on all images');
  t.ok(m.lo[5]! > 1 - 1e-12 && m.hi[5]! <= 1, `APl interval [${m.lo[5]}, ${m.hi[5]}] from the resamples that have a large object only`);
});

t.test('bootstrap arguments are checked', async (t) => {
  const { gt, models } = synth(5, [0.5], 1);
  const m = { name: 'm', detections: models[0]! };
  t.throws(() => bootstrap(gt, []), /models: expected at least one/);
  t.throws(() => bootstrap(gt, [m, m]), /models\[1\]\.name "m" is a duplicate/);
  t.throws(() => bootstrap(gt, [{ ...m, name: '' }]), /models\[0\]\.name must be a non-empty string/);
  t.throws(() => bootstrap(gt, [m], { resamples: 0 }), /resamples must be a positive integer/);
  t.throws(() => bootstrap(gt, [m], { level: 1 }), /level must be between 0 and 1/);
  t.throws(() => bootstrap(gt, [{ name: 'bad', detections: [{ image_id: 99, category_id: 1, score: 1, bbox: [0, 0, 1, 1] }] }]), /models\[0\]\.detections \("bad"\)\[0\]\.image_id 99/);
  const other = new GroundTruth(gt, 'bbox');
  t.throws(() => bootstrap(gt, [{ name: 'x', detections: new Detections(other, 'bbox') }]), /built on another GroundTruth/);
});

t.test('quantiles as numpy computes them (linear)', async (t) => {
  t.equal(quantileSorted([1, 2, 3, 4], 0.025), 1.075);
  t.equal(quantileSorted([1, 2, 3, 4], 0.975), 3.925);
  t.equal(quantileSorted([5], 0.5), 5);
  t.ok(Number.isNaN(quantileSorted([], 0.5)));
});
