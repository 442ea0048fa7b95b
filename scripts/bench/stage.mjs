// The demo's stage steps, measured in this run against the student's plain train step (the
// reference): the demo's student (ResNet-18 x0.25, GroupNorm head, trainable BatchNorm, short
// side 96 px) and teacher (the same at 192 px), batch 4 of 192 x 192 images, pkd on p3..p7:
// a plain student step, a distillation step with the teacher live, with the teacher's maps read
// from the run's teacher cache (every later use of an (image, flip) in a run), and with a cache
// miss (the first use: the teacher runs on the batch and each image's maps are written).
// Steps are interleaved (plain, live, cached, miss, then rotated by one every rep) and each is reported as its median
// over MTPD_BENCH_REPS (default 15) with the spread (min..max) and its ratio to the plain step.
// Times are the process's CPU seconds (user + system; the system part shown apart) per step, not wall time: on shared cores
// wall time swings with the other jobs, CPU time does not (one thread: one CPU second per second
// the step runs).
// Env: MTPD_BENCH_REPS, MTPD_BENCH_THREADS (default 1, the demo's per-core share on 2 shared cores).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDetector, DistillSession, setThreads } from '../../dist/index.js';
import { TeacherCache } from '../../dist/train/teacher-cache.js';
import { median } from './lib/stats.mjs';

const reps = Number(process.env.MTPD_BENCH_REPS ?? 15);
setThreads(Number(process.env.MTPD_BENCH_THREADS ?? 1));
const size = 192;
const n = 4;

let seed = 1;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
function batchAt(b) {
  const images = [];
  const targets = [];
  for (let i = 0; i < n; i++) {
    const data = new Float32Array(3 * size * size);
    for (let j = 0; j < data.length; j++) data[j] = 0.2 + 0.6 * rnd();
    images.push({ dtype: 'float32', shape: [3, size, size], data });
    const x = 10 + 20 * rnd(), y = 10 + 20 * rnd();
    targets.push({ boxes: [[x, y, x + 40 + 30 * rnd(), y + 50], [100, 90, 150, 170]], labels: [(b + i) % 8, (b * 3 + i) % 8] });
  }
  return { images, targets, ids: images.map((_, i) => b * n + i) };
}
const batches = Array.from({ length: 4 }, (_, b) => batchAt(b));

const common = { arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: 0.25, normLayer: 'bn', trainableLayers: 5 };
const student = await createDetector({ ...common, minSize: 96, maxSize: 128, options: { anchor_sizes: [8, 16, 32, 64, 128], head_norm: 'gn' } });
const teacher = await createDetector({ ...common, minSize: 192, maxSize: 256, options: { anchor_sizes: [16, 32, 64, 128, 256], head_norm: 'gn' } });
const opt = await student.createOptimizer({ type: 'adamw', lr: 1e-4, weightDecay: 0.05, maxGradNorm: 10 });
const taps = ['p3', 'p4', 'p5', 'p6', 'p7'];
const session = await DistillSession.create(student, [{ name: 'hr192', model: teacher, distiller: { taps, losses: [{ type: 'pkd' }] } }], { optimizer: { type: 'adamw', lr: 1e-4, weightDecay: 0.05, maxGradNorm: 10 } });

const dir = mkdtempSync(join(tmpdir(), 'mtpd-bench-'));
const cache = new TeacherCache(dir, 2 ** 30, 'bench');
let miss = 0;
// `round` 0: the entries written before the reps (every cached step reads them); a cache miss
// step asks for ids no step has used yet.
const features = (b, round = 0) => cache.batch('hr192', teacher, b.ids.map((id) => ({ id: id + 1000 * round, flipped: false })), b.images, (x) => session.teacherFeatures(0, x));

const kinds = {
  plain: (b) => student.trainStep(opt, b.images, b.targets),
  live: (b) => session.step({ images: b.images, targets: b.targets }),
  cached: async (b) => session.step({ images: b.images, targets: b.targets, teacherFeatures: [await features(b)] }),
  'cache miss': async (b) => {
    miss++;
    return session.step({ images: b.images, targets: b.targets, teacherFeatures: [await features(b, miss)] });
  },
};
const times = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
const sys = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
for (const b of batches) await features(b); // every batch's maps in the cache
for (const k of Object.keys(kinds)) await kinds[k](batches[0]); // warm-up
const order = Object.entries(kinds);
for (let r = 0; r < reps; r++) {
  // the order rotates every rep, so no kind always follows the same one
  for (const [k, fn] of order.slice(r % order.length).concat(order.slice(0, r % order.length))) {
    const b = batches[r % batches.length];
    const c0 = process.cpuUsage();
    await fn(b);
    const c = process.cpuUsage(c0);
    times[k].push((c.user + c.system) / 1e6);
    sys[k].push(c.system / 1e6);
  }
}
rmSync(dir, { recursive: true, force: true });

const base = median(times.plain);
console.log(`demo stage step: student R18 x0.25 at 96 px, teacher R18 x0.25 at 192 px, batch ${n}, pkd p3-p7, ${reps} interleaved reps, ${process.env.MTPD_BENCH_THREADS ?? 1} thread(s)`);
for (const [k, a] of Object.entries(times)) {
  const m = median(a);
  const ratios = a.map((x, i) => x / times.plain[i]);
  console.log(
    `${(k === 'plain' ? 'plain student step (ref)' : `distill step, ${k}`).padEnd(30)} median ${m.toFixed(3)} CPU s (${Math.min(...a).toFixed(3)}..${Math.max(...a).toFixed(3)}; system ${median(sys[k]).toFixed(3)})   x${(m / base).toFixed(2)} of plain (per-rep ratios ${Math.min(...ratios).toFixed(2)}..${Math.max(...ratios).toFixed(2)})`,
  );
}
