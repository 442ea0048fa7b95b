#!/usr/bin/env node
// Usage (after building against a CUDA libtorch): npm run build:ts && node scripts/cuda-check.mjs
// (scripts/gpu-check.sh builds and runs it in one go on a machine with a GPU.)
//
// The CUDA check of mtpd built against the device's CUDA libtorch (issue 14, item 5), one line
// per check ("ok" / "FAIL"), timings as "time" lines, exit status 1 on any failure:
//  1. devices, the tensor boundary through the GPU for every dtype, a matmul against the CPU;
//  2. CPU-vs-CUDA agreement of a RetinaNet-R50: features, losses, detections (same weights);
//  3. train steps on CUDA in fp32, with AMP, and with AMP + channelsLast; distillation steps;
//  4. the whole pipeline (`mtpd train`: teachers, student, evaluation, cost matrix, BGS order,
//     progressive stages, baselines, report) on CUDA with schedule.amp on a small COCO-format set
//     (the built-in synthetic dataset), then the final student evaluated on the CPU and on CUDA:
//     the same AP;
//  5. step throughput of a full-width R50 at 800x1333 (batch 2) against torchvision on the same
//     GPU: fp32, AMP (autocast + GradScaler), AMP + channels_last, train and inference.
//
// MTPD_CHECK_DEVICE=cpu runs every part on the CPU with tiny models and no AMP (a dry run of the
// script itself on a machine without a GPU); MTPD_CHECK_PYTHON: the python with torch and
// torchvision (default python3); MTPD_CHECK_OUT: where the pipeline's run folder goes (default a
// temporary folder; its report.md is printed).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, loadAddon } from '../dist/native.js';
import { createDetector } from '../dist/detector.js';
import { DistillSession } from '../dist/distill/step.js';
import { Distiller } from '../dist/distill/distiller.js';
import { parseConfig } from '../dist/config/load.js';
import { writeSynthDataset } from '../dist/data/synth.js';
import { train } from '../dist/train/pipeline.js';
import { buildModel, evaluateModel, openSplits } from '../dist/train/models.js';

const DEV = process.env.MTPD_CHECK_DEVICE ?? 'cuda';
const GPU = DEV.startsWith('cuda');
const PY = process.env.MTPD_CHECK_PYTHON ?? 'python3';
const log = (...a) => console.log(...a);
let failures = 0;
const check = (ok, what) => {
  log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};
