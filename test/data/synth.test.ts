import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { annToRle, area, decode } from '../../src/coco/mask.js';
import { CocoDataset } from '../../src/data/coco.js';
import { deriveRng } from '../../src/data/rng.js';
import { SYNTH_CATEGORIES, keyhole, synthImage, writeSynthDataset } from '../../src/data/synth.js';

const root = mkdtempSync(path.join(tmpdir(), 'mtpd-synth-'));

t.test('an image is a pure function of its seed', async (t) => {
  const a = synthImage(deriveRng(5, 0, 3), 128);
  const b = synthImage(deriveRng(5, 0, 3), 128);
  const c = synthImage(deriveRng(6, 0, 3), 128);
  t.same(a.rgb, b.rgb);
  t.same(a.annotations, b.annotations);
  t.not(Buffer.compare(Buffer.from(a.rgb), Buffer.from(c.rgb.length === a.rgb.length ? c.rgb : a.rgb.subarray(1))), 0);
  t.ok(a.width >= 96 && a.width <= 128 && a.height >= 96 && a.height <= 128);
});

t.test('keyhole joins holes to the outline so even-odd filling keeps them', async (t) => {
  const ring = keyhole([
    [[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]],
    [[5, 5], [5, 15], [15, 15], [15, 5], [5, 5]],
  ]);
  // pycocotools' rasterization of the one joined polygon: 20*20 - 10*10 pixels
  t.equal(area(annToRle([ring], 30, 30)), 300);
});

interface Ann { id: number; image_id: number; category_id: number; bbox: number[]; area: number; iscrowd: number; segmentation: number[][] | { counts: number[]; size: [number, number] } }
interface Json { images: { id: number; file_name: string; width: number; height: number }[]; annotations: Ann[]; categories: { id: number; name: string }[] }

t.test('writes a COCO dataset the reader accepts, with consistent boxes, areas and visible masks', async (t) => {
  const out = path.join(root, 'a');
  const s = await writeSynthDataset({ out, images: 24, valImages: 6, size: 192, seed: 11, workers: 0 });
  t.same(s.splits.map((x) => [x.name, x.images]), [['train', 24], ['val', 6]]);
  const train = s.splits[0]!;
  t.ok(train.small > 0 && train.medium > 0 && train.large > 0, `sizes span COCO's ranges: ${JSON.stringify(train)}`);
  t.same(readdirSync(path.join(out, 'val')).sort(), Array.from({ length: 6 }, (_, i) => `${String(i + 1).padStart(12, '0')}.png`));
  const j = JSON.parse(readFileSync(path.join(out, 'instances_train.json'), 'utf8')) as Json;
  t.same(j.categories.map((c) => c.name), [...SYNTH_CATEGORIES]);
  t.equal(j.annotations.length, train.annotations);
  t.same(j.annotations.map((a) => a.id), j.annotations.map((_, i) => i + 1), 'annotation ids 1..n');
  const byImage = new Map<number, Ann[]>();
  for (const a of j.annotations) byImage.set(a.image_id, [...(byImage.get(a.image_id) ?? []), a]);
  let crowd = 0;
  let overlapChecks = 0;
  for (const im of j.images) {
    const meta = await sharp(path.join(out, 'train', im.file_name)).metadata();
    t.same([meta.format, meta.width, meta.height, meta.channels], ['png', im.width, im.height, 3]);
    const masks: Uint8Array[] = [];
    for (const a of byImage.get(im.id) ?? []) {
      const rle = annToRle(a.segmentation as never, im.height, im.width);
      t.equal(a.area, area(rle), `annotation ${a.id}: area is the pycocotools pixel area`);
      if (a.iscrowd) {
        crowd++;
        const seg = a.segmentation as { counts: number[]; size: [number, number] };
        t.same(seg.size, [im.height, im.width]);
        t.equal(seg.counts.reduce((x, y) => x + y, 0), im.height * im.width);
        continue;
      }
      const polys = a.segmentation as number[][];
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const p of polys) for (let i = 0; i < p.length; i += 2) { x0 = Math.min(x0, p[i]!); x1 = Math.max(x1, p[i]!); y0 = Math.min(y0, p[i + 1]!); y1 = Math.max(y1, p[i + 1]!); }
      t.ok(Math.abs(a.bbox[0]! - x0) < 1e-6 && Math.abs(a.bbox[1]! - y0) < 1e-6 && Math.abs(a.bbox[0]! + a.bbox[2]! - x1) < 0.011 && Math.abs(a.bbox[1]! + a.bbox[3]! - y1) < 0.011, `annotation ${a.id}: bbox is the polygon's extent`);
      t.ok(x0 >= 0 && y0 >= 0 && x1 <= im.width && y1 <= im.height, `annotation ${a.id}: inside the image`);
      masks.push(decode(rle));
    }
    // visible parts of different objects do not overlap (up to pixels on shared edges)
    for (let p = 0; p < masks.length; p++) {
      for (let q = p + 1; q < masks.length; q++) {
        let inter = 0, ap = 0, aq = 0;
        const mp = masks[p]!, mq = masks[q]!;
        for (let i = 0; i < mp.length; i++) { ap += mp[i]!; aq += mq[i]!; inter += mp[i]! & mq[i]!; }
        if (inter > 0) overlapChecks++;
        t.ok(inter <= 0.05 * Math.min(ap, aq) + 4, `image ${im.id}: visible masks ${p} and ${q} overlap by ${inter} px`);
      }
    }
  }
  t.comment(`${crowd} crowd regions, ${overlapChecks} touching pairs`);
  const ds = await CocoDataset.load({ annotationFile: path.join(out, 'instances_train.json'), imageDir: path.join(out, 'train') });
  t.equal(ds.length, 24);
  t.equal(ds.annotationCount, j.annotations.length);
  t.equal(ds.bad.total, 0);
});

