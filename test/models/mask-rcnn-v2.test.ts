/**
 * torchvision's `_v2` two-stage layout (maskrcnn_resnet50_fpn_v2, fasterrcnn_resnet50_fpn_v2; here
 * over any ResNet): builder names and the options they set, torchvision's parameter names
 * (Conv2dNormActivation FPN blocks with BatchNorm2d, RPNHead conv_depth 2, FastRCNNConvFCHead,
 * MaskRCNNHeads with BatchNorm2d), `mtpd import` of a torchvision v2 (and v1) state dict saved as
 * .pth and `mtpd export` writing it back name for name and byte for byte, training steps through
 * the BatchNorm heads, and errors that name the option. Numerics against torchvision are in
 * test/models/parity.test.ts (the *_v2_small fixtures).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createDetector, resolveDetectorConfig, TWO_STAGE_V2_OPTIONS } from '../../src/detector.js';
import { setSeed } from '../../src/runtime.js';
import { tensor, type Tensor } from '../../src/tensor.js';
import { haveAddon, tempDir } from '../helpers.js';

const fixtures = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const v2 = { norm_layer: 'bn', fpn_norm: 'bn', rpn_conv_depth: 2, box_head: 'conv_fc', head_norm: 'bn' };

t.test('_v2 builder names', async (t) => {
  t.same(TWO_STAGE_V2_OPTIONS, v2);
  t.same(resolveDetectorConfig({ arch: 'maskrcnn_resnet50_fpn_v2', numClasses: 90 }), {
    name: 'mask_rcnn',
    options: { backbone: 'resnet50', ...v2, num_classes: 90 },
  });
  t.same(resolveDetectorConfig({ arch: 'fasterrcnn_resnet18_fpn_v2', normLayer: 'frozen_bn' }), {
    name: 'faster_rcnn',
    options: { backbone: 'resnet18', ...v2, norm_layer: 'frozen_bn' },
  }, 'the config overrides the layout (normLayer)');
  t.same(resolveDetectorConfig({ arch: 'maskrcnn_resnet50_fpn' }).options, { backbone: 'resnet50' }, 'v1 unchanged');
  t.throws(() => resolveDetectorConfig({ arch: 'cascade_maskrcnn_resnet50_fpn_v2' }), /not for the cascades/);
});

if (haveAddon(t)) {
  const opts = { arch: 'maskrcnn_resnet18_fpn_v2', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 96, trainableLayers: 5 };

  t.test("torchvision's v2 names and shapes", async (t) => {
    const det = await createDetector(opts);
    const sd = await det.stateDict();
    const has = (k: string) => sd.has(k);
    for (const k of ['backbone.body.bn1.num_batches_tracked', 'backbone.fpn.inner_blocks.0.0.weight', 'backbone.fpn.inner_blocks.0.1.running_var',
      'backbone.fpn.layer_blocks.3.1.weight', 'rpn.head.conv.1.0.weight', 'rpn.head.conv.1.0.bias', 'roi_heads.box_head.0.0.weight',
      'roi_heads.box_head.3.1.running_mean', 'roi_heads.box_head.5.weight', 'roi_heads.box_predictor.cls_score.weight',
      'roi_heads.mask_head.3.0.weight', 'roi_heads.mask_head.3.1.bias', 'roi_heads.mask_predictor.mask_fcn_logits.weight']) t.ok(has(k), k);
    for (const k of ['backbone.fpn.inner_blocks.0.0.bias', 'roi_heads.box_head.fc6.weight', 'roi_heads.box_head.0.0.bias', 'roi_heads.mask_head.0.0.bias', 'rpn.head.conv.2.0.weight']) t.notOk(has(k), `no ${k}`);
    // 256 x 0.125 = 32 channels; box head convs 32, FC 1024 x 0.125 = 128 from 32 x 7 x 7
    t.same(sd.get('roi_heads.box_head.0.0.weight')?.shape, [32, 32, 3, 3]);
    t.same(sd.get('roi_heads.box_head.5.weight')?.shape, [128, 32 * 49]);
    t.same(sd.get('roi_heads.box_predictor.cls_score.weight')?.shape, [4, 128]);
    const cfg = det.nativeConfig();
    t.match(cfg, { norm_layer: 'bn', fpn_norm: 'bn', rpn_conv_depth: 2, box_head: 'conv_fc', box_conv_layers: [256, 256, 256, 256], head_norm: 'bn' });
    const faster = await createDetector({ ...opts, arch: 'fasterrcnn_resnet18_fpn_v2' });
    const fsd = await faster.stateDict();
    t.ok(fsd.has('roi_heads.box_head.5.bias') && ![...fsd.keys()].some((k) => k.includes('mask_')), 'Faster R-CNN v2: the box head, no mask branch');
    const v1 = (await createDetector({ ...opts, arch: 'maskrcnn_resnet18_fpn' })).nativeConfig();
    t.notOk('box_head' in v1 || 'fpn_norm' in v1 || 'head_norm' in v1, "v1's config has no v2 keys");
  });

  t.test('training steps through the BatchNorm heads', async (t) => {
    setSeed(7);
    const det = await createDetector(opts);
    const h = 60, w = 80;
    const data = new Float32Array(3 * h * w).map((_, i) => ((i * 7919) % 997) / 997);
    const img: Tensor = { dtype: 'float32', shape: [3, h, w], data };
    const masks = new Uint8Array(2 * h * w);
    for (let y = 10; y < 40; y++) for (let x = 8; x < 30; x++) masks[y * w + x] = 1;
    for (let y = 20; y < 52; y++) for (let x = 36; x < 72; x++) masks[h * w + y * w + x] = 1;
    const target = { boxes: [[8, 10, 30, 40], [36, 20, 72, 52]], labels: [0, 2], masks: tensor('uint8', [2, h, w], masks) };
    const opt = await det.createOptimizer({ type: 'adamw', lr: 2e-3 });
    const before = (await det.parameters()).length;
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) {
      setSeed(50);  // the same samplers' draws every step
      const r = await det.trainStep(opt, [img, img], [target, target]);
      t.same(Object.keys(r.losses).sort(), ['loss_box_reg', 'loss_classifier', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg']);
      t.ok(Number.isFinite(r.loss) && Number.isFinite(r.gradNorm) && r.gradNorm > 0, `step ${i}: loss ${r.loss.toFixed(4)}, grad norm ${r.gradNorm.toFixed(4)}`);
      losses.push(r.loss);
    }
    t.equal((await det.parameters()).length, before);
    t.ok((losses[3] as number) < (losses[0] as number), `loss ${losses[0]} -> ${losses[3]}`);
  });

  for (const [name, arch, numClasses, widthMult] of [
    ['maskrcnn_resnet50_v2_small', 'maskrcnn_resnet50_fpn_v2', 3, 0.0625],
    ['fasterrcnn_resnet50_v2_small', 'fasterrcnn_resnet50_fpn_v2', 4, 0.0625],
    ['maskrcnn_resnet18_v2_small', 'maskrcnn_resnet18_fpn_v2', 2, 0.125],
    ['maskrcnn_resnet18_small', 'maskrcnn_resnet18_fpn', 4, 0.0625],
  ] as const) {
    t.test(`mtpd import of a torchvision ${arch} state dict (.pth), mtpd export back`, async (t) => {
      const { importCheckpoint } = await import('../../src/zoo/import.js');
      const { exportWeights } = await import('../../src/export.js');
      const { readWeights } = await import('../../src/weights/index.js');
      const { savePth } = await import('../../src/weights/pth-write.js');
      const dir = tempDir(t);
      const tv = await readWeights(join(fixtures, `${name}.weights.safetensors`));
      const pth = join(dir, `${name}.pth`);
      await savePth(pth, tv);
      const imported = join(dir, `${name}.safetensors`);
      const r = await importCheckpoint(pth, imported);
      t.match(r, { source: 'torchvision', arch, numClasses, classes: 'dataset', options: { width_mult: widthMult }, missing: [], unexpected: [] });
      t.equal(r.loaded, tv.size);
      const back = join(dir, `${name}.back.pth`);
      const e = await exportWeights({ weights: imported, out: back });
      t.match(e, { arch, numClasses, widthMult, format: 'pth' });
      const out = await readWeights(back);
      t.same([...out.keys()].sort(), [...tv.keys()].sort(), "exactly torchvision's names");
      let same = 0;
      for (const [k, v] of tv) {
        const o = out.get(k);
        if (o && o.dtype === v.dtype && Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength).equals(Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength))) same++;
        else t.fail(`${k} differs`);
      }
      t.equal(same, tv.size, 'every tensor byte for byte');
    });
  }

  t.test('errors name the option', async (t) => {
    await t.rejects(createDetector({ ...opts, options: { box_head: 'mlp' } }), /box_head must be "two_mlp" or "conv_fc", got "mlp"/);
    await t.rejects(createDetector({ ...opts, options: { head_norm: 'gn' } }), /head_norm must be "none" or "bn", got "gn"/);
    await t.rejects(createDetector({ ...opts, options: { fpn_norm: 'gn' } }), /fpn_norm must be "none" or "bn", got "gn"/);
    await t.rejects(createDetector({ arch: 'cascade_maskrcnn_resnet18_fpn', numClasses: 3, widthMult: 0.125, options: { head_norm: 'bn' } }), /option "head_norm" is not supported/);
  });
}
