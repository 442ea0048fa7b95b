#!/usr/bin/env node
// Usage (after building against a CUDA libtorch): npm run build:ts && node scripts/cuda-check.mjs
// CUDA check of mtpd built against the device's CUDA libtorch: devices, the tensor boundary,
// modules, a RetinaNet train step (fp32 and AMP), predictions matching the CPU, features, a
// distillation step, and timings against torchvision on the same GPU.
import { spawnSync } from 'node:child_process';
import { native, loadAddon } from '../dist/native.js';
import { createDetector } from '../dist/detector.js';
import { DistillSession } from '../dist/distill/step.js';
import { Distiller } from '../dist/distill/distiller.js';

const log = (...a) => console.log(...a);
const b = native();
const rt = b.runtimeInfo();
log('addon', loadAddon().path, 'torch', rt.torchVersion, 'runtime', rt.torchVersionRuntime, 'cudaBuilt', rt.cudaBuilt, 'available', rt.cudaAvailable, 'devices', rt.cudaDeviceCount);
log('checkDevice cuda ->', b.checkDevice('cuda'));
try { b.checkDevice('cuda:7'); log('FAIL cuda:7 accepted'); } catch (e) { log('cuda:7 ->', e.code, e.message); }

// Boundary round trip through the GPU for every dtype.
const cases = [
  { dtype: 'float32', shape: [2, 3], data: Float32Array.from([0, -1.5, 3.25, 1e-30, 3.4e38, 7]) },
  { dtype: 'float64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
  { dtype: 'float16', shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
  { dtype: 'int32', shape: [2], data: Int32Array.from([-5, 2147483647]) },
  { dtype: 'int64', shape: [2], data: BigInt64Array.from([-(2n ** 62n), 5n]) },
  { dtype: 'uint8', shape: [3], data: Uint8Array.from([0, 128, 255]) },
  { dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) },
];
for (const c of cases) {
  const r = await b.ops.toDevice(c, 'cuda');
  const ok = r.dtype === c.dtype && JSON.stringify(Array.from(r.data, String)) === JSON.stringify(Array.from(c.data, String));
  log('roundtrip cuda', c.dtype, ok ? 'ok' : 'FAIL');
}
const n = 2048;
const a = { dtype: 'float32', shape: [n, n], data: Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000) };
let t0 = Date.now();
const g = await b.ops.matmul(a, a, 'cuda');
const cpu = await b.ops.matmul(a, a, 'cpu');
let maxRel = 0;
for (let i = 0; i < 1000; i++) maxRel = Math.max(maxRel, Math.abs(g.data[i] - cpu.data[i]) / Math.abs(cpu.data[i]));
log('matmul cuda vs cpu max rel', maxRel.toExponential(2), `${Date.now() - t0} ms`);

// Detector on CUDA vs CPU with the same weights.
const img = (h, w, seed) => ({ dtype: 'float32', shape: [3, h, w], data: Float32Array.from({ length: 3 * h * w }, (_, i) => ((i * 2654435761 + seed) % 1000) / 1000) });
const images = [img(320, 256, 1), img(288, 320, 2)];
const targets = [{ boxes: [[10, 20, 120, 200], [50, 60, 90, 100]], labels: [1, 3] }, { boxes: [[30, 40, 200, 250]], labels: [2] }];
const cfg = { arch: 'retinanet_resnet50_fpn', numClasses: 5, minSize: 320, maxSize: 400, widthMult: 0.5 };
const dc = await createDetector({ ...cfg, device: 'cpu' });
const dg = await createDetector({ ...cfg, device: 'cuda' });
await dg.loadStateDict(await dc.stateDict());
await dc.eval(); await dg.eval();
const fc = await dc.features(images);
const fg = await dg.features(images);
for (const k of Object.keys(fc)) {
  let m = 0, s = 0;
  for (let i = 0; i < fc[k].data.length; i++) { m = Math.max(m, Math.abs(fc[k].data[i] - fg[k].data[i])); s = Math.max(s, Math.abs(fc[k].data[i])); }
  log('features', k, fc[k].shape.join('x'), 'max abs diff cuda vs cpu', m.toExponential(2), 'scale', s.toExponential(2));
}
const lc = await dc.losses(images, targets);
const lg = await dg.losses(images, targets);
log('losses cpu', JSON.stringify(lc), 'cuda', JSON.stringify(lg));
const pc = await dc.predict(images);
const pg = await dg.predict(images);
log('detections cpu', pc.map((d) => d.scores.data.length), 'cuda', pg.map((d) => d.scores.data.length), 'top score cpu', pc[0].scores.data[0], 'cuda', pg[0].scores.data[0]);