t.test('output does not depend on the number of worker threads', async (t) => {
  const a = path.join(root, 'w0');
  const b = path.join(root, 'w2');
  await writeSynthDataset({ out: a, images: 4, valImages: 2, size: 96, seed: 3, workers: 0 });
  await writeSynthDataset({ out: b, images: 4, valImages: 2, size: 96, seed: 3, workers: 2 });
  for (const f of ['instances_train.json', 'instances_val.json', 'train/000000000003.png', 'val/000000000002.png']) {
    t.ok(readFileSync(path.join(a, f)).equals(readFileSync(path.join(b, f))), f);
  }
});

t.test('bad options are rejected with the option named', async (t) => {
  await t.rejects(writeSynthDataset({ out: path.join(root, 'x'), images: 0 }), /synth: images must be an integer >= 1/);
  await t.rejects(writeSynthDataset({ out: path.join(root, 'x'), images: 2, size: 8 }), /synth: size must be an integer >= 32/);
  await t.rejects(writeSynthDataset({ out: path.join(root, 'x'), images: 2, seed: -1 }), /synth: seed must be a non-negative integer/);
});

t.test('golden: pycocotools areas and COCOeval stats on a regenerated dataset (scripts/golden/data_synth.py)', async (t) => {
  const { createHash } = await import('node:crypto');
  const { evaluate } = await import('../../src/eval/index.js');
  const golden = JSON.parse(readFileSync(new URL('../fixtures/data/synth_golden.json', import.meta.url), 'utf8')) as {
    sha256: string; annotations: { id: number; area: number; rle_bbox: number[] }[];
    dets_bbox: unknown[]; dets_segm: unknown[]; stats_bbox: number[]; stats_segm: number[];
  };
  const out = path.join(root, 'golden');
  await writeSynthDataset({ out, images: 1, valImages: 10, size: 224, seed: 3, workers: 0 });
  const raw = readFileSync(path.join(out, 'instances_val.json'));
  t.equal(createHash('sha256').update(raw).digest('hex'), golden.sha256, 'the generator output is unchanged (rerun the golden script after an intended change)');
  const j = JSON.parse(raw.toString('utf8')) as Json;
  t.same(j.annotations.map((a) => [a.id, a.area]), golden.annotations.map((a) => [a.id, a.area]), 'areas are pycocotools mask areas');
  t.ok(j.annotations.some((a) => a.iscrowd), 'the golden set has a crowd region');
  const { toBbox } = await import('../../src/coco/mask.js');
  const imgs = new Map(j.images.map((im) => [im.id, im]));
  j.annotations.forEach((a, k) => {
    const im = imgs.get(a.image_id)!;
    t.same(Array.from(toBbox(annToRle(a.segmentation as never, im.height, im.width))), golden.annotations[k]!.rle_bbox);
  });
  const rb = evaluate(j, golden.dets_bbox as never, { iouType: 'bbox' });
  const rs = evaluate(j, golden.dets_segm as never, { iouType: 'segm' });
  for (let i = 0; i < 12; i++) {
    t.ok(Math.abs(rb.stats[i]! - golden.stats_bbox[i]!) < 1e-12, `bbox stat ${i}: ${rb.stats[i]} vs ${golden.stats_bbox[i]}`);
    t.ok(Math.abs(rs.stats[i]! - golden.stats_segm[i]!) < 1e-12, `segm stat ${i}: ${rs.stats[i]} vs ${golden.stats_segm[i]}`);
  }
});

