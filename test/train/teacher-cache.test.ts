// The run's teacher maps (src/train/teacher-cache.ts) on narrow real detectors: computed once per
// (teacher, image, flip), read back bit for bit by later uses and by another cache over the same
// folder, a separate entry for a flipped image and for the same weights at another resolution,
// the batch run once on its misses (same values as the live teacher) or image by image when the
// images resize differently, and a bounded folder.
import t, { type Test } from 'tap';
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { createDetector } from '../../src/detector.js';
import { DistillSession } from '../../src/distill/index.js';
import type { FeatureMaps } from '../../src/distill/binding.js';
import type { Tensor } from '../../src/tensor.js';
import { TeacherCache } from '../../src/train/teacher-cache.js';
import { haveAddon, randomImage as image, tempDir } from '../helpers.js';

function files(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile() && e.name.endsWith('.safetensors')) n++;
  return n;
}

function same(t: Test, a: FeatureMaps, b: FeatureMaps, what: string): void {
  t.same(Object.keys(a).sort(), Object.keys(b).sort(), `${what}: taps`);
  const eq = Object.keys(a).every((k) => {
    const x = a[k]!, y = b[k]!;
    return x.shape.join() === y.shape.join() && (x.data as Float32Array).every((v, i) => v === (y.data as Float32Array)[i]);
  });
  t.ok(eq, `${what}: the same shapes and values, bit for bit`);
}

t.test('teacher maps: once per (teacher, image, flip), shared, bounded', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const mk = (minSize: number) => createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize, maxSize: minSize });
  const student = await mk(64);
  const teacher = await mk(96);
  const session = await DistillSession.create(student, [{ name: 't', model: teacher, distiller: { taps: ['p3', 'p4'], losses: [{ type: 'mse' }] } }]);
  let runs = 0;
  const run = (s: DistillSession) => (x: Tensor[]) => {
    runs++;
    return s.teacherFeatures(0, x);
  };
  const images = [image(64, 64, 1), image(64, 64, 2), image(64, 64, 3)];
  const meta = [{ id: 1, flipped: false }, { id: 2, flipped: false }, { id: 3, flipped: true }];
  const cache = new TeacherCache(join(dir, 'features'), 2 ** 30, 'train.json');

  const first = await cache.batch('t', teacher, meta, images, run(session));
  t.equal(runs, 1, 'the misses of a batch whose images resize alike: one teacher run');
  t.equal(files(dir), 3, 'one entry per image');
  same(t, first, await session.teacherFeatures(0, images), 'first use vs the live teacher on the batch');

  const again = await cache.batch('t', teacher, meta, images, run(session));
  t.equal(runs, 1, 'a later use runs no teacher');
  t.equal(cache.hits, 3);
  same(t, again, first, 'read back');

  const other = new TeacherCache(join(dir, 'features'), 2 ** 30, 'train.json');
  same(t, await other.batch('t', teacher, meta, images, run(session)), first, 'another stage (a new cache over the folder)');
  t.equal(runs, 1, 'another stage runs no teacher either');

  // Entries are not fsynced: entries that a machine crash left truncated (here: all three, one
  // cut to nothing) are dropped and computed again.
  const entries = readdirSync(join(dir, 'features'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.safetensors'));
  entries.forEach((e, i) => {
    const p = join(e.parentPath, e.name);
    truncateSync(p, i === 0 ? 0 : Math.floor(statSync(p).size / 2));
  });
  const repaired = new TeacherCache(join(dir, 'features'), 2 ** 30, 'train.json');
  same(t, await repaired.batch('t', teacher, meta, images, run(session)), first, 'truncated entries are computed again: the same maps');
  t.equal(runs, 2, 'the teacher ran once more, on the batch');
  t.same([repaired.hits, repaired.misses], [0, 3], 'each truncated entry counts as a miss');
  t.equal(files(dir), 3, 'and is written again');
  same(t, await repaired.batch('t', teacher, meta, images, run(session)), first, 'then read back');
  t.equal(repaired.hits, 3);

  await cache.batch('t', teacher, [{ id: 1, flipped: true }, { id: 2, flipped: false }, { id: 3, flipped: true }], images, run(session));
  t.equal(runs, 3, 'image 1 flipped is a new input');
  t.equal(files(dir), 4);

  // The same weights at another resolution: another teacher input, another entry.
  const hr = await mk(128);
  await hr.loadStateDict(await teacher.stateDict());
  const hrSession = await DistillSession.create(student, [{ name: 'hr', model: hr, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }]);
  const hrMaps = await cache.batch('t', hr, meta, images, run(hrSession));
  t.equal(files(dir), 7, 'the same weights at 128 px: new entries');
  t.not(hrMaps.p3!.shape[2], first.p3!.shape[2], 'at its own resolution');

  // Images that resize differently: each missing image alone (its maps do not depend on the batch).
  const mixed = [image(64, 64, 7), image(64, 96, 8)];
  const before = runs;
  const m = await cache.batch('t', teacher, [{ id: 7, flipped: false }, { id: 8, flipped: false }], mixed, run(session));
  t.equal(runs - before, 2, 'one run per image');
  const alone = await session.teacherFeatures(0, [mixed[0]!]);
  const [, c, h, w] = alone.p3!.shape as number[];
  const sizes = teacher.evalImageSizes([[64, 64], [64, 96]]);
  t.notSame(sizes[0], sizes[1], `they resize differently (${JSON.stringify(sizes)})`);
  t.equal(m.p3!.shape[0], 2);
  const rows = Array.from({ length: c! * h! }, (_, r) => (m.p3!.data as Float32Array).subarray(r * m.p3!.shape[3]!, r * m.p3!.shape[3]! + w!));
  t.ok(rows.every((row, r) => row.every((v, x) => v === (alone.p3!.data as Float32Array)[r * w! + x])), 'image 0 of the batch is its maps alone, padded');

  // Bounded: a cache that may hold nothing more computes every time and writes nothing.
  const full = new TeacherCache(join(dir, 'features'), 1, 'train.json');
  const n = files(dir);
  const r0 = runs;
  const f = await full.batch('t', teacher, [{ id: 9, flipped: false }], [image(64, 64, 9)], run(session));
  await full.batch('t', teacher, [{ id: 9, flipped: false }], [image(64, 64, 9)], run(session));
  t.equal(runs - r0, 2, 'not kept: computed on each use');
  t.equal(full.unwritten, 2);
  t.equal(files(dir), n, 'nothing written past the bound');
  t.ok(f.p3, 'the maps still come back');
});

