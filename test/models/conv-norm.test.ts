/**
 * Frozen (and eval-mode) BatchNorm folded into the preceding ResNet convolution where that
 * convolution's weight takes no gradient: features, losses, gradients and Hessian-vector products
 * equal conv-then-norm (MTPD_FOLD_NORM=0, torchvision's op order) to float rounding, with
 * non-trivial norm statistics; a train step of a model whose every convolution is trained is the
 * same bits with and without folding.
 */
import t from 'tap';
import { createDetector, type Detector } from '../../src/detector.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { haveAddon, mulberry32, randomImage as image, relDiff } from '../helpers.js';

// Norm statistics away from the identity, so a wrong fold shows.
async function randomizeNorms(det: Detector, seed: number): Promise<void> {
  const r = mulberry32(seed);
  const sd = await det.stateDict();
  for (const [k, v] of sd) {
    if (!/^backbone\.body\..*(bn\d|downsample\.1)\.(weight|bias|running_mean|running_var)$/.test(k)) continue;
    const n = v.shape.reduce((a, b) => a * b, 1);
    const kind = k.slice(k.lastIndexOf('.') + 1);
    const draw = (): number => (kind === 'running_var' ? 0.2 + r() : kind === 'weight' ? 0.5 + r() : r() - 0.5);
    sd.set(k, tensor('float32', v.shape, Float32Array.from({ length: n }, draw)));
  }
  await det.loadStateDict(sd);
}

async function withFold<T>(on: boolean, f: () => Promise<T>): Promise<T> {
  const before = process.env.MTPD_FOLD_NORM;
  process.env.MTPD_FOLD_NORM = on ? '1' : '0';
  try {
    return await f();
  } finally {
    if (before === undefined) delete process.env.MTPD_FOLD_NORM;
    else process.env.MTPD_FOLD_NORM = before;
  }
}

const images = [image(64, 80, 1), image(72, 64, 2)];
const targets = [
  { boxes: [[4, 6, 40, 50]], labels: [1] },
  { boxes: [[10, 12, 60, 44], [2, 2, 20, 30]], labels: [0, 2] },
];

for (const norm of ['frozen_bn', 'bn'] as const) {
  t.test(`${norm}: folded features equal conv then norm`, async (t) => {
    if (!haveAddon(t)) return;
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.25, minSize: 64, maxSize: 96, normLayer: norm });
    await randomizeNorms(det, 7);
    await det.eval();
    const plain = await withFold(false, () => det.features(images));
    const folded = await withFold(true, () => det.features(images));
    let differs = false;
    for (const tap of ['p3', 'p4', 'p5', 'p6', 'p7']) {
      const a = toNumbers(folded[tap] as Tensor);
      const b = toNumbers(plain[tap] as Tensor);
      t.ok(relDiff(a, b) < 1e-5, `${tap}: ${relDiff(a, b).toExponential(2)}`);
      if (relDiff(a, b) > 0) differs = true;
    }
    t.ok(differs, 'the fold ran: the two op orders round differently');
    await det.dispose();
  });
}

t.test('frozen_bn: a convolution whose weight is trained keeps conv then norm (no fold)', async (t) => {
  if (!haveAddon(t)) return;
  // trainable_layers 5: every ResNet convolution takes gradients in a train step, so the fold
  // never runs there and MTPD_FOLD_NORM changes nothing, bit for bit.
  const make = () => createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.25, minSize: 64, maxSize: 96, normLayer: 'frozen_bn', trainableLayers: 5 });
  const a = await make();
  await randomizeNorms(a, 5);
  const b = await make();
  await b.loadStateDict(await a.stateDict());
  const step = async (det: Detector, fold: boolean) => {
    const opt = await det.createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9 });
    const { losses } = await withFold(fold, () => det.trainStep(opt, images, targets));
    return { losses, weights: toNumbers((await det.stateDict()).get('backbone.body.layer2.0.conv1.weight') as Tensor) };
  };
  const plain = await step(a, false);
  const folded = await step(b, true);
  t.same(folded.losses, plain.losses, 'losses identical');
  t.same(folded.weights, plain.weights, 'updated weights identical');
  await a.dispose();
  await b.dispose();
});

t.test('frozen_bn: losses, gradients and Hessian-vector products through the fold', async (t) => {
  if (!haveAddon(t)) return;
  // trainable_layers 3: conv1 and layer1 are frozen and fold; of the trained convolutions, those
  // outside `params` take no gradient in the product and fold too.
  const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.25, minSize: 64, maxSize: 96, normLayer: 'frozen_bn', trainableLayers: 3 });
  await randomizeNorms(det, 11);
  const r = mulberry32(3);
  const params = ['backbone.body.layer2.0.conv1.weight', 'backbone.body.layer3.0.downsample.0.weight', 'backbone.body.layer4.1.conv2.weight'];
  const sd = await det.stateDict();
  const vectors = new Map(params.map((p) => {
    const v = sd.get(p) as Tensor;
    const n = v.shape.reduce((a, b) => a * b, 1);
    return [p, tensor('float32', v.shape, Float32Array.from({ length: n }, () => r() - 0.5))];
  }));
  const plain = await withFold(false, () => det.hessianVectorProduct(images, targets, vectors));
  const folded = await withFold(true, () => det.hessianVectorProduct(images, targets, vectors));
  let differs = false;
  for (const [k, v] of Object.entries(plain.losses)) {
    const f = folded.losses[k] as number;
    t.ok(Math.abs(f - v) <= 1e-5 * Math.max(1, Math.abs(v)), `${k}: ${f} vs ${v}`);
    if (f !== v) differs = true;
  }
  for (const p of params) {
    const g = relDiff(toNumbers(folded.gradient.get(p) as Tensor), toNumbers(plain.gradient.get(p) as Tensor));
    const h = relDiff(toNumbers(folded.product.get(p) as Tensor), toNumbers(plain.product.get(p) as Tensor));
    t.ok(g < 1e-4, `gradient of ${p}: ${g.toExponential(2)}`);
    t.ok(h < 1e-3, `H v of ${p}: ${h.toExponential(2)}`);
    if (g > 0) differs = true;
  }
  t.ok(differs, 'the fold ran: the two op orders round differently');
  await det.dispose();
});
