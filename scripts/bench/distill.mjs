// Distillation step cost, measured in this run against the student's plain train step (the
// reference): ResNet-18 student (batch 2, MTPD_BENCH_SIZE px), ResNet-50 teacher at twice the
// input size, mse on p3..p7; the same step with the teacher's features read from the on-disk
// cache; and an FGD + MGD step. Prints seconds per step and ratios against the plain step.
// Env: MTPD_BENCH_REPS (default 3), MTPD_BENCH_SIZE (default 256), MTPD_BENCH_WIDTH (default 0.5).
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDetector, DistillSession, FeatureCache, setThreads, weightsHash } from '../../dist/index.js';

const reps = Number(process.env.MTPD_BENCH_REPS ?? 3);
const size = Number(process.env.MTPD_BENCH_SIZE ?? 256);
const width = Number(process.env.MTPD_BENCH_WIDTH ?? 0.5);
setThreads(cpus().length);

function images(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const data = new Float32Array(3 * size * size);
    for (let j = 0; j < data.length; j++) data[j] = ((j * 2654435761 + i * 97) % 1000) / 1000;
    out.push({ dtype: 'float32', shape: [3, size, size], data });
  }
  return out;
}
const imgs = images(2);
const targets = imgs.map((_, i) => ({ boxes: [[10 + i, 12, size / 2, size / 3 + i]], labels: [i % 2] }));

async function time(fn) {
  await fn(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t0) / 1000 / reps;
}

const mk = (arch, minSize) => createDetector({ arch, numClasses: 2, widthMult: width, minSize, maxSize: minSize });
const student = await mk('retinanet_resnet18_fpn', size);
const teacher = await mk('retinanet_resnet50_fpn', 2 * size);
const opt = await student.createOptimizer({ type: 'sgd', lr: 1e-4 });
const plain = await time(() => student.trainStep(opt, imgs, targets));

const taps = ['p3', 'p4', 'p5', 'p6', 'p7'];
const live = await DistillSession.create(student, [{ name: 'r50', model: teacher, distiller: { taps, losses: [{ type: 'mse' }] } }], { optimizer: { lr: 1e-4 } });
const liveT = await time(() => live.step({ images: imgs, targets }));

const dir = mkdtempSync(join(tmpdir(), 'mtpd-bench-'));
const cache = new FeatureCache(dir);
const hash = await weightsHash(teacher);
const keys = imgs.map((_, i) => ({ model: `r50@${2 * size}`, weights: hash, image: i, transform: `min${2 * size}` }));
const feats = () => cache.batch(keys, imgs, (x) => live.teacherFeatures(0, x));
await feats();
const cachedT = await time(async () => live.step({ images: imgs, targets, teacherFeatures: [await feats()] }));
rmSync(dir, { recursive: true, force: true });

const fm = await DistillSession.create(
  student,
  [{ name: 'r50', model: teacher, distiller: { taps, losses: [{ type: 'fgd' }, { type: 'mgd' }] } }],
  { optimizer: { lr: 1e-4 } },
);
const fmT = await time(() => fm.step({ images: imgs, targets }));

console.log(`R18 student ${size}px + R50 teacher ${2 * size}px, width ${width}, batch 2, ${cpus().length} threads, ${reps} reps`);
const row = (name, s) => console.log(`${name.padEnd(34)} ${s.toFixed(3)} s/step   x${(s / plain).toFixed(2)} of plain`);
row('plain student train step (ref)', plain);
row('distill step, mse, live teacher', liveT);
row('distill step, mse, cached teacher', cachedT);
row('distill step, fgd+mgd, live teacher', fmT);
