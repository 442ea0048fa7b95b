/**
 * A real learning check: a narrow RetinaNet-ResNet18 (width_mult 0.25, BatchNorm, every layer
 * trainable) trains for a few hundred SGD steps on a tiny dataset of colored squares made here,
 * and its detection loss clearly drops; it then finds the objects of the training images.
 */
import t from 'tap';
import { createDetector, type Target } from '../../src/detector.js';
import { setThreads } from '../../src/runtime.js';
import { type Tensor, toNumbers } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

const SIZE = 64;

// Deterministic LCG so the dataset is the same on every run.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const COLORS: [number, number, number][] = [
  [0.9, 0.15, 0.1], // class 0: red
  [0.1, 0.3, 0.95], // class 1: blue
];

function makeDataset(n: number, seed: number): { images: Tensor<'float32'>[]; targets: Target[] } {
  const r = rng(seed);
  const images: Tensor<'float32'>[] = [];
  const targets: Target[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Float32Array(3 * SIZE * SIZE);
    for (let j = 0; j < data.length; j++) data[j] = 0.35 + 0.3 * r();
    const boxes: number[][] = [];
    const labels: number[] = [];
    const k = 1 + Math.floor(r() * 2);
    for (let o = 0; o < k; o++) {
      const w = 20 + Math.floor(r() * 16);
      const h = 20 + Math.floor(r() * 16);
      const x = Math.floor(r() * (SIZE - w));
      const y = Math.floor(r() * (SIZE - h));
      if (boxes.some((b) => x < (b[2] as number) && (b[0] as number) < x + w && y < (b[3] as number) && (b[1] as number) < y + h)) continue;
      const c = Math.floor(r() * 2);
      const col = COLORS[c] as [number, number, number];
      for (let ch = 0; ch < 3; ch++)
        for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) data[ch * SIZE * SIZE + yy * SIZE + xx] = col[ch] as number;
      boxes.push([x, y, x + w, y + h]);
      labels.push(c);
    }
    images.push({ dtype: 'float32', shape: [3, SIZE, SIZE], data });
    targets.push({ boxes, labels });
  }
  return { images, targets };
}

function iou(a: number[], b: number[]): number {
  const iw = Math.max(0, Math.min(a[2] as number, b[2] as number) - Math.max(a[0] as number, b[0] as number));
  const ih = Math.max(0, Math.min(a[3] as number, b[3] as number) - Math.max(a[1] as number, b[1] as number));
  const inter = iw * ih;
  const area = (x: number[]) => ((x[2] as number) - (x[0] as number)) * ((x[3] as number) - (x[1] as number));
  return inter / (area(a) + area(b) - inter);
}

if (haveAddon(t)) {
  t.test('RetinaNet-R18 (narrow) learns colored squares: loss drops, objects are found', async (t) => {
    setThreads(0);
    const { images, targets } = makeDataset(16, 7);
    const det = await createDetector({
      arch: 'retinanet_resnet18_fpn',
      numClasses: 2,
      widthMult: 0.25,
      minSize: SIZE,
      maxSize: SIZE,
      normLayer: 'bn',
      trainableLayers: 5,
    });
    const opt = await det.createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, maxGradNorm: 10 });
    const batch = 4;
    const steps = 240;
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) {
      const i0 = (s * batch) % images.length;
      if (s === 20) opt.setLr(0.02); // short warmup
      const r = await det.trainStep(opt, images.slice(i0, i0 + batch), targets.slice(i0, i0 + batch));
      t.ok(Number.isFinite(r.loss), `step ${s} loss is finite`, { diagnostic: !Number.isFinite(r.loss) });
      losses.push(r.loss);
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(losses.slice(0, 20));
    const last = mean(losses.slice(-20));
    t.comment(`loss: first 20 steps ${first.toFixed(3)}, last 20 steps ${last.toFixed(3)}`);
    t.ok(last < 0.5 * first, `loss drops by more than half (${first.toFixed(3)} -> ${last.toFixed(3)})`);

    const dets = await det.predict(images);
    let found = 0;
    let total = 0;
    dets.forEach((d, i) => {
      const gt = targets[i] as { boxes: number[][]; labels: number[] };
      const boxes = toNumbers(d.boxes);
      const scores = toNumbers(d.scores);
      const labels = toNumbers(d.labels);
      gt.boxes.forEach((g, j) => {
        total++;
        for (let k = 0; k < scores.length; k++) {
          if ((scores[k] as number) < 0.3) break;
          if (labels[k] === gt.labels[j] && iou(boxes.slice(4 * k, 4 * k + 4), g) > 0.5) {
            found++;
            break;
          }
        }
      });
    });
    t.comment(`found ${found}/${total} training objects (score >= 0.3, IoU > 0.5, right class)`);
    t.ok(found >= 0.6 * total, `finds most objects (${found}/${total})`);
  });
}
