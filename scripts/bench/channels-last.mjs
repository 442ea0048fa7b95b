// Whole train steps and inference of a RetinaNet with and without `channelsLast` on this machine
// (CPU: libtorch's oneDNN), each a whole process of scripts/bench/detectors/worker.mjs, run in
// turn: contiguous, channels_last, contiguous, ... (MTPD_BENCH_ROUNDS rounds, default 3), each
// the median of MTPD_BENCH_REPS steps (default 2) after a warm-up. Printed: per format the median
// over rounds with its spread (min..max), and channels_last / contiguous per round as median
// (min..max): below 1 is faster. Env as scripts/bench/detectors.mjs: MTPD_BENCH_ARCHS (resnet50),
// MTPD_BENCH_SIZE (512), MTPD_BENCH_BATCH (2), MTPD_BENCH_THREADS (default: all cores).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runJson, spread, workerSettings } from './lib/stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { reps, rounds, size, batch, threads, archs } = workerSettings({ reps: '2', archs: 'resnet50' });

function run(arch, channelsLast) {
  const r = runJson(process.execPath, [join(here, 'detectors', 'worker.mjs'), arch, batch, size, reps, threads], { ...process.env, MTPD_BENCH_CHANNELS_LAST: channelsLast ? '1' : '0' });
  if (!r) process.exit(1);
  return r;
}

console.log(`RetinaNet, batch ${batch} of ${size}x${size}, ${threads} threads; ${rounds} rounds of whole processes in turn (contiguous, channels_last), median of ${reps} steps each after 1 warm-up`);
for (const arch of archs) {
  const res = { nchw: [], nhwc: [] };
  for (let r = 0; r < rounds; r++) {
    res.nchw.push(run(arch, false));
    res.nhwc.push(run(arch, true));
  }
  if (res.nhwc.some((x) => x.memoryFormat !== 'channels_last') || res.nchw.some((x) => x.memoryFormat === 'channels_last')) {
    console.error(`${arch}: the workers did not build the formats asked for`);
    process.exit(1);
  }
  for (const [field, label] of [['train_ms', 'train step ms'], ['infer_ms', 'inference ms'], ['peak_mb', 'peak RSS MiB']]) {
    const a = res.nchw.map((x) => x[field]);
    const b = res.nhwc.map((x) => x[field]);
    console.log(`${arch} ${label}: contiguous ${spread(a, 0)}, channels_last ${spread(b, 0)}, ratio ${spread(b.map((x, i) => x / a[i]), 2)}`);
  }
}
