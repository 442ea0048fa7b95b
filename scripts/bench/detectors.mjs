// RetinaNet train step and inference, mtpd against torchvision 0.14 on the same libtorch
// (Debian's /usr/bin/python3), same models (ResNet-18 / ResNet-50 FPN, FrozenBatchNorm2d,
// trainable_backbone_layers 3, 91 classes), same input (batch 2 of 512x512), all cores, in
// this run. Each measurement runs in its own process; peak memory is that process's max RSS.
// Env: MTPD_BENCH_REPS (default 3), MTPD_BENCH_SIZE (512), MTPD_BENCH_BATCH (2).
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const reps = process.env.MTPD_BENCH_REPS ?? '3';
const size = process.env.MTPD_BENCH_SIZE ?? '512';
const batch = process.env.MTPD_BENCH_BATCH ?? '2';
const threads = String(cpus().length);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) {
    console.error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
    return null;
  }
  const line = r.stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

console.log(`RetinaNet, batch ${batch} of ${size}x${size}, ${threads} threads, ${reps} timed reps after 1 warm-up`);
console.log('arch       impl                 inference     train step    peak RSS');
let ok = true;
for (const arch of ['resnet18', 'resnet50']) {
  const tv = run('/usr/bin/python3', [join(here, 'torchvision_detectors.py'), arch, batch, size, reps, threads]);
  const mt = run(process.execPath, [join(here, 'detectors-worker.mjs'), arch, batch, size, reps, threads]);
  if (!tv || !mt) {
    ok = false;
    continue;
  }
  for (const r of [tv, mt]) {
    console.log(
      `${arch.padEnd(10)} ${r.impl.padEnd(20)} ${r.infer_ms.toFixed(1).padStart(8)} ms  ${r.train_ms.toFixed(1).padStart(8)} ms  ${r.peak_mb.toFixed(0).padStart(6)} MB`,
    );
  }
  console.log(
    `${arch.padEnd(10)} ratio mtpd/torchvision   inference ${(mt.infer_ms / tv.infer_ms).toFixed(3)}x   train ${(mt.train_ms / tv.train_ms).toFixed(3)}x   peak memory ${(mt.peak_mb / tv.peak_mb).toFixed(3)}x`,
  );
}
process.exit(ok ? 0 : 1);
