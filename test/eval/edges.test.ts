/**
 * src/eval against pycocotools on inputs it evaluates but that are easy to get wrong
 * (test/fixtures/coco/eval_edges_golden.json, made by scripts/golden/coco_eval_edges.py):
 * boxes with a negative width or height, segm results of loadRes' mask branch with `bbox: []`,
 * ground-truth annotations of images or categories the file does not list. All to 1e-12.
 */
import t from 'tap';
import { CocoEvaluator, evaluate, ignoredAnnotationsWarning } from '../../src/eval/index.js';
import { checkGoldenCase, loadCocoGolden } from './golden.js';

const golden = loadCocoGolden('eval_edges_golden.json');
const byName = (name: string) => golden.cases.find((c) => c.name === name)!;

t.test('the fixture has every case', async (t) => {
  t.same(
    golden.cases.map((c) => c.name),
    ['negative_boxes_bbox', 'negative_boxes_segm', 'mask_branch_empty_bbox_segm', 'gt_unlisted_image_category_bbox', 'gt_unlisted_image_category_segm'],
  );
});

for (const c of golden.cases) {
  t.test(`golden ${c.name} (${c.iouType})`, async (t) => checkGoldenCase(t, golden, c));
}

t.test('negative widths: the highest-scoring detection of a category ignored yet filling maxDets=1', async (t) => {
  const c = byName('negative_boxes_bbox');
  const r = evaluate(golden.gts[c.gt]!, c.dets);
  t.equal(r.perCategory['1']!.stats.AR1, c.expected.perCategory['1']![6]);
  t.equal(c.expected.perCategory['1']![6], 0, 'pycocotools: AR1 = 0 for category 1');
});

t.test('mask branch: bbox [] is unused for segm, refused for bbox (pycocotools raises there too)', async (t) => {
  const c = byName('mask_branch_empty_bbox_segm');
  const gt = golden.gts[c.gt]!;
  t.throws(() => evaluate(gt, c.dets, { iouType: 'bbox' }), /results\[0\]\.bbox must be \[x, y, width, height\], got \[\]/);
  // the bbox branch (first result with a box) still refuses an empty one
  const first = { ...c.dets[0]!, bbox: [1, 1, 5, 5] };
  t.throws(() => evaluate(gt, [first, ...c.dets], { iouType: 'segm' }), /results\[1\]\.bbox must be \[x, y, width, height\], got \[\]/);
});

t.test('unlisted images and categories of the ground truth: left out and counted; refused with unknownCategories "error"', async (t) => {
  const c = byName('gt_unlisted_image_category_bbox');
  const gt = golden.gts[c.gt]!;
  const ev = new CocoEvaluator(gt);
  t.same(ev.ignoredAnnotations, { images: { 77: 1, 78: 1 }, categories: { 99: 2 } });
  ev.addDetections(c.dets);
  const r = ev.evaluate();
  t.same(r.ignoredAnnotations, { images: { 77: 1, 78: 1 }, categories: { 99: 2 } });
  t.same(r.ignoredCategories, { 99: 1 });
  t.same(evaluate(gt, c.dets).ignoredAnnotations, { images: { 77: 1, 78: 1 }, categories: { 99: 2 } });
  t.equal(
    ignoredAnnotationsWarning(r.ignoredAnnotations, 'gt.json'),
    'warning: gt.json: 2 annotations whose image_id is not in "images" (77 (1), 78 (1)) and 2 annotations whose category_id is not in "categories" (99 (2)) were left out, as pycocotools does',
  );
  t.equal(ignoredAnnotationsWarning({ images: {}, categories: { 5: 1 } }), 'warning: ground truth: 1 annotation whose category_id is not in "categories" (5 (1)) was left out, as pycocotools does');
  t.equal(ignoredAnnotationsWarning({ images: {}, categories: {} }), null);
  t.throws(() => new CocoEvaluator(gt, { unknownCategories: 'error' }), /ground truth: annotations\[4\]\.category_id 99 is not in categories/);
});
