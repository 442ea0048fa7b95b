import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configJsonSchema } from '../../src/config/schema.js';
import { createDetector } from '../../src/detector.js';
import { DistillSession } from '../../src/distill/step.js';
import { loadGolden, relErr } from '../../src/parity.js';
import { formatSystemInfo, systemInfo } from '../../src/runtime.js';
import { ampKeys, ampWarning, cpuBfloat16 } from '../../src/train/amp.js';
import { optimizerFor } from '../../src/train/detection.js';
import { tensor, type Tensor } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

const base = {
  data: { root: '/nonexistent' },
  student: { name: 's', arch: 'retinanet_resnet18_fpn' },
  teachers: [{ name: 't', arch: 'retinanet_resnet50_fpn' }],
};

const flags = (f: string) => `processor\t: 0\nvendor_id\t: X\nflags\t\t: fpu sse2 ${f}\nbugs\t\t: none\n`;

t.test('cpuBfloat16 reads the CPU flags', async (t) => {
  t.equal(cpuBfloat16(flags('avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16')), 'native', 'AVX-512 BF16');
  t.equal(cpuBfloat16(flags('avx2 avx512f avx512bw avx512vl avx512dq amx_tile amx_bf16')), 'native', 'AMX');
  t.equal(cpuBfloat16(flags('avx2 avx512f avx512bw avx512vl avx512dq')), 'emulated', 'AVX-512 without BF16');
  t.equal(cpuBfloat16(flags('avx2 avx512f')), 'none', 'AVX-512F alone is not what oneDNN needs');
  t.equal(cpuBfloat16(flags('avx avx2 fma')), 'none');
  t.equal(cpuBfloat16('Processor\t: AArch64\nFeatures\t: fp asimd\n'), 'unknown', 'no x86 flags line');
  t.equal(cpuBfloat16(''), 'unknown');
});

t.test('schedule.amp: documented, off by default, reaches the optimizer; on the CPU a warning only where bfloat16 is slow', async (t) => {
  const off = parseConfig(base);
  t.equal(off.schedule.amp, false);
  t.equal(ampWarning(off, 'none'), null, 'off: nothing to say');
  const json = JSON.stringify(configJsonSchema());
  t.match(json, /on the CPU bfloat16 without one/, 'the JSON Schema describes both devices');
  const on = parseConfig({ ...base, schedule: { amp: true } });
  t.equal(optimizerFor(on.schedule).amp, true, 'every stage optimizer gets amp');
  t.equal(ampWarning(on, 'native'), null, 'a CPU with bfloat16 instructions: no warning');
  t.match(ampWarning(on, 'emulated'), /^schedule\.amp: mixed precision on the CPU runs in bfloat16, and this CPU emulates bfloat16/);
  t.match(ampWarning(on, 'none'), /has no AVX-512/);
  t.match(ampWarning(on, 'unknown'), /may not compute bfloat16 itself, so it is likely slower than float32; set schedule\.amp false/);
  const teacherOnly = parseConfig({ ...base, teachers: [{ name: 't', arch: 'retinanet_resnet50_fpn', train: { amp: true } }] });
  t.same(ampKeys(teacherOnly), ['teachers[0].train.amp']);
  t.match(ampWarning(teacherOnly, 'emulated'), /^teachers\[0\]\.train\.amp: /, 'names the key that asked for it');
  t.equal(ampWarning(parseConfig({ ...base, device: 'cuda', schedule: { amp: true } }), 'none'), null, 'CUDA: float16, the CPU does not matter');
});

t.test('mtpd info says how the CPU computes bfloat16', async (t) => {
  if (!haveAddon(t)) return;
  const info = systemInfo();
  t.equal(info.cpu.bfloat16, cpuBfloat16());
  t.match(formatSystemInfo(info), /^cpu bfloat16 +(native|emulated|no AVX-512|unknown)/m);
});

/** A smooth, seeded image: structure at several scales, so features and detections carry signal. */
function image(seed: number, h: number, w: number): Tensor<'float32'> {
  const v = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) v[(c * h + y) * w + x] = 0.5 + 0.25 * Math.sin((x + 3 * c + seed) / 5) * Math.cos((y - 2 * c + seed) / 7) + 0.2 * Math.sin((x * y + seed * 13) / 97);
  return tensor('float32', [3, h, w], v);
}

function iou(a: number[], b: number[]): number {
  const [ax1, ay1, ax2, ay2] = a as [number, number, number, number];
  const [bx1, by1, bx2, by2] = b as [number, number, number, number];
  const iw = Math.max(0, Math.min(ax2, bx2) - Math.max(ax1, bx1));
  const ih = Math.max(0, Math.min(ay2, by2) - Math.max(ay1, by1));
  const inter = iw * ih;
  const union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
  if (union > 0) return inter / union;
  return a.every((v, k) => Math.abs(v - (b[k] as number)) < 2) ? 1 : 0;
}

const conf = { arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.25, minSize: 96, maxSize: 96 };
const targets = [
  { boxes: [[8, 10, 50, 60]], labels: [0] },
  { boxes: [[30, 20, 90, 80], [4, 4, 20, 24]], labels: [1, 2] },
];

