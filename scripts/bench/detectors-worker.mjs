// mtpd side of scripts/bench/detectors.mjs (one process per model so peak memory is its own).
// argv: arch batch size reps threads -> one JSON line.
import { createDetector } from '../../dist/detector.js';
import { setThreads } from '../../dist/runtime.js';

const [arch, batchS, sizeS, repsS, threadsS] = process.argv.slice(2);
const batch = Number(batchS);
const size = Number(sizeS);
const reps = Number(repsS);
const threads = setThreads(Number(threadsS));

const det = await createDetector({ arch: `retinanet_${arch}_fpn`, numClasses: 91, minSize: size, maxSize: size, trainableLayers: 3 });
const images = Array.from({ length: batch }, () => {
  const data = new Float32Array(3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.random();
  return { dtype: 'float32', shape: [3, size, size], data };
});
const targets = images.map(() => ({
  boxes: [
    [40, 60, 200, 220],
    [300, 100, 420, 380],
  ],
  labels: [1, 7],
}));
const opt = await det.createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });

async function timeIt(fn) {
  await fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6 / reps;
}

await det.eval();
const infer = await timeIt(() => det.run(images, null, { detections: true }));
const train = await timeIt(() => det.trainStep(opt, images, targets));
const peak = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ impl: 'mtpd', arch, infer_ms: infer, train_ms: train, peak_mb: peak, threads }));
