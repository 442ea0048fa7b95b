/**
 * A torchvision COCO-layout checkpoint (91 outputs indexed by COCO category id) as a teacher on a
 * COCO-format dataset whose categories are a renumbered subset of COCO's: its AP is the one
 * pycocotools gives torchvision's own predictions mapped by name (test/fixtures/coco/labels, made
 * by scripts/golden/coco_labels.py), not the AP of the labels taken as dataset ids.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { DataLoader } from '../../src/data/loader.js';
import { evaluate } from '../../src/eval/index.js';
import { detectorInputs } from '../../src/train/inputs.js';
import { haveAddon } from '../helpers.js';

const dir = fileURLToPath(new URL('../fixtures/coco/labels/', import.meta.url));
const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')) as {
  detections: { image_id: number; boxes: number[]; scores: number[]; labels: number[] }[];
  mapped: { stats: number[] };
  raw: { stats: number[]; ignored: Record<string, number> };
};
const gt = JSON.parse(readFileSync(join(dir, 'instances.json'), 'utf8')) as unknown;
const teacher = { name: 'tv', arch: 'retinanet_resnet18_fpn', widthMult: 0.0625, minSize: 96, maxSize: 128, weights: join(dir, 'weights.safetensors'), classes: 'coco91' as const };

function config(extra: Partial<ConfigInput> = {}) {
  return configSchema.parse({
    data: { root: dir, train: { images: 'images', annotations: 'instances.json' }, val: { images: 'images', annotations: 'instances.json' }, workers: 0, batchSize: 2 },
    student: { name: 's', arch: 'retinanet_resnet18_fpn', widthMult: 0.0625 },
    teachers: [teacher],
    evaluation: { batchSize: 2, detectionsPerImage: 100 },
    ...extra,
  });
}

t.test("torchvision's labels taken as the dataset's ids: the wrong AP, and the unlisted categories counted", async (t) => {
  const raw = golden.detections.flatMap((d) =>
    d.scores.map((score, k) => {
      const [x1, y1, x2, y2] = d.boxes.slice(4 * k, 4 * k + 4) as [number, number, number, number];
      return { image_id: d.image_id, category_id: d.labels[k]!, score, bbox: [x1, y1, x2 - x1, y2 - y1] };
    }),
  );
  const r = evaluate(gt, raw);
  r.stats.forEach((v, i) => t.ok(Math.abs(v - golden.raw.stats[i]!) <= 1e-12, `stat ${i}: ${v} (pycocotools ${golden.raw.stats[i]})`));
  t.same(r.ignoredCategories, golden.raw.ignored);
  t.ok(golden.mapped.stats[0]! > golden.raw.stats[0]! + 0.1, 'the name mapping matters');
});

if (haveAddon(t)) {
  t.test('as a teacher with classes coco91: the AP pycocotools gives its own predictions mapped by name', async (t) => {
    const { buildModel, classMappingOf, evaluateModel, openSplits } = await import('../../src/train/models.js');
    const cfg = config();
    const splits = await openSplits(cfg);
    const det = await buildModel(cfg.teachers[0]!, cfg, splits);
    t.equal(det.numClasses, 91);
    t.equal(classMappingOf(det)?.matchedBy, 'name');
    const s = await evaluateModel(det, splits, cfg);
    s.stats.forEach((v, i) => t.ok(Math.abs(v - golden.mapped.stats[i]!) <= 1e-6, `stat ${i}: ${v} (pycocotools ${golden.mapped.stats[i]})`));
    t.ok(s.detections.every((d) => [1, 2, 3, 4, 5].includes(d.category_id)), "every kept detection is one of the dataset's categories");
    await t.rejects(buildModel({ ...cfg.teachers[0]!, classes: 'dataset' }, cfg, splits), /cls_logits/, "with the dataset's 6 classes the checkpoint does not load");
  });

  t.test('as a student: the targets are renumbered into its classes; a category it lacks is an error', async (t) => {
    const { buildModel, modelClassMapping, openSplits, targetLabelsOf } = await import('../../src/train/models.js');
    const cfg = config();
    const splits = await openSplits(cfg);
    t.throws(() => modelClassMapping({ ...cfg.student, classes: 'coco91' }, splits), /s\.classes: .*no class for 6 "unicorn"; a student needs a class for every dataset category/);
    const known = { ...splits, categories: splits.categories!.filter((c) => c.name !== 'unicorn'), categoryIds: splits.categoryIds.filter((id) => id !== 6) };
    const student = await buildModel({ ...cfg.student, classes: 'coco80', weights: null }, cfg, known, { loadWeights: false });
    const map = targetLabelsOf(student)!;
    t.same(Array.from(map), [16, 2, 0, 62, 79], 'dog, car, person, tv, toothbrush in COCO order');
    const loader = new DataLoader(splits.train, { batchSize: 4, shuffle: false, train: false, resize: 'none', output: 'uint8', workers: 0 });
    const batch = await loader.next();
    await loader.close();
    // the batch without its unicorn boxes (label 5), which a coco80 student cannot learn
    const keep = batch.targets.map((tg) => {
      const labels = Array.from(tg.labels.data as BigInt64Array, Number);
      const idx = labels.map((l, k) => (l < 5 ? k : -1)).filter((k) => k >= 0);
      const boxes = tg.boxes.data as Float32Array;
      return {
        ...tg,
        boxes: { dtype: 'float32' as const, shape: [idx.length, 4], data: Float32Array.from(idx.flatMap((k) => Array.from(boxes.subarray(4 * k, 4 * k + 4)))) },
        labels: { dtype: 'int64' as const, shape: [idx.length], data: BigInt64Array.from(idx.map((k) => BigInt(labels[k]!))) },
      };
    });
    const known5 = { ...batch, targets: keep };
    const relabelled = detectorInputs(known5, map).targets;
    t.ok(keep.some((k) => k.labels.data.length > 0));
    keep.forEach((k, i) => {
      const from = Array.from(k.labels.data, Number);
      t.same(Array.from((relabelled[i]!.labels as { data: BigInt64Array }).data, Number), from.map((l) => map[l]), `image ${i}`);
      t.same(relabelled[i]!.boxes, k.boxes, 'boxes unchanged');
    });
    t.throws(() => detectorInputs(batch, map), /target label 5 has no class in the model/, 'unicorn boxes cannot be trained');
  });
}