for (const amp of [false, true]) {
  const det = await createDetector({ ...cfg, device: 'cuda' });
  const opt = await det.createOptimizer({ lr: 0.01, amp, maxGradNorm: 10 });
  const losses = [];
  t0 = Date.now();
  for (let i = 0; i < 30; i++) losses.push((await det.trainStep(opt, images, targets)).loss);
  log(`train amp=${amp}: loss ${losses[0].toFixed(4)} -> ${losses.at(-1).toFixed(4)}, ${((Date.now() - t0) / 30).toFixed(1)} ms/step`);
}

// Distillation on CUDA: a ResNet-50 teacher at twice the student's size into a ResNet-18 student.
const student = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 5, minSize: 160, maxSize: 200, widthMult: 0.5, device: 'cuda' });
const teacher = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 5, minSize: 320, maxSize: 400, widthMult: 0.5, device: 'cuda' });
for (const loss of ['mse', 'fgd', 'mgd', 'cwd', 'pkd']) {
  const d = await Distiller.create({ student_channels: student.featureChannels, teacher_channels: teacher.featureChannels, taps: ['p3', 'p4', 'p5'], losses: [{ type: loss }] }, 'cuda');
  const s = await DistillSession.create(student, [{ name: 't', model: teacher, distiller: d }], { optimizer: { lr: 0.005, maxGradNorm: 10 } });
  const vals = [];
  for (let i = 0; i < 5; i++) {
    const r = await s.step({ images, targets });
    vals.push(Object.entries(r.losses).filter(([k]) => k.startsWith('distill.')).reduce((x, [, v]) => x + v, 0));
  }
  log(`distill ${loss} on cuda: ${vals.map((v) => v.toPrecision(4)).join(' ')}`);
}

// Timing against torchvision on the same GPU (batch 2 at 512x512, R50 full width).
async function mtpdTiming() {
  const det = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 91, minSize: 512, maxSize: 512, device: 'cuda' });
  const ims = [img(512, 512, 3), img(512, 512, 4)];
  const tg = [{ boxes: [[10, 20, 120, 200]], labels: [1] }, { boxes: [[30, 40, 200, 250]], labels: [2] }];
  const opt = await det.createOptimizer({ lr: 0.001 });
  for (let i = 0; i < 5; i++) await det.trainStep(opt, ims, tg);
  let t = Date.now();
  for (let i = 0; i < 20; i++) await det.trainStep(opt, ims, tg);
  const train = (Date.now() - t) / 20;
  await det.eval();
  for (let i = 0; i < 5; i++) await det.predict(ims);
  t = Date.now();
  for (let i = 0; i < 20; i++) await det.predict(ims);
  return { train, infer: (Date.now() - t) / 20 };
}
const m = await mtpdTiming();
const py = spawnSync('python3', ['-c', `
import torch, torchvision, time
m = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, min_size=512, max_size=512).cuda()
ims = [torch.rand(3,512,512,device='cuda') for _ in range(2)]
tg = [{'boxes': torch.tensor([[10.,20,120,200]],device='cuda'), 'labels': torch.tensor([1],device='cuda')}, {'boxes': torch.tensor([[30.,40,200,250]],device='cuda'), 'labels': torch.tensor([2],device='cuda')}]
opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.001, momentum=0.9)
m.train()
def step():
    l = sum(m(ims, tg).values()); opt.zero_grad(); l.backward(); opt.step(); l.item()
for _ in range(5): step()
torch.cuda.synchronize(); t=time.time()
for _ in range(20): step()
torch.cuda.synchronize(); tr=(time.time()-t)/20*1000
m.eval()
with torch.no_grad():
    for _ in range(5): [d['boxes'].cpu() for d in m(ims)]
    torch.cuda.synchronize(); t=time.time()
    for _ in range(20): [d['boxes'].cpu() for d in m(ims)]
    torch.cuda.synchronize(); inf=(time.time()-t)/20*1000
print(tr, inf, torch.__version__, torchvision.__version__)
`], { encoding: 'utf8' });
log('torchvision:', py.stdout.trim(), py.stderr.trim().split('\n').slice(-2).join(' '));
const [tvTrain, tvInfer] = py.stdout.trim().split(' ').map(Number);
log(`R50 512x512 batch 2 on GPU: mtpd train ${m.train.toFixed(1)} ms, infer ${m.infer.toFixed(1)} ms; torchvision train ${tvTrain?.toFixed(1)} ms, infer ${tvInfer?.toFixed(1)} ms; ratio (torchvision/mtpd) train ${(tvTrain / m.train).toFixed(2)}x infer ${(tvInfer / m.infer).toFixed(2)}x`);
log('CUDA CHECK DONE');
