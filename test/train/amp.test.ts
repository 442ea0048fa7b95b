import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configJsonSchema } from '../../src/config/schema.js';
import { createDetector } from '../../src/detector.js';
import { DistillSession } from '../../src/distill/step.js';
import { ampKeys, checkAmp } from '../../src/train/amp.js';
import { optimizerFor } from '../../src/train/detection.js';
import { zeros } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

const base = {
  data: { root: '/nonexistent' },
  student: { name: 's', arch: 'retinanet_resnet18_fpn' },
  teachers: [{ name: 't', arch: 'retinanet_resnet50_fpn' }],
};

t.test('schedule.amp: documented, off by default, reaches the optimizer, refused off CUDA naming the key', async (t) => {
  const off = parseConfig(base);
  t.equal(off.schedule.amp, false);
  t.doesNotThrow(() => checkAmp(off));
  const json = JSON.stringify(configJsonSchema());
  t.match(json, /mixed precision \(device cuda only\)/, 'the JSON Schema describes it');
  const on = parseConfig({ ...base, schedule: { amp: true } });
  t.equal(optimizerFor(on.schedule).amp, true, 'every stage optimizer gets amp');
  t.throws(() => checkAmp(on), { code: 'ERR_MTPD_CONFIG', message: /^schedule\.amp: mixed precision needs device cuda \(device is cpu\)/ });
  const teacherOnly = parseConfig({ ...base, teachers: [{ name: 't', arch: 'retinanet_resnet50_fpn', train: { amp: true } }] });
  t.same(ampKeys(teacherOnly), ['teachers[0].train.amp']);
  t.throws(() => checkAmp(teacherOnly), /teachers\[0\]\.train\.amp: mixed precision needs device cuda/);
  t.doesNotThrow(() => checkAmp(parseConfig({ ...base, device: 'cuda', schedule: { amp: true } })), 'accepted on cuda (whether a GPU exists is checkDevice\'s)');
});

t.test('amp on a CPU model: clear errors from the forward pass and the training step', async (t) => {
  if (!haveAddon(t)) return;
  const conf = { arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 };
  await using det = await createDetector(conf);
  await using teacher = await createDetector(conf);
  const img = zeros('float32', [3, 64, 64]);
  await t.rejects(det.features([img], { amp: true }), /what\.amp: mixed precision needs a model on CUDA \(this one is on cpu\)/);
  const [f] = Object.values(await det.features([img]));
  t.ok(f && f.dtype === 'float32', 'without amp it runs');
  await t.rejects(det.createOptimizer({ amp: true }).then((o) => det.trainStep(o, [img], [{ boxes: [[1, 1, 30, 30]], labels: [0] }])), /amp needs a model on CUDA/);
  await t.rejects(
    (async () => {
      const s = await DistillSession.create(det, [{ name: 't', model: teacher, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }], { optimizer: { amp: true } });
      await s.step({ images: [img], targets: [{ boxes: [[1, 1, 30, 30]], labels: [0] }] });
    })(),
    /amp needs a model on CUDA/,
  );
});
