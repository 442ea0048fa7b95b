/**
 * Cascade Mask R-CNN. The cascade RoI heads (models.CascadeRoIHeads) against the golden numbers of
 * scripts/golden/cascade_mask_rcnn.py (an independent reimplementation of mmdetection 2.x's
 * Cascade Mask R-CNN semantics on torch + torchvision ops, fixed FPN maps and fixed proposals):
 * every stage's boxes, class logits and deltas, the final detections and masks, and the training
 * losses, to 1e-4 relative. The detector: builder names, taps, per-stage losses, training lowering
 * the loss, a save/load round trip, `mtpd predict --json` with RLE segmentation, mmdetection's
 * names, and a cascade teacher's p2..p5 feeding a (Faster R-CNN) student's distiller.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import t from 'tap';
import { decode, fromCompressed } from '../../src/coco/mask.js';
import { createDetector, isCascade, resolveDetectorConfig } from '../../src/detector.js';
import { DistillSession } from '../../src/distill/step.js';
import { Module } from '../../src/module.js';
import { setSeed } from '../../src/runtime.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { mmdetTwoStageFromStateDict, twoStageLayout } from '../../src/zoo/mmdet-two-stage.js';
import { runCli } from '../cli-helper.js';
import { haveAddon, tempDir } from '../helpers.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'cascade');

/** max |a - b| / max |b| (0 for two empty tensors). */
function relErr(a: Tensor, b: Tensor): number {
  const x = toNumbers(a), y = toNumbers(b);
  let d = 0, m = 0;
  for (let i = 0; i < y.length; i++) {
    d = Math.max(d, Math.abs((x[i] as number) - (y[i] as number)));
    m = Math.max(m, Math.abs(y[i] as number));
  }
  return y.length === 0 ? 0 : d / Math.max(m, 1e-12);
}

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

t.test('cascade builder names', async (t) => {
  t.same(resolveDetectorConfig({ arch: 'cascade_maskrcnn_resnet50_fpn', numClasses: 80, scoreThresh: 0.1 }), {
    name: 'cascade_mask_rcnn',
    options: { backbone: 'resnet50', num_classes: 80, box_score_thresh: 0.1 },
  });
  t.equal(resolveDetectorConfig({ arch: 'cascade_rcnn_swin_t_fpn' }).name, 'cascade_rcnn');
  t.equal(resolveDetectorConfig({ arch: 'cascade_mask_rcnn', backbone: 'resnext50_32x4d' }).options.backbone, 'resnext50_32x4d');
  t.ok(isCascade('cascade_maskrcnn_resnet18_fpn') && isCascade('cascade_rcnn') && !isCascade('maskrcnn_resnet18_fpn'));
});

