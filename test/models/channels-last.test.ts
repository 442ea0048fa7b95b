/**
 * channelsLast: a detector whose convolution weights are channels_last (NHWC) computes the same
 * features, losses, detections and training steps as the contiguous one with the same weights,
 * to float rounding; loading weights and a config key keep the format.
 */
import t from 'tap';
import { createDetector, type Detector } from '../../src/detector.js';
import { parseConfig } from '../../src/config/load.js';
import { buildModel } from '../../src/train/models.js';
import { toNumbers, type Tensor } from '../../src/tensor.js';
import { haveAddon, randomImage as image, relDiff } from '../helpers.js';

const images = [image(96, 128, 1), image(112, 96, 2)];
const targets = [
  { boxes: [[4, 6, 60, 70]], labels: [1] },
  { boxes: [[10, 12, 80, 64], [2, 2, 30, 40]], labels: [0, 2] },
];
// scoreThresh: an untrained model's scores sit near the prior (0.01)
const cfg = { arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.25, minSize: 96, maxSize: 128, normLayer: 'bn' as const, trainableLayers: 5, scoreThresh: 0.001 };

/** The same weights in both formats. */
async function pair(): Promise<[Detector, Detector]> {
  const a = await createDetector(cfg);
  const b = await createDetector({ ...cfg, channelsLast: true });
  await b.loadStateDict(await a.stateDict());
  return [a, b];
}

t.test('channels_last: the weights are laid out NHWC, and stay so when weights load', async (t) => {
  if (!haveAddon(t)) return;
  const [a, b] = await pair();
  t.equal(a.info().memoryFormat, 'contiguous');
  t.equal(b.info().memoryFormat, 'channels_last', 'after loadStateDict (weights are copied into the NHWC tensors)');
  // the state dict is the same tensors, whatever their layout
  const sa = await a.stateDict();
  const sb = await b.stateDict();
  t.same([...sb.keys()], [...sa.keys()]);
  const w = 'backbone.body.layer1.0.conv1.weight';
  t.same(toNumbers(sb.get(w) as Tensor), toNumbers(sa.get(w) as Tensor), `${w}: same values in NCHW order`);
  await a.dispose();
  await b.dispose();
});

t.test('channels_last: features, losses and detections equal the contiguous model to float rounding', async (t) => {
  if (!haveAddon(t)) return;
  const [a, b] = await pair();
  await a.eval();
  await b.eval();
  const fa = await a.features(images);
  const fb = await b.features(images);
  for (const tap of ['p3', 'p4', 'p5', 'p6', 'p7']) {
    const d = relDiff(toNumbers(fb[tap] as Tensor), toNumbers(fa[tap] as Tensor));
    t.ok(d < 1e-4, `${tap} ${JSON.stringify((fa[tap] as Tensor).shape)}: ${d.toExponential(2)}`);
    t.same((fb[tap] as Tensor).shape, (fa[tap] as Tensor).shape);
  }
  const la = await a.losses(images, targets);
  const lb = await b.losses(images, targets);
  for (const [k, v] of Object.entries(la)) t.ok(Math.abs((lb[k] as number) - v) <= 1e-4 * Math.max(1, Math.abs(v)), `${k}: ${lb[k]} vs ${v}`);
  const da = await a.predict(images);
  const db = await b.predict(images);
  for (const [i, d] of da.entries()) {
    const e = db[i]!;
    const n = Math.min(20, d.scores.data.length, e.scores.data.length);
    t.ok(n > 0, `image ${i}: detections`);
    t.ok(relDiff(Array.from(e.scores.data).slice(0, n), Array.from(d.scores.data).slice(0, n)) < 1e-4, `image ${i}: top scores`);
  }
  await a.dispose();
  await b.dispose();
});

t.test('channels_last: training steps follow the contiguous model and keep the layout', async (t) => {
  if (!haveAddon(t)) return;
  const [a, b] = await pair();
  await a.train();
  await b.train();
  const oa = await a.createOptimizer({ lr: 0.01, momentum: 0.9 });
  const ob = await b.createOptimizer({ lr: 0.01, momentum: 0.9 });
  for (let s = 0; s < 3; s++) {
    const ra = await a.trainStep(oa, images, targets);
    const rb = await b.trainStep(ob, images, targets);
    t.ok(Math.abs(rb.loss - ra.loss) <= 1e-3 * Math.max(1, Math.abs(ra.loss)), `step ${s}: loss ${rb.loss} vs ${ra.loss}`);
  }
  t.equal(b.info().memoryFormat, 'channels_last', 'still NHWC after optimizer steps');
  const w = 'head.classification_head.conv.0.0.weight';
  const sa = await a.stateDict();
  const sb = await b.stateDict();
  const key = sa.has(w) ? w : [...sa.keys()].find((k) => k.startsWith('head.classification_head') && k.endsWith('weight') && (sa.get(k) as Tensor).shape.length === 4)!;
  t.ok(relDiff(toNumbers(sb.get(key) as Tensor), toNumbers(sa.get(key) as Tensor)) < 1e-3, `${key}: the same update`);
  await oa.dispose();
  await ob.dispose();
  await a.dispose();
  await b.dispose();
});

t.test('config channelsLast builds every model of a run channels_last', async (t) => {
  if (!haveAddon(t)) return;
  const base = { student: { name: 's', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 }, teachers: [{ name: 't', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 }], data: { root: '/nonexistent', minSize: 64, maxSize: 64 } };
  const on = parseConfig({ ...base, channelsLast: true });
  const off = parseConfig(base);
  t.equal(off.channelsLast, false, 'off by default');
  const a = await buildModel(on.student, on, 3, { loadWeights: false });
  const b = await buildModel(off.student, off, 3, { loadWeights: false });
  const c = await buildModel(on.teachers[0]!, on, 3, { loadWeights: false });
  t.equal(a.info().memoryFormat, 'channels_last', 'the student');
  t.equal(c.info().memoryFormat, 'channels_last', 'a teacher');
  t.equal(b.info().memoryFormat, 'contiguous');
  for (const d of [a, b, c]) await d.dispose();
});