t.test('teacher maps: the key holds the precision, the device, the input size and the dataset content', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const { writeFileSync } = await import('node:fs');
  const ann = join(dir, 'instances_train.json');
  writeFileSync(ann, '{"images": [], "annotations": [], "categories": []}');
  const student = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 64 });
  const teacher = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 96, maxSize: 96 });
  const session = await DistillSession.create(student, [{ name: 't', model: teacher, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }]);
  let runs = 0;
  const run = (x: Tensor[]) => {
    runs++;
    return session.teacherFeatures(0, x);
  };
  const img = image(64, 64, 11);
  const meta = [{ id: 1, flipped: false }];
  const cache = new TeacherCache(join(dir, 'features'), 2 ** 30, ann);
  await cache.batch('t', teacher, meta, [img], run);
  await cache.batch('t', teacher, meta, [img], run, { amp: false });
  t.equal(runs, 1, 'float32 is the default: one entry');
  // maps made under autocast are other maps: a run folder reused with schedule.amp on misses
  await cache.batch('t', teacher, meta, [img], run, { amp: true });
  t.equal(runs, 2, 'amp: a new entry, not the float32 maps');
  await cache.batch('t', teacher, meta, [img], run, { amp: true });
  t.equal(runs, 2, 'amp again: read back');
  t.equal(files(join(dir, 'features')), 2);

  const k = await cache.keyOf('t', teacher, meta[0]!, img);
  t.not(k.transform, (await cache.keyOf('t', teacher, meta[0]!, img, { amp: true })).transform, 'precision');
  t.not(k.transform, (await cache.keyOf('t', teacher, meta[0]!, image(64, 80, 11))).transform, 'the input size');
  t.not(k.transform, (await cache.keyOf('t', teacher, { id: 1, flipped: true }, img)).transform, 'the flip');
  t.match(k.transform, / cpu /, 'the device');
  t.not(k.weights, (await cache.keyOf('t', student, meta[0]!, img)).weights, 'the weights');

  // The same annotation file path with other content (a dataset remade in place): new keys.
  writeFileSync(ann, '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}');
  const remade = new TeacherCache(join(dir, 'features'), 2 ** 30, ann);
  t.not((await remade.keyOf('t', teacher, meta[0]!, img)).image, k.image, 'the dataset content');
  await remade.batch('t', teacher, meta, [img], run);
  t.equal(runs, 3, 'a remade dataset: computed again');
  await t.rejects(cache.batch('t', teacher, meta, [img, img], run), RangeError, 'one record per image');
});
