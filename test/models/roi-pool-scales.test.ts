/**
 * MultiScaleRoIAlign keeps the scales of its first call, as torchvision 0.14's instance keeps
 * self.scales: a very flat image (12 x 200, resized 5 x 96, padded 32 x 96) infers scales
 * 2 .. 0.25 from itself, but after a usual image torchvision pools it at 1/4 .. 1/32. Golden
 * detections, masks and losses from scripts/golden/roi_pool_scales.py on the
 * maskrcnn_resnet18_small fixture's weights.
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
  const make = async () => {
    const det = await createDetector({ arch: 'mask_rcnn', options });
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
}
