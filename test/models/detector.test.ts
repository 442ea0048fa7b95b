/** The detector API: builder names, shapes of every output, state dict names, errors naming the bad argument. */
import t from 'tap';
import { createDetector, resolveDetectorConfig } from '../../src/detector.js';
import { tensor, toNumbers } from '../../src/tensor.js';
import { haveAddon, tempDir } from '../helpers.js';

function maxAbsDiff(a: number[], b: number[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function image(h: number, w: number, seed = 1) {
  const data = new Float32Array(3 * h * w);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 16807) % 2147483647;
    data[i] = s / 2147483647;
  }
  return { dtype: 'float32' as const, shape: [3, h, w], data };
}

t.test('builder names map onto the retinanet options', async (t) => {
  t.same(resolveDetectorConfig({ arch: 'retinanet_resnet50_fpn', numClasses: 91 }), {
    name: 'retinanet',
    options: { backbone: 'resnet50', num_classes: 91 },
  });
  t.same(resolveDetectorConfig({ arch: 'retinanet_resnet50_fpn_v2' }).options, {
    backbone: 'resnet50',
    extra_blocks: 'c5',
    head_norm: 'gn',
    box_loss: 'giou',
  });
  t.equal(resolveDetectorConfig({ arch: 'retinanet_swin_t_fpn' }).options.backbone, 'swin_t');
  t.equal(resolveDetectorConfig({ arch: 'retinanet_resnext101_64x4d_fpn', minSize: 600 }).options.min_size, 600);
  t.throws(() => resolveDetectorConfig({ arch: 'fcos_resnet50_fpn' }), /unknown detector arch "fcos_resnet50_fpn"/);
  t.throws(() => resolveDetectorConfig({ arch: 'retinanet_resnet18_fpn', backbone: 'resnet50' }), /disagree/);
});

