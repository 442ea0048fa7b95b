// The resized size of every (h, w) in 1..400 for five (min_size, max_size) settings, against the
// output sizes of torchvision 0.14's detection resize (scripts/golden/resize_sizes.py, a SHA-256
// of the whole table per setting): the detector's own resize rule (the native transform, through
// evalImageSizes) and the data pipeline's resizePlan.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createDetector } from '../../src/detector.js';
import { resizePlan } from '../../src/data/transforms.js';
import { haveAddon } from '../helpers.js';

interface GoldenConfig { min_size: number; max_size: number; sha256: string; differs_count: number; differs_sample: [number, number, number, number][] }
const golden = JSON.parse(readFileSync(new URL('../fixtures/models/resize_sizes_golden.json', import.meta.url), 'utf8')) as { lo: number; hi: number; configs: GoldenConfig[] };

const shapes: [number, number][] = [];
for (let h = golden.lo; h <= golden.hi; h++) for (let w = golden.lo; w <= golden.hi; w++) shapes.push([h, w]);

function tableHash(sizes: [number, number][]): string {
  const lines = shapes.map(([h, w], i) => `${h} ${w} ${sizes[i]![0]} ${sizes[i]![1]}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}

/** What a correctly rounded float32 division would give (the formula torch does not use). */
function divisionSize(h: number, w: number, minSize: number, maxSize: number): [number, number] {
  const f = Math.fround;
  const scale = Math.min(f(minSize / Math.min(h, w)), f(maxSize / Math.max(h, w)));
  return [Math.floor(h * scale), Math.floor(w * scale)];
}

t.test('the golden table differs from plain float32 division (so the test can tell them apart)', async (t) => {
  for (const c of golden.configs) {
    t.ok(c.differs_count > 1000, `min ${c.min_size} max ${c.max_size}: ${c.differs_count} shapes differ`);
    t.ok(c.differs_sample.every(([h, w, oh, ow]) => { const d = divisionSize(h, w, c.min_size, c.max_size); return d[0] !== oh || d[1] !== ow; }), 'every sampled row differs');
  }
});

t.test('resizePlan gives torchvision\'s size for every shape', async (t) => {
  for (const c of golden.configs) {
    const sizes = shapes.map(([h, w]): [number, number] => {
      const p = resizePlan(h, w, c.min_size, c.max_size);
      return [p.height, p.width];
    });
    t.equal(tableHash(sizes), c.sha256, `min ${c.min_size} max ${c.max_size}: ${shapes.length} shapes`);
    const at = ([h, w]: [number, number, ...number[]]) => sizes[(h - golden.lo) * (golden.hi - golden.lo + 1) + (w - golden.lo)];
    t.same(c.differs_sample.map(at), c.differs_sample.map(([, , oh, ow]) => [oh, ow]), `the ${c.differs_sample.length} sampled shapes where division differs`);
  }
});

t.test('the detector\'s resize gives torchvision\'s size for every shape', async (t) => {
  if (!haveAddon(t)) return;
  for (const c of golden.configs) {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: c.min_size, maxSize: c.max_size });
    const sizes = det.evalImageSizes(shapes);
    t.equal(tableHash(sizes), c.sha256, `min ${c.min_size} max ${c.max_size}: ${shapes.length} shapes`);
    const at = ([h, w]: [number, number, ...number[]]) => sizes[(h - golden.lo) * (golden.hi - golden.lo + 1) + (w - golden.lo)];
    t.same(c.differs_sample.map(at), c.differs_sample.map(([, , oh, ow]) => [oh, ow]), `the ${c.differs_sample.length} sampled shapes where division differs`);
  }
});
