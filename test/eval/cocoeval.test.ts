/**
 * src/eval against pycocotools' COCOeval: every case of test/fixtures/coco/eval_golden.json
 * (made by scripts/golden/coco_eval.py) must match to 1e-12 — stats, per-category stats,
 * recall and precision.
 */
import t from 'tap';
import { CocoEvaluator, evaluate, defaultParams, ignoredCategoriesWarning, type CocoDetection } from '../../src/eval/index.js';
import { checkGoldenCase, loadCocoGolden, maxDiff, TOL } from './golden.js';

const golden = loadCocoGolden('eval_golden.json');

t.test('thresholds are numpy linspace values', async (t) => {
  const p = defaultParams();
  const c = golden.cases[0]!;
  t.same(Array.from(p.iouThrs), c.expected.iouThrs);
  t.same(Array.from(p.recThrs), c.expected.recThrs);
  t.equal(p.iouThrs[8], 0.8999999999999999);
});

for (const c of golden.cases) {
  t.test(`golden ${c.name} (${c.iouType})`, async (t) => checkGoldenCase(t, golden, c));
}

t.test('incremental batches give the same result as one call, in any batch split', async (t) => {
  const c = golden.cases.find((x) => x.name === 'large_bbox')!;
  const gt = golden.gts[c.gt]!;
  const ev = new CocoEvaluator(gt, { iouType: 'bbox' });
  for (let i = 0; i < c.dets.length; i += 97) ev.addDetections(c.dets.slice(i, i + 97));
  t.equal(ev.numDetections, c.dets.length);
  const s = ev.summarize();
  t.ok(maxDiff(s.stats, c.expected.stats) <= TOL);
  t.match(s.text, /Average Precision {2}\(AP\) @\[ IoU=0.50:0.95 \| area= {3}all \| maxDets=100 \] = \d\.\d{3}/);
  // summarize again: repeatable; reset clears
  t.same(ev.summarize().stats, s.stats);
  ev.reset();
  t.equal(ev.numDetections, 0);
  t.same(ev.summarize().stats.slice(0, 3), [0, 0, 0]);
});

t.test('addPredictions (columnar xyxy, label -> category map) equals the records', async (t) => {
  const c = golden.cases.find((x) => x.name === 'maxdets_bbox')!;
  const gt = golden.gts[c.gt]!;
  const catIds = gt.categories.map((x) => x.id);
  const ev = new CocoEvaluator(gt);
  const byImg = new Map<number, CocoDetection[]>();
  for (const d of c.dets) byImg.set(d.image_id, [...(byImg.get(d.image_id) ?? []), d]);
  // per image in file order: ties keep their order inside an (image, category) group
  for (const [img, ds] of byImg) {
    const boxes = new Float64Array(ds.length * 4);
    ds.forEach((d, i) => boxes.set([d.bbox![0]!, d.bbox![1]!, d.bbox![0]! + d.bbox![2]!, d.bbox![1]! + d.bbox![3]!], 4 * i));
    ev.addPredictions(img, { boxes, scores: ds.map((d) => d.score), labels: ds.map((d) => catIds.indexOf(d.category_id)) }, { categoryIds: catIds });
  }
  // x + w - x is not always w in floating point: compare to the records path with the same boxes
  const ref = new CocoEvaluator(gt);
  for (const [, ds] of byImg)
    ref.addDetections(ds.map((d) => ({ ...d, bbox: [d.bbox![0]!, d.bbox![1]!, d.bbox![0]! + d.bbox![2]! - d.bbox![0]!, d.bbox![1]! + d.bbox![3]! - d.bbox![1]!] })));
  t.same(ev.summarize().stats, ref.summarize().stats);
  t.ok(Math.abs(ev.summarize().stats[0]! - c.expected.stats[0]!) < 1e-3, 'and close to the golden AP');
  t.throws(() => ev.addPredictions(gt.images[0]!.id, { boxes: [0, 0, 1, 1], scores: [1], labels: [99] }, { categoryIds: catIds }), /outside categoryIds/);
});

t.test('bad detections get errors naming the record and field; a failed batch adds nothing', async (t) => {
  const gt = golden.gts[golden.cases[0]!.gt]!;
  const ev = new CocoEvaluator(gt);
  const ok = { image_id: 7, category_id: 1, score: 0.5, bbox: [0, 0, 1, 1] };
  t.throws(() => ev.addDetections([ok, { ...ok, image_id: 999 }]), /detections\[1\]\.image_id 999 is not an image/);
  t.equal(ev.numDetections, 0);
  t.throws(() => new CocoEvaluator(gt, { unknownCategories: 'error' }).addDetections([ok, { ...ok, category_id: 4 }]), /detections\[1\]\.category_id 4 is not a category/);
  t.throws(() => ev.addDetections([{ ...ok, category_id: 'x' }]), /category_id "x" is not a category/);
  t.throws(() => ev.addDetections([{ ...ok, score: 'x' }]), /score must be a finite number/);
  t.throws(() => ev.addDetections([{ ...ok, bbox: [0, 0, 1] }]), /bbox must be \[x, y, width, height\]/);
  t.throws(() => ev.addDetections({}), /must be an array/);
  t.throws(() => new CocoEvaluator(gt, { iouType: 'segm' }), /annotations\[0\]\.segmentation is missing/, 'gt without segmentation rejected for segm');
});

