// mtpd side of scripts/bench/detectors.mjs (one process per model so peak memory is its own).
// argv: arch batch size reps threads -> one JSON line. MTPD_BENCH_CHANNELS_LAST=1: the model in
// channels_last (scripts/bench/channels-last.mjs). MTPD_BENCH_AMP=1: mixed precision (the CPU's
// bfloat16 autocast; scripts/bench/amp.mjs).
import { createDetector } from '../../../dist/detector.js';
import { setThreads } from '../../../dist/runtime.js';

const [arch, batchS, sizeS, repsS, threadsS] = process.argv.slice(2);
const batch = Number(batchS);
const size = Number(sizeS);
const reps = Number(repsS);
const threads = setThreads(Number(threadsS));

// maskrcnn_resnet50: mtpd counts real classes (90 + torchvision's background = 91 outputs).
const masks = arch.startsWith('maskrcnn_');
const det = await createDetector({
  arch: masks ? `${arch}_fpn` : `retinanet_${arch}_fpn`,
  numClasses: masks ? 90 : 91,
  minSize: size,
  maxSize: size,
  trainableLayers: 3,
  ...(process.env.MTPD_BENCH_CHANNELS_LAST === '1' ? { channelsLast: true } : {}),
  ...(arch.startsWith('swin') ? { options: { stochastic_depth_prob: 0.2 } } : {}),
});
const images = Array.from({ length: batch }, () => {
  const data = new Float32Array(3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.random();
  return { dtype: 'float32', shape: [3, size, size], data };
});
const boxes = [
  [40, 60, 200, 220],
  [300, 100, 420, 380],
];
// The same two instances as the reference: filled boxes as masks; labels are torchvision's minus 1 for Mask R-CNN.
function boxMasks() {
  const data = new Uint8Array(2 * size * size);
  boxes.forEach(([x1, y1, x2, y2], k) => {
    for (let y = y1; y < Math.min(y2, size); y++) data.fill(1, k * size * size + y * size + x1, k * size * size + y * size + Math.min(x2, size));
  });
  return { dtype: 'uint8', shape: [2, size, size], data };
}
const targets = images.map(() => (masks ? { boxes, labels: [0, 6], masks: boxMasks() } : { boxes, labels: [1, 7] }));
const amp = process.env.MTPD_BENCH_AMP === '1';
const opt = await det.createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, amp });

// Median of `reps` after a warm-up (as the reference side).
async function timeIt(fn) {
  await fn();
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  return n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

await det.eval();
const infer = await timeIt(() => det.run(images, null, { detections: true, amp }));
const train = await timeIt(() => det.trainStep(opt, images, targets));
const ru = process.resourceUsage();
console.log(JSON.stringify({ impl: 'mtpd', arch, memoryFormat: (await det.info()).memoryFormat, infer_ms: infer, train_ms: train, peak_mb: ru.maxRSS / 1024, user_s: ru.userCPUTime / 1e6, sys_s: ru.systemCPUTime / 1e6, threads, amp }));
