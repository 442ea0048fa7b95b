/**
 * What a run keeps of each evaluation: the stats and the detections, so a report can bootstrap
 * any pair of models later without running them again.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { evaluate, readJsonFile, type CocoDetection } from '../../src/eval/index.js';
import { bootstrapRun, evalPaths, readDetections, writeDetections } from '../../src/train/eval-cache.js';
import { buildModel, openSplits } from '../../src/train/models.js';
import { ensureDataset, Run, type ModelResult } from '../../src/train/pipeline.js';
import { haveAddon, tempDir } from '../helpers.js';

t.test('detections round-trip exactly through the file, at every chunk boundary', async (t) => {
  const dir = tempDir(t);
  for (const n of [0, 1, 4095, 4096, 4097, 8193]) {
    const dets: CocoDetection[] = Array.from({ length: n }, (_, i) => ({
      image_id: i % 17,
      category_id: 1 + (i % 3),
      score: Math.fround(1 / (i + 3)),
      bbox: [Math.fround(i / 7), Math.fround(i / 11), Math.fround(12.345 + i) - Math.fround(i / 7), 3.1 - 1e-9 * i],
    }));
    const out = dir;
    const p = evalPaths(out, `m${n}`);
    await import('node:fs/promises').then((fs) => fs.mkdir(join(out, 'eval'), { recursive: true }));
    await writeDetections(p.detections, dets);
    t.same(readDetections(out, `m${n}`), dets, `${n} detections`);
    t.same(readJsonFile(p.detections), dets, 'a plain JSON array');
  }
  t.throws(() => readDetections(dir, 'missing'), /missing\.detections\.json does not exist: model "missing" has no saved detections/);
  writeFileSync(join(dir, 'eval', 'obj.detections.json'), '{}');
  t.throws(() => readDetections(dir, 'obj'), /obj\.detections\.json: expected a JSON array/);
});

t.test('Run.evaluate writes eval/<name>.detections.json next to the stats, and they agree', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = parseConfig({
    output: join(dir, 'run'),
    threads: 1,
    seed: 3,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 4, valImages: 3, size: 64, seed: 1 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 },
    teachers: [{ name: 'r18', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 }],
    // an untrained model scores about 0.01 (the prior): keep every detection so there are some
    evaluation: { batchSize: 2, scoreThresh: 0, detectionsPerImage: 20 },
  });
  const logs: string[] = [];
  const run = new Run(config, { log: (s) => logs.push(s) });
  await ensureDataset(config, run);
  const splits = await openSplits(config);
  const det = await buildModel(config.student, config, splits.numClasses, { loadWeights: false });
  const r = await run.evaluate('student', det, splits, 'student', 'w1');
  const p = evalPaths(config.output, 'student');
  t.ok(existsSync(p.stats) && existsSync(p.detections));
  const dets = readDetections(config.output, 'student');
  t.equal(dets.length, 3 * 20, 'every detection of every val image');
  t.ok(dets.every((d) => Array.isArray(d.bbox) && d.bbox.length === 4 && typeof d.score === 'number' && splits.categoryIds.includes(d.category_id)), 'COCO results records');
  const gt = readJsonFile(splits.val.annotationFile);
  t.same(evaluate(gt, dets).stats, r.stats, 'the saved detections give exactly the cached stats');
  t.same((JSON.parse(readFileSync(p.stats, 'utf8')) as ModelResult).stats, r.stats);

  // cached: no second evaluation
  // (each evaluation logs its AP line and its time line)
  const n = logs.length;
  t.same(await run.evaluate('student', det, splits, 'student', 'w1'), r);
  t.equal(logs.length, n, 'the cache answers');
  // stats without detections (a run from before they were kept): evaluated again, both written
  rmSync(p.detections);
  await run.evaluate('student', det, splits, 'student', 'w1');
  t.equal(logs.length, n + 2, 'evaluated again');
  t.match(logs.at(-2), /^time: eval student: /, 'and timed');
  t.same(readDetections(config.output, 'student'), dets, 'the same detections again');

  // a later bootstrap from the run folder alone
  await run.evaluate('copy', det, splits, 'stage', 'w1');
  const b = bootstrapRun(config.output, splits.val.annotationFile, ['student', 'copy'], { resamples: 20 });
  t.same(b.models[0]!.stats, r.stats, 'point estimate: the cached stats');
  t.same([b.pairs[0]!.lo[0], b.pairs[0]!.hi[0]], [0, 0], 'the same model twice: no difference');
  t.throws(() => bootstrapRun(config.output, splits.val.annotationFile, ['student', 'nope']), /model "nope" has no saved detections/);
});