t.test('detections of categories the ground truth does not list are ignored and counted, as pycocotools does', async (t) => {
  const c = golden.cases[0]!;
  const gt = golden.gts[c.gt]!;
  const known = new Set((gt as { categories: { id: number }[] }).categories.map((x) => x.id));
  const extra = c.dets.slice(0, 7).map((d, i) => ({ ...d, category_id: i < 5 ? 1000 : 1001, score: 0.99 }));
  t.ok(!known.has(1000) && !known.has(1001));
  const ev = new CocoEvaluator(gt);
  ev.addDetections([...extra.slice(0, 3), ...c.dets, ...extra.slice(3)]);
  const r = ev.evaluate();
  t.same(r.ignoredCategories, { 1000: 5, 1001: 2 });
  t.same(r.stats, evaluate(gt, c.dets).stats, 'the stats of the listed categories alone');
  t.same(evaluate(gt, c.dets).ignoredCategories, {});
  t.equal(ev.numDetections, c.dets.length);
  t.match(ignoredCategoriesWarning(r.ignoredCategories, 'r.json')!, /r\.json: 7 detections of 2 categories the ground truth does not list were ignored, as pycocotools does: category_id 1000 \(5\), 1001 \(2\)/);
  t.equal(ignoredCategoriesWarning({}), null);
  // a failed batch takes back its counts too
  t.throws(() => ev.addDetections([extra[0], { ...extra[0], score: 'x' }]), /score must be a finite number/);
  t.same(ev.ignoredCategories, { 1000: 5, 1001: 2 });
  t.throws(() => new CocoEvaluator(gt, { unknownCategories: 'warn' as 'error' }), /unknownCategories must be "ignore" or "error"/);
});

t.test('bad ground truth gets errors naming the field', async (t) => {
  const base = { images: [{ id: 1, height: 10, width: 10 }], categories: [{ id: 1, name: 'a' }] };
  const ann = { id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0 };
  // unlisted images / categories are left out as pycocotools does (test/eval/edges.test.ts); 'error' refuses them
  const strict = { unknownCategories: 'error' } as const;
  t.throws(() => new CocoEvaluator({ ...base, annotations: [{ ...ann, image_id: 2 }] }, strict), /annotations\[0\]\.image_id 2 is not in images/);
  t.throws(() => new CocoEvaluator({ ...base, annotations: [{ ...ann, category_id: 3 }] }, strict), /category_id 3 is not in categories/);
  t.throws(() => new CocoEvaluator({ ...base, annotations: [{ ...ann, category_id: 'x' }] }), /annotations\[0\]\.category_id "x" is not in categories/);
  t.throws(() => new CocoEvaluator({ ...base, annotations: [ann, ann] }), /duplicate annotation id/);
  t.throws(() => new CocoEvaluator({ ...base, annotations: [{ ...ann, area: undefined }] }), /annotations\[0\]\.area must be a finite number/);
  t.throws(() => new CocoEvaluator({ ...base }), /"annotations" must be an array/);
  t.throws(
    () => new CocoEvaluator({ ...base, annotations: [{ ...ann, segmentation: { size: [10, 10], counts: [3, 4] } }] }, { iouType: 'segm' }),
    /segmentation: RLE counts sum to 7, expected h\*w = 100/,
  );
  t.throws(
    () => new CocoEvaluator({ ...base, annotations: [{ ...ann, segmentation: { size: [10, 10], counts: '!!' } }] }, { iouType: 'segm' }),
    /invalid character/,
  );
  t.throws(() => new CocoEvaluator({ ...base, annotations: [] }, { iouType: 'keypoints' as never }), /iouType must be/);
});

t.test('summary numbers are formatted as Python formats them', async (t) => {
  const { pyFixed } = await import('../../src/eval/cocoeval.js');
  t.equal(pyFixed(0.0625, 3), '0.062');
  t.equal(pyFixed(0.1875, 3), '0.188');
  t.equal(pyFixed(0.5, 0), '0');
  t.equal(pyFixed(1.5, 0), '2');
  t.equal(pyFixed(-1, 3), '-1.000');
  t.equal(pyFixed(0.8999999999999999, 2), '0.90');
  t.equal(pyFixed(0.12345, 3), '0.123');
});

t.test('incremental segm: addPredictions with masks equals the results file', async (t) => {
  const { fromCompressed } = await import('../../src/coco/mask.js');
  const c = golden.cases.find((x) => x.name === 'segm_with_bbox')!;
  const gt = golden.gts[c.gt]!;
  const ev = new CocoEvaluator(gt, { iouType: 'segm' });
  const byImg = new Map<number, CocoDetection[]>();
  for (const d of c.dets) byImg.set(d.image_id, [...(byImg.get(d.image_id) ?? []), d]);
  for (const [img, ds] of byImg) {
    ev.addPredictions(
      img,
      {
        boxes: ds.flatMap((d) => d.bbox!),
        scores: ds.map((d) => d.score),
        labels: ds.map((d) => d.category_id),
        // decoded Rle objects for half, compressed objects for the rest
        masks: ds.map((d, i) => (i % 2 ? fromCompressed(d.segmentation as never) : (d.segmentation as never))),
      },
      { boxFormat: 'xywh' },
    );
  }
  const s = ev.summarize();
  t.ok(maxDiff(s.stats, c.expected.stats) <= TOL, `${JSON.stringify(s.stats)}`);
});
