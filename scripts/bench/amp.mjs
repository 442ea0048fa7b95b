// Mixed precision on the CPU (schedule.amp: bfloat16 autocast) against float32 and against
// torchvision 0.14 under torch.autocast("cpu") on the same libtorch: RetinaNet (and Mask R-CNN with
// MTPD_BENCH_ARCHS=maskrcnn_resnet50) inference and SGD train step, the detectors benchmark's own
// workers (scripts/bench/detectors/), batch 2 of 512x512. Every measurement is a whole process, run in
// turn each round: torchvision float32, mtpd float32, torchvision amp, mtpd amp. Printed per model:
// each figure's median (min..max) over rounds, and per-round ratios as median (min..max), below 1
// faster: mtpd amp / torchvision amp (the same numerics), mtpd amp / torchvision float32 (what amp
// buys over torchvision's default), mtpd amp / mtpd float32. How fast bfloat16 runs depends on the
// CPU: `mtpd info` says whether it computes bfloat16 itself (AVX-512 BF16 or AMX).
// Env: MTPD_BENCH_ARCHS (resnet18,resnet50,swin_t), MTPD_BENCH_ROUNDS (2), MTPD_BENCH_REPS (3),
// MTPD_BENCH_SIZE, MTPD_BENCH_BATCH, MTPD_BENCH_THREADS.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuBfloat16 } from '../../dist/train/amp.js';
import { runJson as run, spread, workerSettings } from './lib/stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { reps, size, batch, threads, archs } = workerSettings({ reps: '3', archs: 'resnet18,resnet50,swin_t' });
const rounds = Number(process.env.MTPD_BENCH_ROUNDS ?? 2);
const FIELDS = [
  ['infer_ms', 'inference ms'],
  ['train_ms', 'train step ms'],
  ['peak_mb', 'peak RSS MiB'],
];
const SIDES = [
  ['tv32', 'torchvision float32', '/usr/bin/python3', 'reference.py', '0'],
  ['mt32', 'mtpd float32', process.execPath, 'worker.mjs', '0'],
  ['tv16', 'torchvision amp', '/usr/bin/python3', 'reference.py', '1'],
  ['mt16', 'mtpd amp', process.execPath, 'worker.mjs', '1'],
];
const RATIOS = [
  ['mt16', 'tv16', 'mtpd amp / torchvision amp'],
  ['mt16', 'tv32', 'mtpd amp / torchvision float32'],
  ['mt16', 'mt32', 'mtpd amp / mtpd float32'],
];

console.log(`RetinaNet (maskrcnn_*: Mask R-CNN), batch ${batch} of ${size}x${size}, ${threads} threads, CPU bfloat16: ${cpuBfloat16()}; ${rounds} rounds of whole processes in turn (${SIDES.map((s) => s[1]).join(', ')}), median of ${reps} steps each after 1 warm-up`);
let ok = true;
for (const arch of archs) {
  const res = Object.fromEntries(SIDES.map(([k]) => [k, []]));
  for (let r = 0; r < rounds && ok; r++) {
    for (const [k, , cmd, script, amp] of SIDES) {
      const out = run(cmd, [join(here, 'detectors', script), arch, batch, size, reps, threads], { ...process.env, MTPD_BENCH_AMP: amp });
      if (!out) {
        ok = false;
        break;
      }
      res[k].push(out);
    }
  }
  const n = Math.min(...SIDES.map(([k]) => res[k].length));
  if (n === 0) continue;
  console.log(`\n${arch} (${n} rounds)`);
  for (const [k, name] of FIELDS) {
    console.log(`  ${name}`);
    for (const [side, label] of SIDES) console.log(`    ${label.padEnd(32)} ${spread(res[side].slice(0, n).map((x) => x[k]), 1)}`);
    for (const [a, b, label] of RATIOS) {
      const ratio = res[a].slice(0, n).map((x, i) => x[k] / res[b][i][k]);
      console.log(`    ${label.padEnd(32)} ${spread(ratio, 3)}`);
    }
  }
}
process.exit(ok ? 0 : 1);
