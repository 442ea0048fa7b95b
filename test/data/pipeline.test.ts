import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { prepareSample, type SampleJob } from '../../src/data/pipeline.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../src/data/transforms.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mtpd-pipe-'));

const job = (p: string, width: number, height: number, extra: Partial<SampleJob> = {}): SampleJob => ({
  position: 0, index: 0, imageId: 1, path: p, width, height,
  boxes: new Float32Array([2, 1, 6, 3]), labels: new Int32Array([4]), segmentations: [[[2, 1, 6, 1, 6, 3, 2, 3]]],
  flip: false, resize: 'none', minSize: 1, maxSize: 1, output: 'uint8', ...extra,
});

t.test('JPEG and PNG, greyscale and alpha all decode to RGB; EXIF orientation is not applied', async (t) => {
  const w = 8, h = 4;
  const rgb = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) { rgb[3 * i] = 200; rgb[3 * i + 1] = 100; rgb[3 * i + 2] = 50; }
  const raw = { raw: { width: w, height: h, channels: 3 as const } };
  const files = {
    png: await sharp(rgb, raw).png().toFile(path.join(dir, 'a.png')).then(() => path.join(dir, 'a.png')),
    jpg: await sharp(rgb, raw).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(path.join(dir, 'a.jpg')).then(() => path.join(dir, 'a.jpg')),
    grey: await sharp(rgb, raw).greyscale().jpeg().toFile(path.join(dir, 'g.jpg')).then(() => path.join(dir, 'g.jpg')),
    rgba: await sharp(rgb, raw).ensureAlpha(0.5).png().toFile(path.join(dir, 'a4.png')).then(() => path.join(dir, 'a4.png')),
    // EXIF orientation 6 (rotate 90 when displayed): COCO annotates the stored pixels, so must we
    exif: await sharp(rgb, raw).jpeg().withMetadata({ orientation: 6 }).toFile(path.join(dir, 'o6.jpg')).then(() => path.join(dir, 'o6.jpg')),
  };
  t.equal((await sharp(files.exif).metadata()).orientation, 6);
  for (const [name, f] of Object.entries(files)) {
    const s = await prepareSample(job(f, w, h));
    t.equal(s.bad, undefined, name);
    t.same([s.image.channels, s.image.height, s.image.width], [3, h, w], `${name}: 3 x ${h} x ${w}`);
    const px = [s.image.data[0], s.image.data[h * w], s.image.data[2 * h * w]];
    if (name === 'grey') t.ok(px[0] === px[1] && px[1] === px[2], `${name}: grey replicated ${px}`);
    else t.ok(Math.abs(px[0]! - 200) <= 3 && Math.abs(px[1]! - 100) <= 3 && Math.abs(px[2]! - 50) <= 3, `${name}: colour ${px}`);
  }
});

t.test('float32 output is normalized with ImageNet mean/std; flip moves boxes and masks', async (t) => {
  const w = 8, h = 4;
  const rgb = Buffer.alloc(w * h * 3, 0);
  for (let y = 1; y < 3; y++) for (let x = 2; x < 6; x++) rgb.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  const f = path.join(dir, 'box.png');
  await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png().toFile(f);
  const s = await prepareSample(job(f, w, h, { output: 'float32', flip: true, boxes: new Float32Array([1, 1, 3, 3]), segmentations: [[[1, 1, 3, 1, 3, 3, 1, 3]]] }));
  t.ok(Math.abs((s.image.data[0] as number) - (0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]) < 1e-6);
  t.same(Array.from(s.boxes), [5, 1, 7, 3], 'x1 = W - x2, x2 = W - x1');
  // the polygon [1,3]x[1,3] rasterizes (pycocotools) to columns 1..2, rows 1..2; flipped: columns 5..6
  const m = Array.from(s.masks!);
  const on: number[][] = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (m[y * w + x]) on.push([x, y]);
  t.same(on, [[5, 1], [6, 1], [5, 2], [6, 2]]);
  t.ok(s.flipped);
});

t.test('resize as torchvision: sizes, boxes and masks scale together', async (t) => {
  const w = 40, h = 20;
  const f = path.join(dir, 'r.png');
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: 10, g: 20, b: 30 } } }).png().toFile(f);
  const s = await prepareSample(job(f, w, h, { resize: 'torchvision', minSize: 40, maxSize: 1000, boxes: new Float32Array([10, 5, 20, 15]), segmentations: [[[10, 5, 20, 5, 20, 15, 10, 15]]] }));
  t.same([s.image.height, s.image.width], [40, 80]);
  t.same(s.originalSize, [20, 40]);
  t.same(Array.from(s.boxes), [20, 10, 40, 30]);
  const m = s.masks!;
  let n = 0;
  for (let i = 0; i < m.length; i++) n += m[i]!;
  t.equal(n, 4 * 10 * 10, 'mask area scales by 4');
});
