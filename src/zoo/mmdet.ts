/**
 * mmdetection (2.x) RetinaNet checkpoints, as its model zoo ships them ({meta, state_dict}), in
 * mtpd's (torchvision's) names, with the options that build mmdetection's architecture where it
 * differs from torchvision's:
 *
 *   FPN extra levels   add_extra_convs='on_input', relu_before_extra_convs=False: P6 = conv(C5),
 *                      P7 = conv(P6)                                  -> extra_blocks 'c5_norelu'
 *   anchors            AnchorGenerator(octave_base_scale=4, scales_per_octave=3, center_offset=0):
 *                      sizes 32 * 2^(i/3) unrounded                   -> anchor_style 'mmdet'
 *                      tiled with the fixed strides 8..128
 *   test_cfg           max_per_img=100                                -> detections_per_img 100
 *   delta coder        DeltaXYWHBBoxCoder (means 0, stds 1): centres (x1 + x2) / 2, dw/dh clamped to
 *                      +-log(1000/16)                                 -> box_coder 'mmdet'
 *   test pipeline      Resize keep_ratio (mmcv.rescale_size: int(x * s + 0.5)), scale_factor new / old in
 *                      float32, boxes rescaled to the original image before NMS -> resize_style 'mmdet'
 *   normalization      mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375) on 0..255 RGB: torchvision's
 *                      (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) on 0..1
 *   Swin               a LayerNorm on each returned stage (norm1..3), windows shifted even where the map is
 *                      one window                                     -> swin_style 'mmdet'
 *
 * Names: backbone.* -> backbone.body.*; neck.lateral_convs.i.conv -> backbone.fpn.inner_blocks.i.0;
 * neck.fpn_convs.i.conv -> backbone.fpn.layer_blocks.i.0 (i < 3), extra_blocks.p6 / p7 (i = 3, 4);
 * bbox_head.{cls,reg}_convs.i.conv -> head.{classification,regression}_head.conv.i.0;
 * bbox_head.retina_cls / retina_reg -> head.classification_head.cls_logits / head.regression_head.bbox_reg.
 * The names and numerics follow mmdetection 2.x's RetinaNet (necks/fpn.py, dense_heads/retina_head.py,
 * core/anchor/anchor_generator.py, core/bbox/coder/delta_xywh_bbox_coder.py), checked against mmdetection's
 * own code by scripts/golden/mmdet_retinanet.py (test/zoo/mmdet-parity.test.ts). Not mmdetection's: the
 * pixels of the resize (OpenCV's bilinear kernel on uint8 there, torch's here).
 * BatchNorm's num_batches_tracked and Swin's relative_position_index (bookkeeping, rebuilt here) are
 * skipped and counted in `ignored`.
 */
import { COCO_CATEGORIES, normalizeName } from '../data/class-map.js';
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { mmdetSwinName, unfoldToConcatOrder } from '../weights/backbone-checkpoint.js';
import { loadPth } from '../weights/pth.js';
import type { StateDict } from '../weights/safetensors.js';

export interface MmdetCheckpoint {
  /** mtpd builder name. */
  arch: string;
  /** Detector options that build mmdetection's architecture. */
  options: Record<string, unknown>;
  numClasses: number;
  /** meta.CLASSES, when the checkpoint has it. */
  classNames: string[] | null;
  /** 'coco80' when the classes are COCO's 80 in COCO order (config `classes: coco80`), else 'dataset'. */
  classes: 'coco80' | 'dataset';
  /** Renamed tensors. */
  tensors: StateDict;
  /** Checkpoint keys with no counterpart in the architecture built here. */
  unmapped: string[];
  /** Bookkeeping tensors skipped: BatchNorm num_batches_tracked, Swin relative_position_index. */
  ignored: string[];
}