const t00 = Date.now();
/** Runs one part; an exception fails it and the script goes on with the next. */
async function part(name, fn) {
  const t0 = Date.now();
  log(`\n== ${name}`);
  try {
    await fn();
  } catch (e) {
    check(false, `${name}: ${e.code ?? ''} ${e.stack ?? e}`);
  }
  log(`time ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const maxRel = (a, b) => {
  let d = 0, s = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return a.length === b.length ? d / Math.max(s, 1e-12) : Infinity;
};
const img = (h, w, seed) => ({ dtype: 'float32', shape: [3, h, w], data: Float32Array.from({ length: 3 * h * w }, (_, i) => ((i * 2654435761 + seed) % 1000) / 1000) });

const b = native();
await part('devices and the boundary', async () => {
  const rt = b.runtimeInfo();
  log('addon', loadAddon().path, 'torch', rt.torchVersion, 'runtime', rt.torchVersionRuntime, 'cudaBuilt', rt.cudaBuilt, 'available', rt.cudaAvailable, 'devices', rt.cudaDeviceCount);
  check(b.checkDevice(DEV) !== undefined, `checkDevice ${DEV}`);
  if (GPU) {
    let refused = false;
    try { b.checkDevice(`cuda:${rt.cudaDeviceCount}`); } catch { refused = true; }
    check(refused, `cuda:${rt.cudaDeviceCount} (one past the last device) is refused`);
  }
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
    const r = await b.ops.toDevice(c, DEV);
    check(r.dtype === c.dtype && JSON.stringify(Array.from(r.data, String)) === JSON.stringify(Array.from(c.data, String)), `round trip through ${DEV}: ${c.dtype}`);
  }
  const n = GPU ? 2048 : 256;
  const a = { dtype: 'float32', shape: [n, n], data: Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000) };
  const g = await b.ops.matmul(a, a, DEV);
  const cpu = await b.ops.matmul(a, a, 'cpu');
  const e = maxRel(g.data, cpu.data);
  // TF32 (on by default for CUDA matmuls in some libtorch builds) keeps about 1e-3
  check(e < 5e-3, `matmul ${n}x${n} ${DEV} vs cpu: max rel ${e.toExponential(2)}`);
});

// A RetinaNet-R50 (half width on the GPU, tiny on the CPU dry run) with the same weights on both.
const small = GPU ? { arch: 'retinanet_resnet50_fpn', numClasses: 5, minSize: 320, maxSize: 400, widthMult: 0.5 } : { arch: 'retinanet_resnet18_fpn', numClasses: 5, minSize: 96, maxSize: 128, widthMult: 0.125 };
const images = GPU ? [img(320, 256, 1), img(288, 320, 2)] : [img(96, 80, 1), img(88, 96, 2)];
const targets = [{ boxes: [[10, 20, 60, 80], [30, 40, 70, 75]], labels: [1, 3] }, { boxes: [[20, 25, 80, 85]], labels: [2] }];

await part(`CPU vs ${DEV}: features, losses, detections`, async () => {
  const dc = await createDetector({ ...small, device: 'cpu', scoreThresh: 0.01 });
  const dg = await createDetector({ ...small, device: DEV, scoreThresh: 0.01 });
  await dg.loadStateDict(await dc.stateDict());
  await dc.eval();
  await dg.eval();
  const fc = await dc.features(images);
  const fg = await dg.features(images);
  for (const k of Object.keys(fc)) {
    const e = maxRel(fg[k].data, fc[k].data);
    check(e < 1e-2, `features ${k} ${fc[k].shape.join('x')}: max rel diff ${e.toExponential(2)}`);
  }
  const lc = await dc.losses(images, targets);
  const lg = await dg.losses(images, targets);
  for (const k of Object.keys(lc)) check(Math.abs(lg[k] - lc[k]) <= 1e-2 * Math.max(1, Math.abs(lc[k])), `loss ${k}: cpu ${lc[k].toFixed(5)} ${DEV} ${lg[k].toFixed(5)}`);
  const pc = await dc.predict(images);
  const pg = await dg.predict(images);
  for (const [i, d] of pc.entries()) {
    const n = Math.min(20, d.scores.data.length, pg[i].scores.data.length);
    const e = n ? maxRel(Array.from(pg[i].scores.data).slice(0, n), Array.from(d.scores.data).slice(0, n)) : Infinity;
    check(n > 0 && e < 1e-2, `detections image ${i}: cpu ${d.scores.data.length}, ${DEV} ${pg[i].scores.data.length}, top-${n} scores max rel diff ${e.toExponential(2)}`);
  }
  await dc.dispose();
  await dg.dispose();
});

await part(`train and distillation steps on ${DEV}`, async () => {
  const variants = GPU ? [{ amp: false }, { amp: true }, { amp: true, channelsLast: true }] : [{ amp: false }, { amp: false, channelsLast: true }];
  for (const v of variants) {
    const det = await createDetector({ ...small, device: DEV, normLayer: 'bn', trainableLayers: 5, ...(v.channelsLast ? { channelsLast: true } : {}) });
    const opt = await det.createOptimizer({ lr: 0.01, amp: v.amp, maxGradNorm: 10 });
    const losses = [];
    let skipped = 0;
    const t0 = Date.now();
    const steps = GPU ? 30 : 6;
    for (let i = 0; i < steps; i++) {
      const r = await det.trainStep(opt, images, targets);
      losses.push(r.loss);
      skipped += r.skipped ? 1 : 0;
    }
    const label = `amp=${v.amp}${v.channelsLast ? ' channelsLast' : ''}`;
    check(Number.isFinite(losses.at(-1)) && losses.at(-1) < losses[0], `train ${label}: loss ${losses[0].toFixed(4)} -> ${losses.at(-1).toFixed(4)} (${skipped} skipped), ${((Date.now() - t0) / steps).toFixed(1)} ms/step`);
    await opt.dispose();
    await det.dispose();
  }
  const sCfg = GPU ? { arch: 'retinanet_resnet18_fpn', minSize: 160, maxSize: 200, widthMult: 0.5 } : { arch: 'retinanet_resnet18_fpn', minSize: 64, maxSize: 80, widthMult: 0.125 };
  const student = await createDetector({ ...sCfg, numClasses: 5, device: DEV });
  const teacher = await createDetector({ ...small, device: DEV });
  for (const loss of ['mse', 'fgd', 'mgd', 'cwd', 'pkd']) {
    const d = await Distiller.create({ student_channels: student.featureChannels, teacher_channels: teacher.featureChannels, taps: ['p3', 'p4', 'p5'], losses: [{ type: loss }] }, DEV);
    const s = await DistillSession.create(student, [{ name: 't', model: teacher, distiller: d }], { optimizer: { lr: 0.005, maxGradNorm: 10 } });
    const vals = [];
    for (let i = 0; i < 3; i++) {
      const r = await s.step({ images, targets });
      vals.push(Object.entries(r.losses).filter(([k]) => k.startsWith('distill.')).reduce((x, [, v]) => x + v, 0));
    }
    check(vals.every(Number.isFinite), `distill ${loss} on ${DEV}: ${vals.map((v) => v.toPrecision(4)).join(' ')}`);
    await s.dispose();
  }
  await student.dispose();
  await teacher.dispose();
});

await part(`the whole pipeline on ${DEV}${GPU ? ' with schedule.amp' : ''}, then its student on the CPU and on ${DEV}`, async () => {
  const dir = process.env.MTPD_CHECK_OUT ?? mkdtempSync(join(tmpdir(), 'mtpd-cuda-check-'));
  const data = join(dir, 'data');
  const n = GPU ? { images: 96, val: 24, size: 384, iters: 60, width: 1 } : { images: 8, val: 4, size: 96, iters: 2, width: 0.125 };
  await writeSynthDataset({ out: data, images: n.images, valImages: n.val, size: n.size, seed: 3, difficulty: 'clear' });
  const raw = {
    output: join(dir, 'run'),
    device: DEV,
    threads: GPU ? 4 : 1,
    seed: 1,
    data: { root: data, minSize: n.size, maxSize: n.size, batchSize: 4, workers: 2 },
    student: { name: 'r18', arch: 'retinanet_resnet18_fpn', widthMult: n.width },
    teachers: [
      { name: 'r50', arch: 'retinanet_resnet50_fpn', widthMult: n.width },
      { name: 'r101', arch: 'retinanet_resnet101_fpn', widthMult: n.width },
    ],
    schedule: { iterations: n.iters, lr: 0.01, warmupIterations: Math.min(10, n.iters), amp: GPU },
    order: { method: 'bgs', k: 2, costs: { trainImages: Math.min(32, n.images), valImages: Math.min(16, n.val) } },
    evaluation: { batchSize: 4 },
    baselines: ['longer', 'direct', 'ensemble'],
  };
  const config = parseConfig(raw);
  const t0 = Date.now();
  const report = await train(config, { quiet: true, log: (l) => { if (!l.includes('\n')) log(`  | ${l}`); } });
  log(`time pipeline on ${DEV}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  check(!report.aborted && report.order.length === 2, `pipeline: order ${report.order.join(' -> ')}`);
  check(report.results.length >= 7 && report.results.every((r) => r.stats.length === 12 && r.stats.every(Number.isFinite)), `pipeline: ${report.results.map((r) => `${r.name} ${(100 * r.ap).toFixed(1)}`).join(', ')}`);
  log(readFileSync(join(config.output, 'report.md'), 'utf8'));
  // The last progressive student, evaluated (fp32) on the CPU and on the device.
  const last = report.results.filter((r) => r.role === 'stage').at(-1);
  const splits = await openSplits(config);
  const aps = {};
  for (const device of ['cpu', DEV]) {
    const c = parseConfig({ ...raw, device, threads: 0, schedule: { ...raw.schedule, amp: false } });
    // the student's setup of the run (its norm layer), so its weights load as they were trained
    const det = await buildModel({ ...c.student, norm: report.student.norm, trainableLayers: report.student.trainableLayers, weights: last.weights }, c, splits);
    const s = await evaluateModel(det, splits, c);
    aps[device] = s.stats;
    await det.dispose();
  }
  const d = Math.max(...aps.cpu.map((v, i) => Math.abs(v - aps[DEV][i])));
  check(d <= 0.005, `${last.name} evaluated on cpu (AP ${(100 * aps.cpu[0]).toFixed(2)}) and ${DEV} (AP ${(100 * aps[DEV][0]).toFixed(2)}): largest difference of the 12 stats ${d.toFixed(4)}`);
});

