// COCO scale on the CPU, end to end: COCO's 80 categories with their sparse ids (1..90), JPEGs that
// resize to 800 x 1333 (torchvision's min_size 800 / max_size 1333), a full-width ResNet-50
// student (seeded, trained here for one step: the off-the-shelf stage) and a full-width ResNet-101
// teacher (seeded weights written here, nothing shipped), then every step of `mtpd train`: both
// models evaluated, the cost matrix, the BGS order, the progressive stage, the baselines (longer,
// direct; ensemble is skipped with one teacher), each evaluated, the report; and the final student
// exported for torchvision. One step per stage on one thread, on one training image (unflipped),
// so the teacher runs once for both distillation stages (the run's teacher cache) and the file
// finishes in a few minutes on two cores.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseConfig } from '../../src/config/load.js';
import { COCO_CATEGORIES } from '../../src/data/class-map.js';
import { exportWeights } from '../../src/export.js';
import { resizePlan } from '../../src/data/transforms.js';
import { createDetector } from '../../src/detector.js';
import { setSeed } from '../../src/runtime.js';
import { train } from '../../src/train/pipeline.js';
import { readWeights } from '../../src/weights/index.js';
import { haveAddon, mulberry32, tempDir } from '../helpers.js';

/** A COCO-format split of `n` h x w JPEGs with a few boxes each, labelled with sparse COCO ids. */
async function cocoSplit(root: string, split: string, n: number, h: number, w: number, seed: number): Promise<number[]> {
  const r = mulberry32(seed);
  mkdirSync(join(root, split), { recursive: true });
  const images = [];
  const annotations = [];
  const used: number[] = [];
  for (let i = 0; i < n; i++) {
    const rgb = Buffer.alloc(h * w * 3);
    // a smooth background, then filled boxes of a colour per category
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.fill((x + 2 * y) & 0xff, 3 * (y * w + x), 3 * (y * w + x) + 1);
    for (let k = 0; k < 4; k++) {
      const [id] = COCO_CATEGORIES[Math.floor(r() * COCO_CATEGORIES.length)]!;
      const bw = 60 + Math.floor(r() * 300);
      const bh = 60 + Math.floor(r() * 300);
      const x0 = Math.floor(r() * (w - bw));
      const y0 = Math.floor(r() * (h - bh));
      for (let y = y0; y < y0 + bh; y++) for (let x = x0; x < x0 + bw; x++) rgb.set([(id * 37) & 0xff, (id * 91) & 0xff, (id * 13) & 0xff], 3 * (y * w + x));
      annotations.push({ id: annotations.length + 1 + 1000 * seed, image_id: i + 1, category_id: id, bbox: [x0, y0, bw, bh], area: bw * bh, iscrowd: 0, segmentation: [[x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]] });
      used.push(id);
    }
    const file = `${String(i + 1).padStart(12, '0')}.jpg`;
    await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(root, split, file));
    images.push({ id: i + 1, file_name: file, width: w, height: h });
  }
  const categories = COCO_CATEGORIES.map(([id, name]) => ({ id, name, supercategory: 'thing' }));
  writeFileSync(join(root, `instances_${split}.json`), JSON.stringify({ images, annotations, categories }));
  return used;
}

// a few minutes alone on two cores; the file may take longer on a machine shared with other jobs
t.setTimeout(1_800_000);

