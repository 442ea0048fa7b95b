// Data-parallel scaling on CPU (Gloo): images per second of a detector's train step with one
// process, then with two (each one intra-op thread, the same batch per process, gradients
// averaged through c10d's allreduce in buckets overlapped with backward). Prints the scaling
// efficiency: throughput(2 processes) / (2 x throughput(1 process)); 1.0 is perfect. A shared
// machine's load drifts, so the two are measured in interleaved rounds (1, 2, 1, 2, ...): each
// round's ratio compares neighbours in time; the median and the range over the rounds are
// printed, with the load average before and after.
// Env: MTPD_BENCH_REPS (default 6), MTPD_BENCH_SIZE (default 128), MTPD_BENCH_WIDTH (default 0.25),
// MTPD_BENCH_BATCH (per process, default 2), MTPD_BENCH_PORT (default 29611),
// MTPD_BENCH_ROUNDS (default 3).
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const reps = Number(process.env.MTPD_BENCH_REPS ?? 6);
const size = Number(process.env.MTPD_BENCH_SIZE ?? 128);
const width = Number(process.env.MTPD_BENCH_WIDTH ?? 0.25);
const batch = Number(process.env.MTPD_BENCH_BATCH ?? 2);
const basePort = Number(process.env.MTPD_BENCH_PORT ?? 29611);
const rounds = Number(process.env.MTPD_BENCH_ROUNDS ?? 3);

async function worker() {
  const { createDetector, distEnv, initDist, endDist, dist, setThreads } = await import('../../dist/index.js');
  setThreads(1);
  const env = distEnv();
  await initDist(env, { timeoutMs: 120_000, heartbeatTimeoutMs: 60_000 });
  const rank = env.rank;
  const images = [];
  for (let i = 0; i < batch; i++) {
    const data = new Float32Array(3 * size * size);
    for (let j = 0; j < data.length; j++) data[j] = ((j * 2654435761 + (rank * batch + i) * 97) % 1000) / 1000;
    images.push({ dtype: 'float32', shape: [3, size, size], data });
  }
  const targets = images.map((_, i) => ({ boxes: [[10 + i, 12, size / 2, size / 3 + i]], labels: [i % 2] }));
  const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: width, minSize: size, maxSize: size });
  const opt = await det.createOptimizer({ type: 'sgd', lr: 1e-4 });
  const group = dist().group;
  if (group) await opt.setGradSync(group.createGradSync());
  await det.trainStep(opt, images, targets); // warm-up
  await det.trainStep(opt, images, targets);
  if (group) await group.barrier();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await det.trainStep(opt, images, targets);
  if (group) await group.barrier();
  const secs = (performance.now() - t0) / 1000 / reps;
  if (rank === 0) process.stdout.write(`${JSON.stringify({ secs })}\n`);
  await endDist(true);
}

async function job(world, port) {
  const self = fileURLToPath(import.meta.url);
  const kids = [];
  for (let r = 0; r < world; r++) {
    const env = { ...process.env, MTPD_BENCH_WORKER: '1', RANK: String(r), WORLD_SIZE: String(world), LOCAL_RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const child = spawn(process.execPath, [self], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    kids.push(new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`rank ${r} exited with ${code}`))))));
  }
  const outs = await Promise.all(kids);
  return JSON.parse(outs[0].trim().split('\n').pop()).secs;
}

if (process.env.MTPD_BENCH_WORKER) {
  await worker();
} else {
  console.log(`retinanet_resnet18_fpn x${width}, ${size} px, batch ${batch} per process, 1 thread per process, ${reps} steps, ${rounds} interleaved rounds (1 process, 2 processes, ...)`);
  const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');
  console.log(`load average before (1, 5, 15 min): ${load()}`);
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
  const one = [];
  const two = [];
  const eff = [];
  for (let r = 0; r < rounds; r++) {
    const t1 = await job(1, basePort + 2 * r);
    const t2 = await job(2, basePort + 2 * r + 1);
    one.push(batch / t1);
    two.push((2 * batch) / t2);
    eff.push(two[r] / (2 * one[r]));
    console.log(`round ${r + 1}: 1 process ${one[r].toFixed(2)} images/s, 2 processes ${two[r].toFixed(2)} images/s (effective batch ${2 * batch}), efficiency ${eff[r].toFixed(2)}`);
  }
  const range = (v, d = 2) => `${Math.min(...v).toFixed(d)}..${Math.max(...v).toFixed(d)}`;
  console.log(`1 process : median ${median(one).toFixed(2)} images/s (range ${range(one)})`);
  console.log(`2 processes: median ${median(two).toFixed(2)} images/s (range ${range(two)})`);
  console.log(`scaling efficiency 1 -> 2 processes: median ${median(eff).toFixed(2)} (range ${range(eff)} over ${rounds} rounds; speed-up ${(2 * median(eff)).toFixed(2)}x)`);
  console.log(`load average after (1, 5, 15 min): ${load()}`);
}