function rename(k: string): string | null {
  let m: RegExpExecArray | null;
  if ((m = /^neck\.lateral_convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) return `backbone.fpn.inner_blocks.${m[1]}.0.${m[2]}`;
  if ((m = /^neck\.fpn_convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) {
    const i = Number(m[1]);
    return i < 3 ? `backbone.fpn.layer_blocks.${i}.0.${m[2]}` : i === 3 ? `backbone.fpn.extra_blocks.p6.${m[2]}` : i === 4 ? `backbone.fpn.extra_blocks.p7.${m[2]}` : null;
  }
  if ((m = /^bbox_head\.cls_convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) return `head.classification_head.conv.${m[1]}.0.${m[2]}`;
  if ((m = /^bbox_head\.reg_convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) return `head.regression_head.conv.${m[1]}.0.${m[2]}`;
  if ((m = /^bbox_head\.retina_cls\.(weight|bias)$/.exec(k))) return `head.classification_head.cls_logits.${m[1]}`;
  if ((m = /^bbox_head\.retina_reg\.(weight|bias)$/.exec(k))) return `head.regression_head.bbox_reg.${m[1]}`;
  return null;
}

function count(keys: string[], re: RegExp): number {
  const s = new Set<string>();
  for (const k of keys) {
    const m = re.exec(k);
    if (m) s.add(m[1] as string);
  }
  return s.size;
}

/** Architecture of an mmdetection RetinaNet state dict (or, with `family`, a two-stage one's backbone), from its tensors. */
export function archOf(sd: StateDict, source: string, family = 'retinanet'): { arch: string; options: Record<string, unknown>; swin: boolean } {
  const keys = [...sd.keys()];
  const options: Record<string, unknown> = { extra_blocks: 'c5_norelu', anchor_style: 'mmdet', box_coder: 'mmdet', resize_style: 'mmdet', detections_per_img: 100 };
  if (sd.has('backbone.patch_embed.projection.weight')) {
    options.swin_style = 'mmdet';
    const depth3 = count(keys, /^backbone\.stages\.2\.blocks\.(\d+)\./);
    const embed = sd.get('backbone.patch_embed.projection.weight')!.shape[0];
    if (depth3 === 6 && embed !== 96) options.width_mult = (embed as number) / 96;
    const name = depth3 === 6 ? 'swin_t' : depth3 === 18 && embed === 96 ? 'swin_s' : depth3 === 18 && embed === 128 ? 'swin_b' : null;
    if (!name) throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: a Swin backbone with ${depth3} blocks in stage 3 and embed dim ${embed} is not Swin-T/S/B`);
    return { arch: `${family}_${name}_fpn`, options, swin: true };
  }
  const conv2 = sd.get('backbone.layer1.0.conv2.weight');
  if (!conv2 || !sd.has('backbone.layer4.0.conv3.weight')) throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: not an mmdetection RetinaNet with a ResNet/ResNeXt (Bottleneck) or Swin backbone (no backbone.layer1.0.conv2.weight / layer4.0.conv3.weight)`);
  const blocks3 = count(keys, /^backbone\.layer3\.(\d+)\./);
  const depth = blocks3 === 6 ? 50 : blocks3 === 23 ? 101 : blocks3 === 36 ? 152 : 0;
  if (!depth) throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: ${blocks3} blocks in layer3 is not ResNet-50/101/152`);
  // a narrowed model (mtpd's width_mult: the same names, every width scaled)
  const stem = sd.get('backbone.conv1.weight')?.shape[0] ?? 64;
  if (stem !== 64) options.width_mult = stem / 64;
  const width = conv2.shape[0] as number;
  const groups = width / (conv2.shape[1] as number);
  if (groups === 1) return { arch: `${family}_resnet${depth}_fpn`, options, swin: false };
  const perGroup = width / groups;
  const known = `resnext${depth}_${groups}x${perGroup}d`;
  if (known === 'resnext50_32x4d' || known === 'resnext101_32x8d' || known === 'resnext101_64x4d') return { arch: `${family}_${known}_fpn`, options, swin: false };
  return { arch: `${family}_resnet${depth}_fpn`, options: { ...options, groups, width_per_group: perGroup }, swin: false };
}

/** meta.CLASSES of a checkpoint's top-level dict. */
export function classNamesOf(top: Map<unknown, unknown> | null): string[] | null {
  const meta = top?.get('meta');
  const classes = meta instanceof Map ? meta.get('CLASSES') : undefined;
  return Array.isArray(classes) && classes.every((c) => typeof c === 'string') ? (classes as string[]) : null;
}

/** Reads an mmdetection RetinaNet checkpoint (.pth) and renames it onto mtpd's architecture. */
export async function readMmdetRetinaNet(path: string): Promise<MmdetCheckpoint> {
  const f = await loadPth(path);
  const sd = f.tensors;
  const { arch, options, swin } = archOf(sd, path);
  const cls = sd.get('bbox_head.retina_cls.weight');
  if (!cls) throw new MtpdError('ERR_MTPD_WEIGHTS', `${path}: no bbox_head.retina_cls.weight (not a RetinaNet?)`);
  const anchors = 9;
  const out = cls.shape[0] as number;
  if (out % anchors !== 0) throw new MtpdError('ERR_MTPD_WEIGHTS', `${path}: bbox_head.retina_cls has ${out} outputs, not 9 anchors x classes`);
  const numClasses = out / anchors;
  const tensors: StateDict = new Map();
  const unmapped: string[] = [];
  const ignored: string[] = [];
  for (const [k, t] of sd) {
    let to: string | null = null;
    let v: Tensor = t;
    if (/\.(num_batches_tracked|relative_position_index)$/.test(k)) {
      ignored.push(k);
      continue;
    }
    if (k.startsWith('backbone.')) {
      const rest = k.slice('backbone.'.length);
      if (swin && /^norm\d\.(weight|bias)$/.test(rest)) to = `backbone.body.${rest}`;  // the output norm of stage i
      else if (swin) {
        const n = mmdetSwinName(rest);
        to = n === null ? null : `backbone.body.${n}`;
        if (to !== null && /\.downsample\.(reduction\.weight|norm\.(weight|bias))$/.test(k)) v = unfoldToConcatOrder(t, k);
      } else to = `backbone.body.${rest}`;
    } else to = rename(k);
    if (to === null) unmapped.push(k);
    else tensors.set(to, v);
  }
  const classNames = classNamesOf(f.top);
  const coco = COCO_CATEGORIES.map(([, n]) => normalizeName(n));
  const classes = classNames && classNames.length === 80 && classNames.every((n, i) => normalizeName(n) === coco[i]) ? 'coco80' : numClasses === 80 && !classNames ? 'coco80' : 'dataset';
  return { arch, options, numClasses, classNames, classes, tensors, unmapped, ignored };
}
