/**
 * src/coco/mask.ts against pycocotools' mask API: golden values from scripts/golden/coco_mask.py
 * (test/fixtures/coco/mask_golden.json), plus round trips and error cases.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  annToRle,
  area,
  bboxIou,
  decode,
  encode,
  frBbox,
  frPoly,
  frPyObjects,
  frUncompressed,
  fromCompressed,
  iou,
  merge,
  rleFromString,
  rleToString,
  toBbox,
  toCompressed,
  validateRle,
  type CompressedRle,
  type Rle,
  type UncompressedRle,
} from '../../src/coco/mask.js';

interface Golden {
  cases: {
    encode: { h: number; w: number; mask: number[]; rle: CompressedRle; area: number; bbox: number[] }[];
    poly: {
      h: number;
      w: number;
      polygons: number[][];
      rles: CompressedRle[];
      merged: CompressedRle;
      intersect: CompressedRle;
      area: number;
      bbox: number[];
    }[];
    bbox: { h: number; w: number; box: number[]; rle: CompressedRle }[];
    uncompressed: { rle: UncompressedRle; compressed: CompressedRle }[];
    strings: { rle: CompressedRle; area: number; bbox: number[] }[];
    merge: { rles: CompressedRle[]; union: CompressedRle; intersect: CompressedRle }[];
    iou: { dt: CompressedRle[]; gt: CompressedRle[]; iscrowd: number[]; iou: number[] }[];
    bboxIou: { dt: number[][]; gt: number[][]; iscrowd: number[]; iou: number[] }[];
  };
}
const golden = JSON.parse(
  readFileSync(new URL('../fixtures/coco/mask_golden.json', import.meta.url), 'utf8'),
) as Golden;
const C = golden.cases;

const sameRle = (a: Rle, b: CompressedRle) => toCompressed(a).counts === b.counts && a.h === b.size[0] && a.w === b.size[1];

t.test('encode / decode / area / toBbox match pycocotools', async (t) => {
  t.ok(C.encode.length >= 40);
  for (const [i, c] of C.encode.entries()) {
    const r = encode(c.mask, c.h, c.w);
    t.equal(rleToString(r), c.rle.counts, `encode ${i}`);
    t.same(Array.from(decode(r)), c.mask, `decode ${i}`);
    t.equal(area(r), c.area, `area ${i}`);
    t.same(Array.from(toBbox(r)), c.bbox, `toBbox ${i}`);
    const back = fromCompressed(c.rle);
    t.same(Array.from(back.counts), Array.from(r.counts), `fromString ${i}`);
  }
});

t.test('polygons rasterise exactly as rleFrPoly; merge and intersect of parts', async (t) => {
  let mismatches = 0;
  for (const [i, c] of C.poly.entries()) {
    const rles = c.polygons.map((p) => frPoly(p, c.h, c.w));
    rles.forEach((r, j) => {
      if (rleToString(r) !== c.rles[j]!.counts) mismatches++;
    });
    t.ok(sameRle(merge(rles), c.merged), `merged ${i}`);
    t.ok(sameRle(merge(rles, true), c.intersect), `intersect ${i}`);
    const viaAnn = annToRle(c.polygons, c.h, c.w);
    t.ok(sameRle(viaAnn, c.merged), `annToRle ${i}`);
    t.equal(area(viaAnn), c.area, `area ${i}`);
    t.same(Array.from(toBbox(viaAnn)), c.bbox, `bbox ${i}`);
  }
  t.equal(mismatches, 0, 'every polygon part matches');
});

t.test('boxes rasterise as rleFrBbox; frPyObjects dispatch', async (t) => {
  for (const [i, c] of C.bbox.entries()) {
    t.equal(rleToString(frBbox(c.box, c.h, c.w)), c.rle.counts, `frBbox ${i}`);
    const viaPy = frPyObjects([c.box], c.h, c.w) as Rle[];
    t.equal(rleToString(viaPy[0]!), c.rle.counts, `frPyObjects([box]) ${i}`);
    t.equal(rleToString(frPyObjects(c.box, c.h, c.w) as Rle), c.rle.counts, `frPyObjects(box) ${i}`);
  }
  const p = C.poly[0]!;
  const list = frPyObjects(p.polygons, p.h, p.w) as Rle[];
  t.same(list.map(rleToString), p.rles.map((r) => r.counts));
  t.throws(() => frPyObjects(42, 3, 3), /not supported/);
});

t.test('uncompressed RLE -> compressed', async (t) => {
  for (const [i, c] of C.uncompressed.entries()) {
    t.ok(sameRle(frUncompressed(c.rle), c.compressed), `frUncompressed ${i}`);
    t.ok(sameRle(annToRle(c.rle, 1, 1), c.compressed), `annToRle keeps the RLE's own size ${i}`);
    t.ok(sameRle(frPyObjects(c.rle, 0, 0) as Rle, c.compressed), `frPyObjects(rle) ${i}`);
  }
});

t.test('string format with long runs and negative deltas round-trips', async (t) => {
  for (const [i, c] of C.strings.entries()) {
    const r = fromCompressed(c.rle);
    validateRle(r, 'strings');
    t.equal(rleToString(r), c.rle.counts, `round trip ${i}`);
    t.equal(area(r), c.area, `area ${i}`);
    t.same(Array.from(toBbox(r)), c.bbox, `bbox ${i}`);
  }
  // counts up to 2^32 - 1 survive the 5-bit chunks and sign extension
  const big = { h: 1, w: 0, counts: Uint32Array.from([0, 4294967295, 1, 2 ** 31, 7, 0]) };
  t.same(Array.from(rleFromString(rleToString(big), 1, 0).counts), Array.from(big.counts));
});

t.test('merge of several masks', async (t) => {
  for (const [i, c] of C.merge.entries()) {
    const rs = c.rles.map(fromCompressed);
    t.ok(sameRle(merge(rs), c.union), `union ${i}`);
    t.ok(sameRle(merge(rs, true), c.intersect), `intersect ${i}`);
  }
  const a = encode([1, 0, 0, 1], 2, 2);
  const b = encode([1, 0, 0, 1, 0, 0], 2, 3);
  const bad = merge([a, b]);
  t.equal(bad.h, 0, 'size mismatch gives an empty RLE as rleMerge');
  t.equal(merge([]).counts.length, 0);
});

t.test('mask IoU with crowd and size mismatch', async (t) => {
  for (const [i, c] of C.iou.entries()) {
    const o = iou(c.dt.map(fromCompressed), c.gt.map(fromCompressed), c.iscrowd);
    t.equal(o.length, c.iou.length, `iou ${i} size`);
    let worst = 0;
    o.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - c.iou[j]!))));
    t.equal(worst, 0, `iou ${i} identical`);
  }
});

t.test('box IoU (xywh) with crowd', async (t) => {
  for (const [i, c] of C.bboxIou.entries()) {
    const o = bboxIou(Float64Array.from(c.dt.flat()), Float64Array.from(c.gt.flat()), c.iscrowd);
    t.same(Array.from(o), c.iou, `bboxIou ${i}`);
  }
});

t.test('bad input gets clear errors', async (t) => {
  t.throws(() => rleFromString('0a!', 2, 2), /invalid character/);
  t.throws(() => rleFromString('0P', 2, 2), /ends inside a number/);
  t.throws(() => encode([1, 0, 1], 2, 2), /expected h\*w = 4/);
  t.throws(() => validateRle({ h: 2, w: 2, counts: Uint32Array.from([1, 2]) }, 'segmentation of x'), /segmentation of x: RLE counts sum to 3/);
  t.throws(() => decode({ h: 2, w: 2, counts: Uint32Array.from([9]) }), /sum to 9/);
});