await part(`step throughput against torchvision on ${DEV}`, async () => {
  // A full-width R50 at COCO scale on the GPU; at 128x160 on the CPU dry run
  const [H, W, minSize, maxSize, reps] = GPU ? [800, 1333, 800, 1333, 20] : [128, 160, 128, 160, 2];
  const ims = [img(H, W, 3), img(H, W, 4)];
  const tg = [{ boxes: [[10, 20, 120, 200]], labels: [1] }, { boxes: [[30, 40, 100, 110]], labels: [2] }];
  const variants = GPU ? [['fp32', false, false], ['amp', true, false], ['amp+channels_last', true, true]] : [['fp32', false, false], ['fp32+channels_last', false, true]];
  const ours = {};
  for (const [name, amp, cl] of variants) {
    const det = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 91, minSize, maxSize, device: DEV, ...(cl ? { channelsLast: true } : {}) });
    const opt = await det.createOptimizer({ lr: 0.001, amp });
    for (let i = 0; i < 3; i++) await det.trainStep(opt, ims, tg);
    let t = Date.now();
    for (let i = 0; i < reps; i++) await det.trainStep(opt, ims, tg);
    const trainMs = (Date.now() - t) / reps;
    await det.eval();
    const run = () => det.run(ims, null, { detections: true, ...(amp ? { amp: true } : {}) });
    for (let i = 0; i < 3; i++) await run();
    t = Date.now();
    for (let i = 0; i < reps; i++) await run();
    ours[name] = { train: trainMs, infer: (Date.now() - t) / reps };
    await opt.dispose();
    await det.dispose();
  }
  const py = spawnSync(PY, ['-c', `
import json, sys, time, torch, torchvision
dev, H, W, mn, mx, reps = '${DEV}', ${H}, ${W}, ${minSize}, ${maxSize}, ${reps}
gpu = dev.startswith('cuda')
sync = torch.cuda.synchronize if gpu else (lambda: None)
out = {}
for name, amp, cl in ${JSON.stringify(variants).replace(/false/g, 'False').replace(/true/g, 'True')}:
    torch.manual_seed(0)
    m = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, min_size=mn, max_size=mx).to(dev)
    if cl: m = m.to(memory_format=torch.channels_last)
    ims = [torch.rand(3, H, W, device=dev) for _ in range(2)]
    tg = [{'boxes': torch.tensor([[10., 20, 120, 200]], device=dev), 'labels': torch.tensor([1], device=dev)}, {'boxes': torch.tensor([[30., 40, 100, 110]], device=dev), 'labels': torch.tensor([2], device=dev)}]
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.001, momentum=0.9)
    scaler = torch.amp.GradScaler('cuda', enabled=amp) if hasattr(torch.amp, 'GradScaler') else torch.cuda.amp.GradScaler(enabled=amp)
    m.train()
    def step():
        with torch.autocast('cuda', enabled=amp) if gpu else torch.autocast('cpu', enabled=False):
            l = sum(m(ims, tg).values())
        opt.zero_grad(); scaler.scale(l).backward(); scaler.step(opt); scaler.update(); l.item()
    for _ in range(3): step()
    sync(); t = time.time()
    for _ in range(reps): step()
    sync(); tr = (time.time() - t) / reps * 1000
    m.eval()
    with torch.no_grad(), (torch.autocast('cuda', enabled=amp) if gpu else torch.autocast('cpu', enabled=False)):
        for _ in range(3): [d['boxes'].cpu() for d in m(ims)]
        sync(); t = time.time()
        for _ in range(reps): [d['boxes'].cpu() for d in m(ims)]
        sync(); inf = (time.time() - t) / reps * 1000
    out[name] = {'train': tr, 'infer': inf}
print(json.dumps({'torch': torch.__version__, 'torchvision': torchvision.__version__, 'times': out}))
`], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`torchvision timing failed: ${py.stderr.trim().split('\n').slice(-3).join(' ')}`);
  const tv = JSON.parse(py.stdout.trim().split('\n').at(-1));
  log(`torchvision ${tv.torchvision} (torch ${tv.torch}); R50 at ${H}x${W}, batch 2, on ${DEV}:`);
  for (const [name] of variants) {
    const m = ours[name];
    const v = tv.times[name];
    log(`time ${name}: mtpd train ${m.train.toFixed(1)} ms, infer ${m.infer.toFixed(1)} ms; torchvision train ${v.train.toFixed(1)} ms, infer ${v.infer.toFixed(1)} ms; torchvision/mtpd train ${(v.train / m.train).toFixed(2)}x, infer ${(v.infer / m.infer).toFixed(2)}x`);
  }
  check(Object.values(ours).every((m) => Number.isFinite(m.train) && Number.isFinite(m.infer)), 'throughput measured');
});

log(`\n${failures} failure(s), ${((Date.now() - t00) / 1000).toFixed(0)} s in all`);
log('CUDA CHECK DONE');
process.exit(failures ? 1 : 0);
