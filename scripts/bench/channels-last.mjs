// Whole train steps and inference of a RetinaNet with and without `channelsLast` on this machine
// (CPU: libtorch's oneDNN), each a whole process of scripts/bench/detectors/worker.mjs, run in
// turn: contiguous, channels_last, contiguous, ... (MTPD_BENCH_ROUNDS rounds, default 3), each
// the median of MTPD_BENCH_REPS steps (default 2) after a warm-up. Printed: per format the median
// over rounds with its spread (min..max), and channels_last / contiguous per round as median
// (min..max): below 1 is faster. Env as scripts/bench/detectors.mjs: MTPD_BENCH_ARCHS (resnet50),
// MTPD_BENCH_SIZE (512), MTPD_BENCH_BATCH (2), MTPD_BENCH_THREADS (default: all cores).
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const reps = process.env.MTPD_BENCH_REPS ?? '2';
const rounds = Number(process.env.MTPD_BENCH_ROUNDS ?? 3);
const size = process.env.MTPD_BENCH_SIZE ?? '512';
const batch = process.env.MTPD_BENCH_BATCH ?? '2';
const threads = process.env.MTPD_BENCH_THREADS ?? String(cpus().length);
const archs = (process.env.MTPD_BENCH_ARCHS ?? 'resnet50').split(',');

function run(arch, channelsLast) {
  const r = spawnSync(process.execPath, [join(here, 'detectors', 'worker.mjs'), arch, batch, size, reps, threads], {
    encoding: 'utf8',
    timeout: 1_200_000,
    env: { ...process.env, MTPD_BENCH_CHANNELS_LAST: channelsLast ? '1' : '0' },
  });
  if (r.status !== 0) {
    console.error(`worker ${arch} (channelsLast ${channelsLast}) failed:\n${r.stderr}`);
    process.exit(1);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const spread = (a, d = 0) => `${median(a).toFixed(d)} (${Math.min(...a).toFixed(d)}..${Math.max(...a).toFixed(d)})`;

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
    console.log(`${arch} ${label}: contiguous ${spread(a)}, channels_last ${spread(b)}, ratio ${spread(b.map((x, i) => x / a[i]), 2)}`);
  }
}