if (haveAddon(t)) {
  t.test("mmdetection's cascade names map onto mtpd's", async (t) => {
    const mm = await loadSafetensors(join(fixtures, 'cascade_heads.mmdet.safetensors'));
    const ours = await loadSafetensors(join(fixtures, 'cascade_heads.weights.safetensors'));
    const layout = twoStageLayout(mm.tensors, 'fixture');
    t.same(layout, { stages: 3, masks: true, numClasses: 3, classAgnostic: true });
    // a whole checkpoint needs a backbone; the heads' renaming is what is checked here
    const sd = new Map(mm.tensors);
    const body = await createDetector({ arch: 'cascade_maskrcnn_resnet50_fpn', numClasses: 3, widthMult: 0.0625 });
    for (const [k, v] of await body.stateDict()) if (k.startsWith('backbone.body.')) sd.set(`backbone.${k.slice('backbone.body.'.length)}`, v);
    const ck = mmdetTwoStageFromStateDict(sd, ['a', 'b', 'c'], 'fixture');
    t.equal(ck.arch, 'cascade_maskrcnn_resnet50_fpn');
    t.same(ck.options, { class_agnostic: true, anchor_style: 'mmdet', mask_paste: 'mmdet', width_mult: 0.0625 });
    t.same(ck.unmapped.filter((k) => !k.startsWith('backbone.')), []);
    for (const [k, v] of ours.tensors) {
      const got = ck.tensors.get(`roi_heads.${k}`);
      t.ok(got, `roi_heads.${k}`);
      if (got) t.same([got.shape, toNumbers(got)], [v.shape, toNumbers(v)], k);
    }
  });

  t.test('cascade RoI heads equal the golden reference', async (t) => {
    const io = await loadSafetensors(join(fixtures, 'cascade_heads.io.safetensors'));
    const g = (k: string) => {
      const v = io.tensors.get(k);
      if (!v) throw new Error(`fixture has no ${k}`);
      return v;
    };
    const config = JSON.parse(io.metadata.config as string) as Record<string, unknown>;
    const heads = await Module.create('models.CascadeRoIHeads', config);
    const rep = await heads.loadWeights(join(fixtures, 'cascade_heads.weights.safetensors'));
    t.same([rep.missing, rep.unexpected], [[], []], 'every weight by name');
    const inputs = ['p2', 'p3', 'p4', 'p5', 'proposals', 'image_size'].map(g);

    await heads.eval();
    const out = await heads.forward(inputs);
    const names = [0, 1, 2].flatMap((s) => [`s${s}.rois`, `s${s}.class_logits`, `s${s}.box_deltas`]).concat(['det.boxes', 'det.scores', 'det.labels', 'det.masks']);
    t.equal(out.length, names.length);
    names.forEach((n, i) => {
      const want = g(n);
      const got = out[i] as Tensor;
      t.same(got.shape, want.shape, `${n} shape`);
      if (n === 'det.labels') t.same(toNumbers(got), toNumbers(want), n);
      else t.ok(relErr(got, want) < 1e-4, `${n}: rel err ${relErr(got, want).toExponential(2)}`);
    });
    t.ok((g('det.scores').shape[0] as number) > 10, 'the fixture has detections to compare');

    await heads.train();
    const losses = await heads.forward([...inputs, g('gt_boxes'), g('gt_labels'), g('gt_masks')]);
    const lossNames = [...io.tensors.keys()].filter((k) => k.startsWith('loss.')).sort();
    t.equal(lossNames.length, 9, 'three stages x classifier, box, mask');
    t.equal(losses.length, lossNames.length);
    lossNames.forEach((n, i) => t.ok(relErr(losses[i] as Tensor, g(n)) < 1e-4, `${n}: ${toNumbers(losses[i] as Tensor)[0]} vs ${toNumbers(g(n))[0]}`));
  });

  const opts = { arch: 'cascade_maskrcnn_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 96, normLayer: 'bn' as const, trainableLayers: 5 };
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

  t.test('taps, per-stage losses, detections with masks, options', async (t) => {
    const det = await createDetector(opts);
    const info = det.info();
    t.same(info.featureNames, ['p2', 'p3', 'p4', 'p5', 'p6']);
    t.same(info.featureStrides, [4, 8, 16, 32, 64]);
    const sd = await det.stateDict();
    for (const k of ['rpn.head.conv.0.0.weight', 'roi_heads.box_head.2.fc6.weight', 'roi_heads.box_predictor.0.cls_score.weight',
      'roi_heads.mask_head.2.3.0.weight', 'roi_heads.mask_predictor.1.mask_fcn_logits.weight']) t.ok(sd.has(k), k);
    t.same(sd.get('roi_heads.box_predictor.1.bbox_pred.weight')?.shape, [4, 128], 'class-agnostic regression');
    t.same(sd.get('roi_heads.mask_predictor.0.mask_fcn_logits.weight')?.shape, [3, 32, 1, 1], 'mask logits per real class');
    const cfg = det.nativeConfig();
    t.same([cfg.stage_iou_thresholds, cfg.stage_loss_weights, cfg.roi_aligned, cfg.roi_sampling_ratio], [[0.5, 0.6, 0.7], [1, 0.5, 0.25], true, 0]);

    await det.train();
    setSeed(3);
    const out = await det.run(images, targets, { losses: true });
    const want = ['loss_objectness', 'loss_rpn_box_reg', ...[0, 1, 2].flatMap((s) => [`s${s}.loss_box_reg`, `s${s}.loss_classifier`, `s${s}.loss_mask`])];
    t.same(Object.keys(out.losses).sort(), want.sort());
    for (const [k, v] of Object.entries(out.losses)) t.ok(Number.isFinite(v) && v >= 0, `${k} = ${v}`);

    await det.eval();
    const [d0] = await det.predict(images);
    t.ok(d0);
    if (!d0) return;
    const n0 = d0.scores.shape[0] as number;
    t.ok(n0 > 0, 'an untrained cascade still scores above 0.05');
    t.same(d0.masks?.shape, [n0, 1, 60, 80], 'masks in the original pixels');
    t.ok(toNumbers(d0.labels).every((l) => l >= 0 && l < 3), 'labels are 0..num_classes-1');

    await t.rejects(createDetector({ ...opts, options: { bbox_reg_weights: [1, 1, 1, 1] } }), /"bbox_reg_weights" is per stage.*stage_bbox_reg_weights/);
    await t.rejects(createDetector({ ...opts, options: { stage_iou_thresholds: [0.5, 0.6], stage_loss_weights: [1, 0.5] } }), /stage_bbox_reg_weights/);
    const two = await createDetector({ ...opts, options: { stage_iou_thresholds: [0.5, 0.6], stage_loss_weights: [1, 0.5], stage_bbox_reg_weights: [[10, 10, 5, 5], [20, 20, 10, 10]], mask_per_stage: false } });
    const tsd = await two.stateDict();
    t.ok(tsd.has('roi_heads.box_head.1.fc6.weight') && !tsd.has('roi_heads.box_head.2.fc6.weight') && !tsd.has('roi_heads.mask_head.1.0.0.weight'), 'two stages, one mask head');
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

  t.test('save / load round trip and predict --json with segmentation', async (t) => {
    const dir = tempDir(t);
    setSeed(21);
    const det = await createDetector(opts);
    await det.eval();
    const weights = join(dir, 'cascade.safetensors');
    await det.saveWeights(weights);
    const back = await createDetector(opts);
    const rep = await back.loadWeights(weights);
    t.same([rep.missing, rep.unexpected], [[], []]);
    const [x] = await det.predict([a.img]);
    const [y] = await back.predict([a.img]);
    t.same(toNumbers(y!.boxes), toNumbers(x!.boxes), 'the same detections after the round trip');
    t.same(toNumbers(y!.scores), toNumbers(x!.scores));

    const png = join(dir, 'a.png');
    await sharp({ create: { width: 80, height: 60, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toFile(png);
    const r = runCli(['predict', '--arch', 'cascade_maskrcnn_resnet18_fpn', '--num-classes', '3', '--weights', weights, '--width-mult', '0.125',
      '--min-size', '64', '--max-size', '96', '--json', png]);
    t.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { bbox: number[]; score: number; category_id: number; segmentation?: { size: number[]; counts: string } }[];
    t.ok(rows.length > 0, 'detections printed');
    for (const row of rows.slice(0, 5)) {
      t.equal(row.bbox.length, 4);
      t.same(row.segmentation?.size, [60, 80], 'RLE in the original pixels');
      if (row.segmentation) t.equal(decode(fromCompressed(row.segmentation as never)).length, 60 * 80);
    }
  });

  t.test("a cascade teacher's p2..p5 feed a two-stage student's distiller", async (t) => {
    setSeed(31);
    const teacher = await createDetector({ ...opts, widthMult: 0.25 });
    const student = await createDetector({ ...opts, arch: 'fasterrcnn_resnet18_fpn' });
    const session = await DistillSession.create(
      student,
      [{ name: 'cascade', model: teacher, distiller: { taps: ['p2', 'p3', 'p4', 'p5'], losses: [{ type: 'mse' }] } }],
      { optimizer: { type: 'sgd', lr: 0.02, momentum: 0, maxGradNorm: 5 } },
    );
    const d: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await session.step({ images, targets: targets.map(({ boxes, labels }) => ({ boxes, labels })) });
      const keys = Object.keys(r.losses).filter((k) => k.startsWith('distill.'));
      if (i === 0) t.same(['p2', 'p3', 'p4', 'p5'].map((p) => keys.some((k) => k.includes(p))), [true, true, true, true], keys.join(', '));
      d.push(keys.reduce((s, k) => s + (r.losses[k] as number), 0));
    }
    t.ok(d.every((v) => Number.isFinite(v) && v > 0), `distillation losses ${d.map((v) => v.toFixed(4)).join(', ')}`);
    t.ok((d[3] as number) < (d[0] as number), 'the distillation loss falls');
  });
}
