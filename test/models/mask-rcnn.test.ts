/**
 * Mask R-CNN through the detector contract: builder names, taps p2..p6 and their strides, losses
 * with masks, detections with masks pasted into the original image, training lowering the loss,
 * checkpoints of torchvision's older layout (rpn.head.conv.*, mask_head.mask_fcn{i}.*) loading by
 * name, and errors that name the bad target.
 */
import t from 'tap';
import { decode, fromCompressed } from '../../src/coco/mask.js';
import { createDetector, resolveDetectorConfig } from '../../src/detector.js';
import { maskToRle } from '../../src/predict.js';
import { setSeed } from '../../src/runtime.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

function image(h: number, w: number, seed = 1): Tensor<'float32'> {
  const data = new Float32Array(3 * h * w);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 16807) % 2147483647;
    data[i] = 0.3 * (s / 2147483647);
  }
  return { dtype: 'float32', shape: [3, h, w], data };
}

/** A bright rectangle per box on a dim noisy image, and its mask. */
function scene(h: number, w: number, boxes: number[][], seed: number) {
  const img = image(h, w, seed);
  const masks = new Uint8Array(boxes.length * h * w);
  boxes.forEach(([x1, y1, x2, y2], k) => {
    for (let y = Math.ceil(y1 as number); y < (y2 as number); y++)
      for (let x = Math.ceil(x1 as number); x < (x2 as number); x++) {
        masks[k * h * w + y * w + x] = 1;
        for (let c = 0; c < 3; c++) img.data[c * h * w + y * w + x] = c === k % 3 ? 0.95 : 0.5;
      }
  });
  return { img, masks: tensor('uint8', [boxes.length, h, w], masks) };
}

t.test('two-stage builder names', async (t) => {
  t.same(resolveDetectorConfig({ arch: 'maskrcnn_resnet50_fpn', numClasses: 90, scoreThresh: 0.1 }), {
    name: 'mask_rcnn',
    options: { backbone: 'resnet50', num_classes: 90, box_score_thresh: 0.1 },
  });
  t.equal(resolveDetectorConfig({ arch: 'fasterrcnn_resnet18_fpn' }).name, 'faster_rcnn');
  t.equal(resolveDetectorConfig({ arch: 'mask_rcnn', backbone: 'swin_t' }).options.backbone, 'swin_t');
  t.throws(() => resolveDetectorConfig({ arch: 'maskrcnn_resnet50_fpn', topkCandidates: 10 }), /topkCandidates/);
});