t.test("difficulty 'clear': no crowds, no objects under 12 px, colour carries the coarse class, shape the fine one", async (t) => {
  const hueOf = (r: number, g: number, b: number) => {
    const mx = Math.max(r, g, b), mn = Math.min(r, g, b);
    if (mx - mn < 1e-6) return -1;
    const d = mx - mn;
    const h = mx === r ? ((g - b) / d + 6) % 6 : mx === g ? (b - r) / d + 2 : (r - g) / d + 4;
    return h / 6;
  };
  // Hue of an object's visible pixels at its polygon centroid region: sample the bbox centre pixel
  // of large, unoccluded-enough objects; the same group must give nearby hues across images.
  const hues = new Map<number, number[]>();
  let objects = 0;
  for (let i = 0; i < 40; i++) {
    const im = synthImage(deriveRng(2, 0, i), 192, 'clear');
    if (i === 0) t.not(Buffer.compare(Buffer.from(im.rgb), Buffer.from(synthImage(deriveRng(2, 0, i), 192, 'hard').rgb)), 0, 'the two difficulties draw different scenes');
    for (const a of im.annotations) {
      if (a.iscrowd !== 0) t.fail('a crowd region');
      if (a.area < 0.3 * 12 * 12) t.fail(`a tiny object (area ${a.area})`);
      objects++;
      const [x, y, w, h] = a.bbox as [number, number, number, number];
      if (w < 24 || h < 24 || !Array.isArray(a.segmentation) || a.segmentation.length !== 1) continue;
      const cx = Math.floor(x + w / 2), cy = Math.floor(y + h / 2);
      const p = 3 * (cy * im.width + cx);
      const hue = hueOf(im.rgb[p]!, im.rgb[p + 1]!, im.rgb[p + 2]!);
      if (hue >= 0) hues.set(a.category_id, [...(hues.get(a.category_id) ?? []), hue]);
    }
  }
  t.ok(objects > 100, `${objects} objects`);
  // Most centre samples of one category sit in its group's hue band (stripes and shading move a few).
  const band = { 1: 0.0, 2: 0.75, 3: 0.33, 4: 0.33, 5: 0.0, 6: 0.55, 7: 0.0, 8: 0.55 } as Record<number, number>;
  let inBand = 0, total = 0;
  for (const [cat, hs] of hues) {
    for (const h of hs) {
      total++;
      const d = Math.min(Math.abs(h - band[cat]!), 1 - Math.abs(h - band[cat]!));
      if (d < 0.08) inBand++;
    }
  }
  t.ok(total > 30 && inBand / total > 0.7, `${inBand}/${total} centre pixels in their group's hue band`);
  await t.rejects(writeSynthDataset({ out: path.join(root, 'bad'), images: 1, difficulty: 'easy' as never }), /synth: difficulty must be one of hard, clear/);
});