t.test('amp on a CPU model: the forward pass in bfloat16, float32 out, close to float32', async (t) => {
  if (!haveAddon(t)) return;
  // The torchvision parity fixture (reduced-width RetinaNet R18 with spread scores and moving boxes).
  const g = await loadGolden(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models'), 'retinanet_resnet18_small');
  await using det = await createDetector({ arch: g.arch, options: g.config });
  await det.loadWeights(g.weights, { strict: false });
  await det.eval();
  const f32 = await det.run(g.images, null, { features: true, detections: true });
  const bf16 = await det.run(g.images, null, { features: true, detections: true, amp: true });
  t.same(Object.keys(bf16.features), Object.keys(f32.features), 'the same taps');
  for (const [k, a] of Object.entries(bf16.features)) {
    const b = f32.features[k] as Tensor<'float32'>;
    t.equal(a.dtype, 'float32', `${k} comes back float32`);
    t.same(a.shape, b.shape);
    const e = relErr(a, b);
    // bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 per op); a few layers deep the
    // maps stay within a few percent of float32, and are not float32's own values. (How far
    // depends on the CPU's bfloat16 kernels: p4 under 5e-2 on one x86 machine, 5.08e-2 on another.)
    t.ok(e > 1e-5 && e < 0.1, `${k}: relative error ${e.toExponential(2)} is bfloat16's (1e-5 .. 1e-1)`);
  }
  const again = await det.features(g.images);
  t.same(Array.from(again.p3?.data ?? []), Array.from(f32.features.p3?.data ?? []), 'autocast is off again after the amp call');
  for (const [i, d] of bf16.detections.entries()) {
    const ref = f32.detections[i] as (typeof f32.detections)[number];
    t.equal(d.boxes.dtype, 'float32');
    t.equal(d.scores.dtype, 'float32');
    // float32's top detections have bfloat16 twins: the same class, a score within 0.02 and a box
    // at IoU >= 0.7 (a clipped, empty box: the same corners within 2 px). Scores this close
    // (0.31 .. 0.33) let NMS keep a neighbour now and then (more often with some CPUs' bfloat16
    // kernels than others'), so 7 of the top 10 must.
    const n = Math.min(10, ref.scores.data.length);
    t.ok(n >= 5, `image ${i}: float32 finds detections (${n})`);
    const box = (b: Tensor<'float32'>, q: number) => Array.from(b.data.subarray(4 * q, 4 * q + 4));
    let twins = 0;
    for (let j = 0; j < n; j++) {
      for (let q = 0; q < d.scores.data.length; q++) {
        if (d.labels.data[q] !== ref.labels.data[j] || Math.abs((d.scores.data[q] as number) - (ref.scores.data[j] as number)) >= 0.02) continue;
        if (iou(box(d.boxes, q), box(ref.boxes, j)) >= 0.7) {
          twins++;
          break;
        }
      }
    }
    t.ok(twins >= Math.ceil(0.7 * n), `image ${i}: ${twins} of float32's top ${n} detections have a bfloat16 twin`);
  }
});

t.test('amp training on the CPU: no loss scaler, finite losses that fall; a distillation step too', async (t) => {
  if (!haveAddon(t)) return;
  await using det = await createDetector({ ...conf, trainableLayers: 5 });
  await using teacher = await createDetector({ ...conf, widthMult: 0.5 });
  const imgs = [image(3, 96, 96), image(4, 96, 96)];
  const opt = await det.createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, amp: true });
  const losses: number[] = [];
  for (let s = 0; s < 6; s++) {
    const r = await det.trainStep(opt, imgs, targets);
    t.equal(r.skipped, false, `step ${s} is not skipped`);
    t.equal(r.scale, 1, 'bfloat16: the loss is not scaled');
    t.ok(Number.isFinite(r.loss) && Number.isFinite(r.gradNorm), `step ${s}: finite loss ${r.loss.toFixed(4)} and gradient norm`);
    losses.push(r.loss);
  }
  t.ok((losses.at(-1) as number) < (losses[0] as number), `the loss falls on a fixed batch (${losses[0]?.toFixed(4)} -> ${losses.at(-1)?.toFixed(4)})`);
  const state = await opt.stateDict();
  t.notOk(Object.keys(state).some((k) => k.startsWith('amp.')), 'no loss-scaler state on the CPU');

  const s = await DistillSession.create(det, [{ name: 't', model: teacher, distiller: { taps: ['p3', 'p4'], losses: [{ type: 'mse' }] } }], { optimizer: { amp: true, lr: 0.01 } });
  const r = await s.step({ images: imgs, targets });
  t.equal(r.skipped, false);
  t.ok(Number.isFinite(r.loss) && Object.keys(r.losses).some((k) => k.startsWith('distill.')), `a distillation step under amp: loss ${r.loss.toFixed(4)}`);
  const tf = await s.teacherFeatures(0, imgs);
  t.ok(Object.values(tf).every((m) => m.dtype === 'float32'), "the teacher's maps come back float32");
});