if (haveAddon(t)) {
  const opts = { arch: 'maskrcnn_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 96, normLayer: 'bn' as const, trainableLayers: 5 };
  const boxes = [
    [[6, 8, 30, 40], [34, 20, 70, 52]],
    [[10, 10, 50, 44]],
  ];
  const a = scene(60, 80, boxes[0] as number[][], 1);
  const b = scene(56, 64, boxes[1] as number[][], 2);
  const images = [a.img, b.img];
  const targets = [
    { boxes: boxes[0] as number[][], labels: [0, 2], masks: a.masks },
    { boxes: boxes[1] as number[][], labels: [1], masks: b.masks },
  ];

  t.test('taps, losses, detections with masks', async (t) => {
    const det = await createDetector(opts);
    const info = det.info();
    t.same(info.featureNames, ['p2', 'p3', 'p4', 'p5', 'p6']);
    t.same(info.featureStrides, [4, 8, 16, 32, 64]);
    t.equal(info.featureChannels, 32);
    t.equal(info.numClasses, 3);
    const sd = await det.stateDict();
    const keys = [...sd.keys()];
    for (const k of ['rpn.head.conv.0.0.weight', 'rpn.head.cls_logits.weight', 'roi_heads.box_head.fc6.weight',
      'roi_heads.box_predictor.cls_score.weight', 'roi_heads.mask_head.3.0.weight', 'roi_heads.mask_predictor.conv5_mask.weight',
      'roi_heads.mask_predictor.mask_fcn_logits.bias', 'backbone.fpn.inner_blocks.3.0.weight']) t.ok(keys.includes(k), k);
    t.same(sd.get('roi_heads.box_predictor.cls_score.weight')?.shape, [4, 128], 'num_classes + background rows; 1024 x 0.125');

    await det.train();
    setSeed(3);
    const out = await det.run(images, targets, { losses: true, features: true });
    t.same(Object.keys(out.losses).sort(), ['loss_box_reg', 'loss_classifier', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg']);
    for (const [k, v] of Object.entries(out.losses)) t.ok(Number.isFinite(v) && v >= 0, `${k} = ${v}`);
    // 60x80 -> 64x85, 56x64 -> 64x73, padded to 64x96: P2 16x24, P5 2x3, pool (P6) 1x2
    t.same(out.imageSizes, [[64, 85], [64, 73]]);
    t.same(out.features.p2?.shape, [2, 32, 16, 24]);
    t.same(out.features.p6?.shape, [2, 32, 1, 2]);

    await det.eval();
    const [d0, d1] = await det.predict(images);
    t.ok(d0 && d1);
    if (!d0 || !d1) return;
    const n0 = d0.scores.shape[0] as number;
    t.same(d0.masks?.shape, [n0, 1, 60, 80], 'masks in the original pixels');
    t.same(d1.masks?.shape, [d1.scores.shape[0], 1, 56, 64]);
    const m = toNumbers(d0.masks as Tensor);
    // (bilinear pasting of sigmoids: weights that sum to 1 up to float rounding)
    t.ok(m.every((v) => v >= -1e-6 && v <= 1 + 1e-6), 'probabilities');
    t.ok(toNumbers(d0.labels).every((l) => l >= 0 && l < 3), 'labels are 0..num_classes-1');
    if (n0 > 0) {
      // the RLE of --json / segm evaluation is the mask at >= 0.5
      const rle = maskToRle(d0.masks as Tensor, n0 - 1);
      t.same(rle.size, [60, 80]);
      const bin = decode(fromCompressed(rle));
      const want = m.slice((n0 - 1) * 60 * 80, n0 * 60 * 80).map((v) => (v >= 0.5 ? 1 : 0));
      t.same(Array.from(bin), want, 'RLE decodes to the binarized mask');
    }
  });

  t.test('training lowers the loss on a fixed batch', async (t) => {
    setSeed(11);
    const det = await createDetector(opts);
    const opt = await det.createOptimizer({ type: 'adamw', lr: 2e-3 });
    const first: number[] = [];
    const last: number[] = [];
    for (let i = 0; i < 12; i++) {
      setSeed(100 + (i % 2));
      const r = await det.trainStep(opt, images, targets);
      if (i < 2) first.push(r.loss);
      if (i >= 10) last.push(r.loss);
    }
    const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
    t.ok(mean(last) < 0.7 * mean(first), `loss ${mean(first).toFixed(3)} -> ${mean(last).toFixed(3)}`);
  });

  t.test("torchvision's older key names load", async (t) => {
    setSeed(5);
    const det = await createDetector({ ...opts, normLayer: 'frozen_bn' });
    const sd = await det.stateDict();
    const old = new Map<string, Tensor>();
    for (const [k, v] of sd) {
      let n = k.replace(/^rpn\.head\.conv\.0\.0\./, 'rpn.head.conv.');
      n = n.replace(/^roi_heads\.mask_head\.(\d)\.0\./, (_, i: string) => `roi_heads.mask_head.mask_fcn${Number(i) + 1}.`);
      old.set(n, v);
    }
    t.ok(old.has('rpn.head.conv.weight') && old.has('roi_heads.mask_head.mask_fcn4.bias'));
    const other = await createDetector({ ...opts, normLayer: 'frozen_bn' });
    const rep = await other.loadStateDict(old, { strict: true });
    t.same([rep.missing, rep.unexpected], [[], []]);
    const w = (await other.stateDict()).get('roi_heads.mask_head.0.0.weight');
    t.same(toNumbers(w as Tensor), toNumbers(sd.get('roi_heads.mask_head.0.0.weight') as Tensor));
  });

  t.test('errors name the bad target', async (t) => {
    const det = await createDetector(opts);
    await det.train();
    await t.rejects(det.losses(images, [{ boxes: targets[0]!.boxes, labels: [0, 2] }, targets[1]!]), /targets\[0\]\.masks/);
    await t.rejects(det.losses(images, [{ ...targets[0]!, labels: [0, 3] }, targets[1]!]), /targets\[0\]\.labels must be in 0\.\.2/);
  });
}
