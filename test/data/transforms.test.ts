import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  batchImages,
  hflipBoxes,
  hflipImage,
  hflipMasks,
  normalize,
  resizeBilinear,
  resizeBoxes,
  resizeMasksNearest,
  resizePlan,
  type RawImage,
} from '../../src/data/transforms.js';

interface GoldenCase {
  height: number; width: number; min_size: number; max_size: number;
  out_height: number; out_width: number; batch_shape: number[];
  sample_stride: number; sample: number[]; sum: number; boxes: number[]; masks_sum: number; masks_sample: number[];
}
const golden = JSON.parse(readFileSync(new URL('../fixtures/data/transforms_golden.json', import.meta.url), 'utf8')) as { cases: GoldenCase[] };

function formulaImage(h: number, w: number): RawImage {
  const data = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = (x * 7 + y * 13 + c * 50 + ((x * y) % 17)) % 256;
  return { data, height: h, width: w, channels: 3 };
}
function formulaMasks(h: number, w: number): Uint8Array {
  const m = new Uint8Array(2 * h * w);
  for (let k = 0; k < 2; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m[(k * h + y) * w + x] = (x + 2 * y + 3 * k) % 5 < 2 ? 1 : 0;
  return m;
}

t.test('resize + normalize + batch agree with torchvision GeneralizedRCNNTransform', async (t) => {
  for (const g of golden.cases) {
    const name = `${g.height}x${g.width} min ${g.min_size} max ${g.max_size}`;
    const plan = resizePlan(g.height, g.width, g.min_size, g.max_size);
    t.same([plan.height, plan.width], [g.out_height, g.out_width], `${name}: output size`);
    const img = resizeBilinear(normalize(formulaImage(g.height, g.width)), plan.height, plan.width);
    let maxErr = 0;
    g.sample.forEach((v, i) => { maxErr = Math.max(maxErr, Math.abs(img.data[i * g.sample_stride]! - v)); });
    t.ok(maxErr < 2e-5, `${name}: max |diff| ${maxErr.toExponential(2)} over ${g.sample.length} samples`);
    const sum = img.data.reduce((a, b) => a + b, 0);
    t.ok(Math.abs(sum - g.sum) < 1e-3 * Math.max(1, Math.abs(g.sum)) + 1e-2, `${name}: sum ${sum} vs ${g.sum}`);
    const boxes = resizeBoxes(new Float32Array([1.5, 2.25, 20, 30, 0, 0, g.width, g.height]), g.height, g.width, plan.height, plan.width);
    t.same(Array.from(boxes), g.boxes, `${name}: boxes exactly`);
    const m = resizeMasksNearest(formulaMasks(g.height, g.width), 2, g.height, g.width, plan.height, plan.width);
    t.equal(m.reduce((a, b) => a + b, 0), g.masks_sum, `${name}: mask sum`);
    t.same(Array.from(m.filter((_, i) => i % 5 === 0)), g.masks_sample, `${name}: masks exactly`);
    const batch = batchImages([img]);
    t.same(batch.images.shape.slice(1), g.batch_shape, `${name}: padded batch shape`);
  }
});

t.test('flip twice is the identity on images, boxes and masks; flip moves boxes with pixels', async (t) => {
  const img = formulaImage(9, 14);
  t.same(hflipImage(hflipImage(img)).data, img.data);
  const boxes = new Float32Array([1, 2, 5, 8, 0, 0, 14, 9]);
  const once = hflipBoxes(boxes.slice(), 14);
  t.same(Array.from(once), [9, 2, 13, 8, 0, 0, 14, 9]);
  t.same(Array.from(hflipBoxes(once, 14)), Array.from(boxes));
  // a mask filling box 0 exactly is still filling the flipped box after flipping
  const m = new Uint8Array(9 * 14);
  for (let y = 2; y < 8; y++) for (let x = 1; x < 5; x++) m[y * 14 + x] = 1;
  const fm = hflipMasks(m, 1, 9, 14);
  for (let y = 0; y < 9; y++) for (let x = 0; x < 14; x++) t.equal(fm[y * 14 + x], x >= 9 && x < 13 && y >= 2 && y < 8 ? 1 : 0);
  t.same(hflipMasks(fm, 1, 9, 14), m);
  // the image is mirrored: pixel (y, x) moves to (y, W-1-x)
  const f = hflipImage(img);
  t.same(Array.from(f.data.subarray((3 * 14 + 13) * 3, (3 * 14 + 13) * 3 + 3)), Array.from(img.data.subarray(3 * 14 * 3, 3 * 14 * 3 + 3)));
});

t.test('resize keeps relative positions of boxes and masks', async (t) => {
  const H = 40;
  const W = 60;
  const m = new Uint8Array(H * W);
  for (let y = 10; y < 30; y++) for (let x = 12; x < 36; x++) m[y * W + x] = 1;
  const plan = resizePlan(H, W, 100, 1000);
  t.same([plan.height, plan.width], [100, 150]);
  const b = resizeBoxes(new Float32Array([12, 10, 36, 30]), H, W, plan.height, plan.width);
  t.same(Array.from(b), [30, 25, 90, 75]);
  t.same([b[0]! / plan.width, b[1]! / plan.height], [12 / W, 10 / H]);
  const rm = resizeMasksNearest(m, 1, H, W, plan.height, plan.width);
  // mask extent after resize matches the resized box
  let x0 = Infinity, x1 = -1, y0 = Infinity, y1 = -1;
  for (let y = 0; y < plan.height; y++) for (let x = 0; x < plan.width; x++) if (rm[y * plan.width + x]) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  t.same([x0, y0, x1 + 1, y1 + 1], [30, 25, 90, 75]);
});

t.test('batching pads bottom/right with zeros to a multiple of the stride', async (t) => {
  const a = { data: new Float32Array(3 * 2 * 3).fill(1), height: 2, width: 3, channels: 3 };
  const b = { data: new Float32Array(3 * 33 * 1).fill(2), height: 33, width: 1, channels: 3 };
  const batch = batchImages([a, b]);
  t.same(batch.images.shape, [2, 3, 64, 32]);
  t.same(batch.imageSizes, [[2, 3], [33, 1]]);
  const d = batch.images.data;
  t.equal(d[0], 1);
  t.equal(d[3], 0, 'right padding');
  t.equal(d[32 * 2], 0, 'bottom padding');
  t.equal(d[(1 * 3 + 2) * 64 * 32 + 32 * 32], 2, 'image 1 channel 2 row 32 col 0');
  t.equal(d.reduce((s, v) => s + v, 0), 3 * 6 + 2 * 3 * 33);
  t.throws(() => batchImages([]), /no images/);
});