t.test('COCO scale: 80 sparse categories, 800 x 1333 inputs, R50 student, R101 teacher, every stage, evaluation, export', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t, 'mtpd-coco-scale-');
  const data = join(dir, 'coco');
  // 600 x 1000 resizes to 799 x 1333 (max_size binds), as wide COCO images do
  const [H, W] = [600, 1000];
  const plan = resizePlan(H, W, 800, 1333);
  t.same([plan.height, plan.width], [799, 1333], 'the inputs the models see');
  await cocoSplit(data, 'train', 1, H, W, 1);
  const valIds = await cocoSplit(data, 'val', 1, H, W, 2);
  t.equal(COCO_CATEGORIES.length, 80);
  t.equal(COCO_CATEGORIES.at(-1)![0], 90, 'sparse ids up to 90');

  // The teacher: a full-width R101 of 80 classes from seeded weights (its training stage is the
  // student's, already run here at full size).
  setSeed(11);
  const teacherWeights = join(dir, 'r101.safetensors');
  {
    await using r101 = await createDetector({ arch: 'retinanet_resnet101_fpn', numClasses: 80 });
    await r101.saveWeights(teacherWeights, { 'mtpd.arch': 'retinanet_resnet101_fpn' });
  }

  const config = parseConfig({
    output: join(dir, 'run'),
    threads: 1,
    seed: 7,
    data: { root: data, minSize: 800, maxSize: 1333, batchSize: 1, workers: 0, flip: 0 },
    student: { name: 'r50', arch: 'retinanet_resnet50_fpn' },
    teachers: [{ name: 'r101', arch: 'retinanet_resnet101_fpn', weights: teacherWeights }],
    schedule: { iterations: 1, lr: 0.001, warmupIterations: 0 },
    order: { method: 'bgs', k: 1, costs: { trainImages: 1, valImages: 1 } },
    evaluation: { batchSize: 1, scoreThresh: 0.001 },
    baselines: ['longer', 'direct', 'ensemble'],
  });
  const lines: string[] = [];
  const t0 = Date.now();
  const report = await train(config, { quiet: true, log: (l) => lines.push(l) });
  const seconds = (Date.now() - t0) / 1000;
  t.comment(`the whole pipeline at COCO scale: ${seconds.toFixed(0)} s`);

  t.same(report.order, ['r101'], 'the BGS order from the cost matrix');
  t.same(report.results.map((r) => r.name), ['r50', 'r101', 'mtpd1-r101', 'longer-1x', 'direct-r101'], 'trained, evaluated, distilled, baselines');
  t.ok(lines.some((l) => l === 'ensemble: skipped (the order has one teacher: the ensemble would be direct distillation)'));
  for (const r of report.results) t.ok(r.stats.length === 12 && r.stats.every((s) => Number.isFinite(s) && s >= -1 && s <= 1), `${r.name}: COCO stats`);
  const costs = JSON.parse(readFileSync(join(config.output, 'costs.json'), 'utf8')) as { costs: Record<string, Record<string, number>> };
  t.ok(Number.isFinite(costs.costs.r50?.r101) && Number.isFinite(costs.costs.r101?.r50), 'both adaptation costs measured');
  const metrics = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const stage of ['train:r50', 'mtpd1-r101', 'longer-1x', 'direct-r101']) t.equal(metrics.filter((m) => m.stage === stage).length, 1, `${stage}: one step`);
  t.ok(lines.some((l) => l.startsWith("mtpd1-r101: teacher maps: 0 read from the run's cache, 1 computed (")), 'the teacher ran once for the progressive stage');
  t.ok(lines.some((l) => l.startsWith("direct-r101: teacher maps: 1 read from the run's cache, 0 computed (")), 'and its maps were read back for the direct baseline');
  t.ok(metrics.every((m) => Object.entries(m).every(([, v]) => typeof v !== 'number' || Number.isFinite(v))), 'finite losses everywhere');
  t.ok(metrics.some((m) => m.stage === 'mtpd1-r101' && typeof m['distill.p3.pkd'] === 'number'), 'distilled from the teacher');
  for (const f of ['report.json', 'report.md', 'order.json', 'costs.png']) t.ok(existsSync(join(config.output, f)), f);

  // Detections carry COCO's own (sparse) category ids, from the 80-class model.
  const dets = JSON.parse(readFileSync(join(config.output, 'eval', 'mtpd1-r101.detections.json'), 'utf8')) as { category_id: number; image_id: number }[];
  const ids = new Set(COCO_CATEGORIES.map(([id]) => id));
  t.ok(dets.length > 0, `${dets.length} detections`);
  t.ok(dets.every((d) => ids.has(d.category_id) && d.image_id === 1), 'every detection names a COCO category id');
  t.ok(valIds.length > 0);

  // The last student, exported as torchvision's builder loads it: 80 classes x 9 anchors.
  const student = join(config.output, 'models', 'mtpd1-r101.safetensors');
  const out = join(dir, 'student.pth');
  const ex = await exportWeights({ weights: student, out });
  t.same([ex.arch, ex.numClasses, ex.format], ['retinanet_resnet50_fpn', 80, 'pth']);
  const w = await readWeights(out);
  t.same(w.get('head.classification_head.cls_logits.weight')?.shape, [720, 256, 3, 3], 'cls_logits: 9 anchors x 80 classes, full width');
  t.same(w.get('backbone.body.layer4.2.conv3.weight')?.shape, [2048, 512, 1, 1], 'a full-width ResNet-50');
});
