/**
 * `mtpd import` of an mmdetection RetinaNet state dict (mmdetection's names: backbone.*, neck.*,
 * bbox_head.*): the architecture, width and classes are read from the tensors and meta, every
 * tensor lands where torchvision's names put it, and mmdetection's architecture options
 * (extra_blocks c5_norelu, anchor_style mmdet) are what the model is built with.
 */
import { join } from 'node:path';
import t from 'tap';
import type { StateDict } from '../../src/weights/safetensors.js';
import { haveAddon, tempDir } from '../helpers.js';

/** mtpd (torchvision) names -> mmdetection's, the inverse of src/zoo/mmdet.ts. */
function toMmdet(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of sd) {
    let m: RegExpExecArray | null;
    let to: string;
    if (k.startsWith('backbone.body.')) to = `backbone.${k.slice('backbone.body.'.length)}`;
    else if ((m = /^backbone\.fpn\.inner_blocks\.(\d)\.0\.(\w+)$/.exec(k))) to = `neck.lateral_convs.${m[1]}.conv.${m[2]}`;
    else if ((m = /^backbone\.fpn\.layer_blocks\.(\d)\.0\.(\w+)$/.exec(k))) to = `neck.fpn_convs.${m[1]}.conv.${m[2]}`;
    else if ((m = /^backbone\.fpn\.extra_blocks\.p([67])\.(\w+)$/.exec(k))) to = `neck.fpn_convs.${Number(m[1]) - 3}.conv.${m[2]}`;
    else if ((m = /^head\.classification_head\.conv\.(\d)\.0\.(\w+)$/.exec(k))) to = `bbox_head.cls_convs.${m[1]}.conv.${m[2]}`;
    else if ((m = /^head\.regression_head\.conv\.(\d)\.0\.(\w+)$/.exec(k))) to = `bbox_head.reg_convs.${m[1]}.conv.${m[2]}`;
    else if ((m = /^head\.classification_head\.cls_logits\.(\w+)$/.exec(k))) to = `bbox_head.retina_cls.${m[1]}`;
    else if ((m = /^head\.regression_head\.bbox_reg\.(\w+)$/.exec(k))) to = `bbox_head.retina_reg.${m[1]}`;
    else throw new Error(`unmapped ${k}`);
    out.set(to, v);
  }
  return out;
}

if (haveAddon(t)) {
  t.test('an mmdetection R50 RetinaNet state dict imports with every tensor in place', async (t) => {
    const { createDetector } = await import('../../src/detector.js');
    const { savePth } = await import('../../src/weights/pth-write.js');
    const { importMmdet } = await import('../../src/zoo/import.js');
    const { readWeights } = await import('../../src/weights/index.js');
    const dir = tempDir(t);
    const options = { extra_blocks: 'c5_norelu', anchor_style: 'mmdet', detections_per_img: 100 };
    const det = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 80, widthMult: 0.0625, minSize: 64, maxSize: 96, options });
    t.equal(det.nativeConfig().anchor_style, 'mmdet');
    const sd = await det.stateDict();
    t.equal(sd.get('backbone.fpn.extra_blocks.p6.weight')!.shape[1], 128, 'P6 from C5 (2048 / 16 channels)');
    const ck = join(dir, 'retinanet_r50_fpn_1x_coco.pth');
    await savePth(ck, toMmdet(sd));
    const out = join(dir, 'r50.safetensors');
    const r = await importMmdet(ck, out);
    t.match(r, { arch: 'retinanet_resnet50_fpn', numClasses: 80, classes: 'coco80', options: { ...options, width_mult: 0.0625 }, missing: [], unexpected: [] });
    const back = await readWeights(out);
    for (const [k, v] of sd) t.same(back.get(k)?.data, v.data, k);
  });

  t.test("mmdetection's architecture options: P7 without ReLU, unrounded anchors", async (t) => {
    const { createDetector } = await import('../../src/detector.js');
    const img = { dtype: 'uint8' as const, shape: [64, 64, 3], data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 31) % 253) };
    const base = { arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 64 };
    const a = await createDetector({ ...base, options: { extra_blocks: 'c5' } });
    const b = await createDetector({ ...base, options: { extra_blocks: 'c5_norelu' } });
    await b.loadStateDict(await a.stateDict());
    const [fa, fb] = [await a.features([img]), await b.features([img])];
    t.same(fb.p6!.data, fa.p6!.data, 'P6 the same');
    t.not(Buffer.from(fb.p7!.data.buffer).equals(Buffer.from(fa.p7!.data.buffer)), true, 'P7 differs: no ReLU before it');
    await t.rejects(createDetector({ ...base, options: { anchor_style: 'detectron' } }), /anchor_style must be "torchvision" or "mmdet"/);
    await t.rejects(createDetector({ ...base, options: { extra_blocks: 'p6' } }), /extra_blocks must be "p5", "c5", "c5_norelu" or "none"/);
  });
}
