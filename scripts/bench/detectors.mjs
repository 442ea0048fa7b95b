// RetinaNet (and Mask R-CNN: MTPD_BENCH_ARCHS=maskrcnn_resnet50) train step and inference, mtpd against torchvision 0.14 on the same libtorch
// (Debian's /usr/bin/python3), same models (ResNet-18 / ResNet-50 FPN with FrozenBatchNorm2d and
// trainable_backbone_layers 3, Swin-T FPN; 91 classes), same input (batch 2 of 512x512), in this
// run. Every measurement is a whole process (its peak memory is that process's max RSS), run in
// turn: torchvision, mtpd, torchvision, mtpd, ... (MTPD_BENCH_ROUNDS rounds, default 3), each
// process timing the median of MTPD_BENCH_REPS steps (default 4) after a warm-up. Printed: per
// model the median over rounds of each figure with its spread (min..max), and the ratio
// mtpd/torchvision per round, as median (min..max): below 1 is faster or smaller. Single-shot
// figures on a shared machine swing by 2x; quote the ratios with their spreads.
// Env: MTPD_BENCH_ARCHS (resnet18,resnet50,swin_t; maskrcnn_resnet50 for Mask R-CNN R50 FPN), MTPD_BENCH_ROUNDS, MTPD_BENCH_REPS,
// MTPD_BENCH_SIZE (512), MTPD_BENCH_BATCH (2), MTPD_BENCH_THREADS (default: all cores),
// MTPD_BENCH_ISA (native; avx2: both sides' kernels capped at AVX2, see lib/stats.mjs).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runJson as run, spread, workerSettings } from './lib/stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { reps, rounds, size, batch, threads, archs, isa } = workerSettings({ reps: '4', archs: 'resnet18,resnet50,swin_t' });
const FIELDS = [
  ['infer_ms', 'inference ms'],
  ['train_ms', 'train step ms'],
  ['peak_mb', 'peak RSS MiB'],
  ['sys_s', 'system CPU s'],
];

console.log(`RetinaNet (maskrcnn_*: Mask R-CNN), batch ${batch} of ${size}x${size}, ${threads} threads; ${rounds} rounds of whole processes in turn (torchvision, mtpd), median of ${reps} steps each after 1 warm-up; kernels: ${isa}`);
let ok = true;
for (const arch of archs) {
  const res = { tv: [], mt: [] };
  for (let r = 0; r < rounds; r++) {
    const tv = run('/usr/bin/python3', [join(here, 'detectors', 'reference.py'), arch, batch, size, reps, threads]);
    const mt = run(process.execPath, [join(here, 'detectors', 'worker.mjs'), arch, batch, size, reps, threads]);
    if (!tv || !mt) {
      ok = false;
      break;
    }
    res.tv.push(tv);
    res.mt.push(mt);
  }
  if (res.tv.length === 0) continue;
  console.log(`\n${arch} (${res.tv.length} rounds)`);
  console.log(`  ${'figure'.padEnd(16)} ${'torchvision'.padEnd(26)} ${'mtpd'.padEnd(26)} ratio mtpd/torchvision`);
  for (const [k, name] of FIELDS) {
    const tv = res.tv.map((x) => x[k]);
    const mt = res.mt.map((x) => x[k]);
    const ratio = mt.map((m, i) => m / tv[i]);
    console.log(`  ${name.padEnd(16)} ${spread(tv, k === 'sys_s' ? 2 : 1).padEnd(26)} ${spread(mt, k === 'sys_s' ? 2 : 1).padEnd(26)} ${spread(ratio, 3)}`);
  }
}
process.exit(ok ? 0 : 1);
