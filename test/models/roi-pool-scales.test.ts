/**
 * MultiScaleRoIAlign keeps the scales of its first call, as torchvision 0.14's instance keeps
 * self.scales: a very flat image (12 x 200, resized 5 x 96, padded 32 x 96) infers scales
 * 2 .. 0.25 from itself, but after a usual image torchvision pools it at 1/4 .. 1/32. Golden
 * detections, masks and losses from scripts/golden/roi_pool_scales.py on the
 * maskrcnn_resnet18_small fixture's weights. The kept scales are state (roiScales): restored on a
 * fresh model, it pools as the model they came from (what a resumed training stage does). With
 * roi_scales "strides" (mmdetection's featmap_strides; the cascade's default) the scales are
 * 1/stride from the first call on.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { createDetector, type Detection } from '../../src/detector.js';
import { relErr } from '../../src/parity.js';
import { setSeed } from '../../src/runtime.js';
import { type Tensor, toNumbers } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/index.js';
import { haveAddon } from '../helpers.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

if (haveAddon(t)) {
  const { tensors, metadata } = await loadSafetensors(join(dir, 'maskrcnn_roi_scales.safetensors'));
  const get = (k: string): Tensor => {
    const v = tensors.get(k);
    if (!v) throw new Error(`fixture has no ${k}`);
    return v;
  };
  const options = JSON.parse(metadata.config as string) as Record<string, unknown>;
  const weights = join(dir, metadata.weights as string);
  const make = async (extra: Record<string, unknown> = {}) => {
    const det = await createDetector({ arch: 'mask_rcnn', options: { ...options, ...extra } });
    await det.loadWeights(weights, { strict: true });
    await det.eval();
    return det;
  };
  const same = (t: Test, d: Detection, prefix: string) => {
    const n = get(`${prefix}.scores`).shape[0];
    t.equal(d.scores.shape[0], n, `${prefix}: ${n} detections`);
    if (d.scores.shape[0] !== n) return;
    t.ok(relErr(d.scores, get(`${prefix}.scores`)) < 1e-4, `${prefix}.scores`);
    t.ok(relErr(d.boxes, get(`${prefix}.boxes`)) < 1e-4, `${prefix}.boxes`);
    t.same(toNumbers(d.labels), toNumbers(get(`${prefix}.labels`)), `${prefix}.labels`);
    t.ok(d.masks && relErr(d.masks, get(`${prefix}.masks`)) < 1e-4, `${prefix}.masks`);
  };

  t.test('a fresh model pools the flat image at the scales inferred from it', async (t) => {
    const det = await make();
    const [d] = await det.predict([get('image_flat')]);
    same(t, d as Detection, 'fresh');
    await det.dispose();
  });

  t.test('after a usual image, the flat image is pooled at the first call\'s scales (detections, masks, losses)', async (t) => {
    const det = await make();
    const [u] = await det.predict([get('image_usual')]);
    same(t, u as Detection, 'usual');
    const [d] = await det.predict([get('image_flat')]);
    same(t, d as Detection, 'after');
    await det.train();
    setSeed(Number(metadata.loss_seed));
    const losses = await det.losses([get('image_flat')], [{ boxes: get('target.boxes'), labels: get('target.labels'), masks: get('target.masks') }]);
    for (const k of ['loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg']) {
      const ref = toNumbers(get(`loss.${k}`))[0] as number;
      t.ok(Math.abs((losses[k] as number) - ref) <= 1e-4 * Math.abs(ref), `${k}: mtpd ${losses[k]} vs torchvision ${ref}`);
    }
    await det.dispose();
  });

  t.test('the kept scales are state: restored on a fresh model, it pools as the model they came from', async (t) => {
    const a = await make();
    t.same(a.roiScales(), [], 'none before the first batch');
    await a.predict([get('image_usual')]);
    const kept = a.roiScales();
    t.same(kept, [1 / 4, 1 / 8, 1 / 16, 1 / 32], 'a usual image: 1/stride');
    const b = await make();
    b.setRoiScales(kept);
    t.same(b.roiScales(), kept, 'restored');
    const [d] = await b.predict([get('image_flat')]);
    same(t, d as Detection, 'after');
    // [] forgets them: the next batch infers its own again
    b.setRoiScales([]);
    const [f] = await b.predict([get('image_flat')]);
    same(t, f as Detection, 'fresh');
    t.same(b.roiScales(), [2, 1, 0.5, 0.25], 'inferred from the flat image');
    await a.dispose();
    await b.dispose();
  });

  t.test('roi_scales "strides": 1/stride from the first call, as mmdetection pools', async (t) => {
    const det = await make({ roi_scales: 'strides' });
    t.same(det.roiScales(), [1 / 4, 1 / 8, 1 / 16, 1 / 32], 'fixed before any batch');
    t.match(det.info().config, /"roi_scales":"strides"/, 'in the resolved options');
    const [d] = await det.predict([get('image_flat')]);
    same(t, d as Detection, 'after');
    det.setRoiScales([]);
    det.setRoiScales([1 / 4, 1 / 8, 1 / 16, 1 / 32]);
    t.throws(() => det.setRoiScales([2, 1, 0.5, 0.25]), /fixed/, 'a fixed model keeps its own');
    await det.dispose();
  });

  t.test('scales it cannot take are refused, naming what is wrong', async (t) => {
    const det = await make();
    t.throws(() => det.setRoiScales([0.25, 0.125]), /needs 4 \(one per pooled level\), got 2/);
    t.throws(() => det.setRoiScales([0.25, 0.3, 1 / 16, 1 / 32]), /scales\[1\] must be a power of two, got 0.3/);
    t.throws(() => det.setRoiScales([0.25, Number.NaN, 1 / 16, 1 / 32]), /scales\[1\] must be a power of two/);
    t.throws(() => det.setRoiScales(['a'] as unknown as number[]), /scales\[0\] must be a number/);
    t.same(det.roiScales(), [], 'unchanged');
    await t.rejects(createDetector({ arch: 'mask_rcnn', options: { ...options, roi_scales: 'fixed' } }), /roi_scales must be "infer" \(torchvision\) or "strides" \(mmdetection\), got "fixed"/);
    const retina = await createDetector({ arch: 'retinanet', options: { backbone: 'resnet18', width_mult: 0.125, num_classes: 3 } });
    t.same(retina.roiScales(), [], 'RetinaNet has no RoI poolers');
    retina.setRoiScales([]);
    t.throws(() => retina.setRoiScales([0.25]), /has no RoI poolers/);
    await retina.dispose();
    await det.dispose();
  });
}