if (haveAddon(t)) {
  t.test('RetinaNet R18 (narrow): taps, losses, detections, state dict names', async (t) => {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 4, widthMult: 0.125, minSize: 96, maxSize: 128 });
    const info = det.info();
    t.same(info.featureNames, ['p3', 'p4', 'p5', 'p6', 'p7']);
    t.same(info.featureStrides, [8, 16, 32, 64, 128]);
    t.equal(info.featureChannels, 32);
    t.equal(info.numClasses, 4);
    t.ok(info.trainableParameters < info.parameters, 'trainable_layers=3 freezes conv1 and layer1');

    const images = [image(80, 100), image(120, 90, 2)];
    const targets = [
      { boxes: [[10, 12, 50, 60], [40, 30, 95, 78]], labels: [1, 3] },
      { boxes: tensor('float32', [1, 4], [5, 5, 60, 100]), labels: tensor('int64', [1], [0]) },
    ];
    await det.eval();
    const out = await det.run(images, targets, { losses: true, features: true, detections: true });
    // 80x100 -> scale min(96/80, 128/100) = 1.2 -> 96x120; 120x90 -> min(96/90, 128/120) -> 128x96 (floor)
    t.same(out.imageSizes, [[96, 120], [128, 96]]);
    t.same(out.originalSizes, [[80, 100], [120, 90]]);
    t.same(out.batchSize, [128, 128]);
    t.same(out.features.p3?.shape, [2, 32, 16, 16]);
    t.same(out.features.p7?.shape, [2, 32, 1, 1]);
    t.same(Object.keys(out.losses).sort(), ['bbox_regression', 'classification']);
    for (const v of Object.values(out.losses)) t.ok(Number.isFinite(v) && v > 0);
    t.equal(out.detections.length, 2);
    for (const [i, d] of out.detections.entries()) {
      const n = d.scores.shape[0] as number;
      t.same(d.boxes.shape, [n, 4]);
      t.equal(d.labels.dtype, 'int64');
      const b = toNumbers(d.boxes);
      const [h, w] = out.originalSizes[i] as [number, number];
      t.ok(b.every((v, j) => v >= 0 && v <= (j % 2 === 0 ? w : h) + 1e-3), 'boxes inside the original image');
    }

    const sd = await det.stateDict();
    for (const k of [
      'backbone.body.conv1.weight',
      'backbone.body.bn1.running_var',
      'backbone.body.layer2.0.downsample.0.weight',
      'backbone.body.layer2.0.downsample.1.weight',
      'backbone.fpn.inner_blocks.0.0.weight',
      'backbone.fpn.layer_blocks.2.0.bias',
      'backbone.fpn.extra_blocks.p6.weight',
      'backbone.fpn.extra_blocks.p7.bias',
      'head.classification_head.conv.0.0.weight',
      'head.classification_head.cls_logits.bias',
      'head.regression_head.conv.3.0.weight',
      'head.regression_head.bbox_reg.weight',
    ])
      t.ok(sd.has(k), k);
    t.same(sd.get('head.classification_head.cls_logits.weight')?.shape, [9 * 4, 32, 3, 3]);
    // prior probability 0.01
    t.ok(Math.abs((toNumbers(sd.get('head.classification_head.cls_logits.bias')!)[0] as number) + Math.log(99)) < 1e-5);

    // num_batches_tracked (BatchNorm checkpoints) is accepted by FrozenBatchNorm2d
    const withNbt = new Map(sd);
    withNbt.set('backbone.body.bn1.num_batches_tracked', tensor('int64', [], [0]));
    const rep = await det.loadStateDict(withNbt);
    t.same(rep.unexpected, []);

    // save -> load round trip
    const dir = tempDir(t);
    await det.saveWeights(`${dir}/m.safetensors`);
    const det2 = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 4, widthMult: 0.125, minSize: 96, maxSize: 128 });
    await det2.loadWeights(`${dir}/m.safetensors`);
    const f1 = await det.features(images);
    const f2 = await det2.features(images);
    t.equal(maxAbsDiff(toNumbers(f1.p5!), toNumbers(f2.p5!)), 0, 'same weights, same features');
  });

  t.test('features with their layout: each image\'s resized size, real strides, the eval resize rule', async (t) => {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 100, maxSize: 150 });
    await det.eval();
    // 120x90 -> 133x100 (short side 100); 60x200 -> 45x150 (long side capped at 150): padded 160x160.
    const images = [image(120, 90), image(60, 200, 2)];
    const f = await det.features(images, { layout: true });
    t.same(f.imageSizes, [[133, 100], [45, 150]]);
    t.same(f.strides, { p3: 8, p4: 16, p5: 32, p6: 64, p7: 128 });
    t.same(det.featureStrides, f.strides);
    t.same(det.evalImageSizes([[120, 90], [60, 200]]), f.imageSizes, 'the resize rule alone gives the run\'s sizes');
    // P6/P7 are ceil-sized (160 / 64 -> 3, 160 / 128 -> 2): strides are not padded size / map size.
    t.same(f.maps.p6?.shape, [2, 32, 3, 3]);
    t.same(f.maps.p7?.shape, [2, 32, 2, 2]);
    const plain = await det.features(images);
    t.same(Object.keys(plain), Object.keys(f.maps), 'without options: the maps alone, as before');
    t.throws(() => det.evalImageSizes([[0, 5]]), /sizes\[0\]\[0\] must be a positive integer/);
  });

  t.test('Swin-T and ResNeXt backbones build with torchvision names', async (t) => {
    const swin = await createDetector({ arch: 'retinanet_swin_t_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 96 });
    const sd = await swin.stateDict();
    for (const k of [
      'backbone.body.features.0.0.weight',
      'backbone.body.features.0.2.weight',
      'backbone.body.features.1.0.attn.relative_position_bias_table',
      'backbone.body.features.1.1.attn.relative_position_index',
      'backbone.body.features.1.1.mlp.0.weight',
      'backbone.body.features.1.1.mlp.3.bias',
      'backbone.body.features.2.reduction.weight',
      'backbone.body.features.5.5.norm2.weight',
      'backbone.body.features.7.1.attn.qkv.weight',
    ])
      t.ok(sd.has(k), k);
    const f = await swin.features([image(64, 80)]);
    t.same(Object.keys(f), ['p3', 'p4', 'p5', 'p6', 'p7']);
    const x = await createDetector({ arch: 'retinanet_resnext50_32x4d_fpn', numClasses: 3, widthMult: 0.25, minSize: 64, maxSize: 64 });
    const xsd = await x.stateDict();
    // ResNeXt 32x4d at width 0.25: layer1 bottleneck width int(16 * 4 / 64) * 32 = 32, grouped conv2
    t.same(xsd.get('backbone.body.layer1.0.conv2.weight')?.shape, [32, 1, 3, 3]);
  });

  t.test('bad input names the argument', async (t) => {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 });
    await t.rejects(det.run([{ dtype: 'float32', shape: [1, 8, 8], data: new Float32Array(64) }], null, { features: true }), {
      code: 'ERR_MTPD_SHAPE',
      message: /images\[0\] of shape \(3, H, W\)/,
    });
    await t.rejects(det.run([image(32, 32)], [{ boxes: [[10, 10, 5, 20]], labels: [0] }], { losses: true }), {
      message: /targets\[0\]\.boxes\[0\] = \[10, 10, 5, 20\] is degenerate/,
    });
    await t.rejects(det.run([image(32, 32)], [{ boxes: [[1, 1, 20, 20]], labels: [5] }], { losses: true }), {
      message: /labels must be in 0\.\.1/,
    });
    await t.rejects(createDetector({ arch: 'retinanet_resnet7_fpn', numClasses: 2 }), { code: 'ERR_MTPD_ARGUMENT', message: /unknown backbone "resnet7"/ });
    await t.rejects(createDetector({ arch: 'retinanet', options: { backbone: 'resnet18', nms_thres: 0.3 } }), /unknown option "nms_thres"/);
    // The backbone and transform options read the same way, with the same checks, for both detector kinds.
    for (const [arch, what] of [['retinanet_resnet18_fpn', 'retinanet'], ['maskrcnn_resnet18_fpn', 'mask_rcnn']] as const) {
      await t.rejects(createDetector({ arch: arch.replace('resnet18', 'resnet7'), numClasses: 2 }), { code: 'ERR_MTPD_ARGUMENT', message: new RegExp(`^${what}: unknown backbone "resnet7" \\(known: .*resnet18`) });
      await t.rejects(createDetector({ arch, numClasses: 2, widthMult: 0 }), { code: 'ERR_MTPD_ARGUMENT', message: `${what}: width_mult must be positive, got 0` });
      await t.rejects(createDetector({ arch, numClasses: 2, options: { fpn_channels: 0 } }), { code: 'ERR_MTPD_ARGUMENT', message: `${what}: fpn_channels must be positive, got 0` });
      await t.rejects(createDetector({ arch, numClasses: 2, options: { image_mean: [0.5, 0.5] } }), { code: 'ERR_MTPD_ARGUMENT', message: `${what}: option "image_mean" needs 3 numbers (one per channel), got 2` });
      await t.rejects(createDetector({ arch, numClasses: 2, trainableLayers: 6 }), { code: 'ERR_MTPD_ARGUMENT', message: `${what}: trainable_layers must be in 0..5, got 6` });
    }
    await t.rejects(det.createOptimizer({ type: 'adam' as 'sgd' }), /optimizer type/);
  });

  t.test('optimizer groups and learning rate', async (t) => {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 });
    const opt = await det.createOptimizer({
      type: 'adamw',
      lr: 1e-3,
      groups: [
        { name: 'backbone', prefix: ['backbone.body.'], lrMult: 0.1 },
        { name: 'no_decay', suffix: ['.bias'], weightDecay: 0 },
      ],
    });
    const info = opt.info();
    t.same(info.groups.map((g) => g.name), ['backbone', 'no_decay', 'default']);
    t.equal(info.groups.reduce((a, g) => a + g.numel, 0), det.info().trainableParameters, 'exactly the trainable parameters');
    opt.setLr(5e-4);
    t.equal(opt.lr, 5e-4);
    const before = toNumbers((await det.stateDict()).get('backbone.body.layer4.0.conv1.weight')!);
    const frozenBefore = toNumbers((await det.stateDict()).get('backbone.body.layer1.0.conv1.weight')!);
    const r = await det.trainStep(opt, [image(64, 64)], [{ boxes: [[8, 8, 40, 48]], labels: [1] }]);
    t.ok(Number.isFinite(r.gradNorm) && r.gradNorm > 0);
    t.equal(r.lr, 5e-4);
    const sd = await det.stateDict();
    t.ok(maxAbsDiff(toNumbers(sd.get('backbone.body.layer4.0.conv1.weight')!), before) > 0, 'trainable layer4 moved');
    t.equal(maxAbsDiff(toNumbers(sd.get('backbone.body.layer1.0.conv1.weight')!), frozenBefore), 0, 'frozen layer1 did not');
    t.equal(det.info().training, true, 'trainStep leaves the model in train mode');
  });

  t.test('optimizer state: saved by name, restored exactly, bad states refused by key', async (t) => {
    const make = () => createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 });
    const batch = [image(64, 64)];
    const targets = [{ boxes: [[8, 8, 40, 48]], labels: [1] }];
    for (const type of ['sgd', 'adamw'] as const) {
      const a = await make();
      const oa = await a.createOptimizer({ type, lr: 0.01 });
      t.same([...(await oa.stateDict()).keys()], ['steps'], `${type}: no state before the first step`);
      await a.trainStep(oa, batch, targets);
      const state = await oa.stateDict();
      const keys = [...state.keys()];
      const suffixes = type === 'sgd' ? ['.momentum_buffer'] : ['.exp_avg', '.exp_avg_sq', '.step'];
      for (const s of suffixes) t.ok(keys.some((k) => k === `backbone.body.layer4.0.conv1.weight${s}`), `${type}: ${s} by parameter name`);
      t.same(toNumbers(state.get('steps')!), [1]);
      // A copy of the model and its optimizer state takes the same next step.
      const b = await make();
      await b.loadStateDict(await a.stateDict());
      const ob = await b.createOptimizer({ type, lr: 0.01 });
      await ob.loadStateDict(state);
      await a.trainStep(oa, batch, targets);
      await b.trainStep(ob, batch, targets);
      const wa = toNumbers((await a.stateDict()).get('head.classification_head.cls_logits.weight')!);
      const wb = toNumbers((await b.stateDict()).get('head.classification_head.cls_logits.weight')!);
      t.equal(maxAbsDiff(wa, wb), 0, `${type}: the restored optimizer takes the identical step`);
      t.equal(ob.info().steps, 2);
      // Without the state the next step differs (momentum / moments matter).
      const c = await make();
      await c.loadStateDict(await b.stateDict());
      const oc = await c.createOptimizer({ type, lr: 0.01 });
      await c.trainStep(oc, batch, targets);
      await b.trainStep(ob, batch, targets);
      t.ok(maxAbsDiff(toNumbers((await c.stateDict()).get('head.classification_head.cls_logits.weight')!), toNumbers((await b.stateDict()).get('head.classification_head.cls_logits.weight')!)) > 0, `${type}: a fresh optimizer would not`);
    }
    const d = await make();
    const sgd = await d.createOptimizer({ type: 'sgd' });
    const adam = await d.createOptimizer({ type: 'adamw' });
    await d.trainStep(adam, batch, targets);
    const adamState = await adam.stateDict();
    await t.rejects(sgd.loadStateDict(adamState), { message: /belongs to adamw but this optimizer is sgd/ });
    const w = 'backbone.body.layer4.0.conv1.weight';
    await t.rejects(adam.loadStateDict(new Map([['nope.weight.exp_avg', adamState.get(`${w}.exp_avg`)!]])), { message: /"nope\.weight\.exp_avg" names no trainable parameter "nope\.weight"/ });
    await t.rejects(adam.loadStateDict(new Map([[`${w}.exp_avg`, tensor('float32', [2], [0, 0])]])), { message: /has shape \[2\], the parameter/ });
    await t.rejects(adam.loadStateDict(new Map([[`${w}.exp_avg`, adamState.get(`${w}.exp_avg`)!]])), { message: /incomplete/ });
    await t.rejects(adam.loadStateDict(new Map([['amp.scale', tensor('float32', [1], [1])]])), { message: /runs without amp/ });
    t.same(toNumbers((await adam.stateDict()).get(`${w}.step`)!), [1], 'a refused state changes nothing');
  });
}
