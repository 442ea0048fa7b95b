/**
 * mmdetection (2.x) Cascade Mask R-CNN / Cascade R-CNN and Mask R-CNN / Faster R-CNN checkpoints in
 * mtpd's names. Both are built as mtpd's cascade (`cascade_mask_rcnn` / `cascade_rcnn`): its RoI
 * heads follow mmdetection's semantics (RoIAlign aligned with an adaptive grid at each level's fixed
 * 1/stride, mmdetection's box
 * coder, losses and multiclass NMS), and mmdetection's StandardRoIHead is the cascade with one
 * stage (IoU 0.5, target_stds 0.1/0.1/0.2/0.2, class-specific regression, L1 box loss).
 *
 * Names: backbone.* -> backbone.body.* (as the RetinaNet import); neck.lateral_convs.i.conv ->
 * backbone.fpn.inner_blocks.i.0; neck.fpn_convs.i.conv -> backbone.fpn.layer_blocks.i.0;
 * rpn_head.rpn_conv -> rpn.head.conv.0.0; rpn_head.rpn_cls -> rpn.head.cls_logits;
 * rpn_head.rpn_reg -> rpn.head.bbox_pred;
 * roi_head.bbox_head[.s].shared_fcs.{0,1} -> roi_heads.box_head.{s}.{fc6,fc7};
 * roi_head.bbox_head[.s].fc_cls -> roi_heads.box_predictor.{s}.cls_score (mmdetection's background
 * row is the last, mtpd's the first: moved); fc_reg -> bbox_pred (class-specific: 4 zero rows for
 * the background in front); roi_head.mask_head[.s].convs.j.conv -> roi_heads.mask_head.{s}.{j}.0;
 * upsample -> roi_heads.mask_predictor.{s}.conv5_mask; conv_logits -> mask_fcn_logits.
 * The RPN's anchors are mmdetection's (`anchor_style: mmdet`: unrounded cell anchors at the fixed
 * strides 4..64). Masks are pasted as mmdetection's get_seg_masks pastes them (`mask_paste: mmdet`;
 * torchvision's pasting turns 7-28 % of the foreground pixels over on test/zoo/mmdet-roi-heads).
 * Not reproduced: mmdetection's RPN L1 loss (Mask R-CNN configs) and its OpenCV resize.
 */
import { COCO_CATEGORIES, normalizeName } from '../data/class-map.js';
import { MtpdError } from '../errors.js';
import { type Tensor, numel, tensor } from '../tensor.js';
import { mmdetSwinName, unfoldToConcatOrder } from '../weights/backbone-checkpoint.js';
import { loadPth } from '../weights/pth.js';
import type { StateDict } from '../weights/safetensors.js';
import { archOf, classNamesOf, type MmdetCheckpoint } from './mmdet.js';

export interface TwoStageLayout {
  /** 3 for a cascade, 1 for Mask/Faster R-CNN (mmdetection's StandardRoIHead). */
  stages: number;
  masks: boolean;
  /** Real classes (mmdetection's num_classes). */
  numClasses: number;
  classAgnostic: boolean;
}

/** The layout of an mmdetection two-stage state dict, or null when it has no roi_head.bbox_head. */
export function twoStageLayout(sd: StateDict, source: string): TwoStageLayout | null {
  const keys = [...sd.keys()];
  const cascade = keys.some((k) => /^roi_head\.bbox_head\.\d+\.fc_cls\.weight$/.test(k));
  const single = sd.has('roi_head.bbox_head.fc_cls.weight');
  if (!cascade && !single) return null;
  const stages = cascade ? new Set(keys.map((k) => /^roi_head\.bbox_head\.(\d+)\./.exec(k)?.[1]).filter((s) => s !== undefined)).size : 1;
  const cls = sd.get(cascade ? 'roi_head.bbox_head.0.fc_cls.weight' : 'roi_head.bbox_head.fc_cls.weight')!;
  const reg = sd.get(cascade ? 'roi_head.bbox_head.0.fc_reg.weight' : 'roi_head.bbox_head.fc_reg.weight');
  if (!reg) throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: roi_head.bbox_head has fc_cls but no fc_reg`);
  const numClasses = (cls.shape[0] as number) - 1;
  const regRows = reg.shape[0] as number;
  if (regRows !== 4 && regRows !== 4 * numClasses) {
    throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: fc_reg has ${regRows} outputs, neither 4 (class-agnostic) nor 4 x ${numClasses} classes`);
  }
  const masks = keys.some((k) => k.startsWith('roi_head.mask_head.'));
  return { stages, masks, numClasses, classAgnostic: regRows === 4 };
}

/** mmdetection's class rows (classes..., background) -> mtpd's (background, classes...). */
function backgroundFirst(t: Tensor, key: string): Tensor {
  const rows = t.shape[0] as number;
  return reorderRows(t, [rows - 1, ...Array.from({ length: rows - 1 }, (_, i) => i)], key);
}

/** `zeros` zero rows, then the tensor's rows. */
function zeroRowsFirst(t: Tensor, zeros: number, key: string): Tensor {
  return reorderRows(t, [...Array.from({ length: zeros }, () => -1), ...Array.from({ length: t.shape[0] as number }, (_, i) => i)], key);
}

/** Rows of `t` in `order` (-1: a zero row). */
function reorderRows(t: Tensor, order: number[], key: string): Tensor {
  if (t.dtype !== 'float32') throw new MtpdError('ERR_MTPD_WEIGHTS', `${key}: expected float32, got ${t.dtype}`);
  const rows = t.shape[0] as number;
  const per = rows === 0 ? 0 : numel(t.shape) / rows;
  const src = t.data as Float32Array;
  const out = new Float32Array(order.length * per);
  order.forEach((r, i) => {
    if (r >= 0) out.set(src.subarray(r * per, (r + 1) * per), i * per);
  });
  return tensor('float32', [order.length, ...t.shape.slice(1)], out);
}

/** One mmdetection key (neck, rpn_head, roi_head) in mtpd's names, with its tensor; null when it has no counterpart. */
export function renameMmdetTwoStage(k: string, t: Tensor, layout: TwoStageLayout): { key: string; tensor: Tensor } | null {
  let m: RegExpExecArray | null;
  const to = (key: string, v: Tensor = t) => ({ key, tensor: v });
  if ((m = /^neck\.lateral_convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) return to(`backbone.fpn.inner_blocks.${m[1]}.0.${m[2]}`);
  if ((m = /^neck\.fpn_convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) return Number(m[1]) < 4 ? to(`backbone.fpn.layer_blocks.${m[1]}.0.${m[2]}`) : null;
  if ((m = /^rpn_head\.rpn_conv\.(weight|bias)$/.exec(k))) return to(`rpn.head.conv.0.0.${m[1]}`);
  if ((m = /^rpn_head\.rpn_cls\.(weight|bias)$/.exec(k))) return to(`rpn.head.cls_logits.${m[1]}`);
  if ((m = /^rpn_head\.rpn_reg\.(weight|bias)$/.exec(k))) return to(`rpn.head.bbox_pred.${m[1]}`);
  if ((m = /^roi_head\.bbox_head(?:\.(\d+))?\.(shared_fcs\.[01]|fc_cls|fc_reg)\.(weight|bias)$/.exec(k))) {
    const s = m[1] ?? '0';
    const part = m[2] as string;
    if (part === 'shared_fcs.0') return to(`roi_heads.box_head.${s}.fc6.${m[3]}`);
    if (part === 'shared_fcs.1') return to(`roi_heads.box_head.${s}.fc7.${m[3]}`);
    if (part === 'fc_cls') return to(`roi_heads.box_predictor.${s}.cls_score.${m[3]}`, backgroundFirst(t, k));
    return to(`roi_heads.box_predictor.${s}.bbox_pred.${m[3]}`, layout.classAgnostic ? t : zeroRowsFirst(t, 4, k));
  }
  if ((m = /^roi_head\.mask_head(?:\.(\d+))?\.convs\.(\d+)\.conv\.(weight|bias)$/.exec(k))) return to(`roi_heads.mask_head.${m[1] ?? '0'}.${m[2]}.0.${m[3]}`);
  if ((m = /^roi_head\.mask_head(?:\.(\d+))?\.upsample\.(weight|bias)$/.exec(k))) return to(`roi_heads.mask_predictor.${m[1] ?? '0'}.conv5_mask.${m[2]}`);
  if ((m = /^roi_head\.mask_head(?:\.(\d+))?\.conv_logits\.(weight|bias)$/.exec(k))) return to(`roi_heads.mask_predictor.${m[1] ?? '0'}.mask_fcn_logits.${m[2]}`);
  return null;
}

/** The cascade options that build an mmdetection two-stage layout (with mtpd's defaults for the rest). */
export function twoStageOptions(layout: TwoStageLayout): Record<string, unknown> {
  if (layout.stages === 3) return { class_agnostic: layout.classAgnostic };
  if (layout.stages === 1) {
    // StandardRoIHead (mask_rcnn_r50_fpn): IoU 0.5, target_stds 0.1/0.1/0.2/0.2, L1 box loss
    return { stage_iou_thresholds: [0.5], stage_loss_weights: [1], stage_bbox_reg_weights: [[10, 10, 5, 5]], class_agnostic: layout.classAgnostic, box_loss_beta: 0 };
  }
  throw new MtpdError('ERR_MTPD_WEIGHTS', `an mmdetection cascade of ${layout.stages} stages has no default IoU thresholds here (3-stage cascades and 1-stage R-CNNs are built)`);
}

/**
 * Reads an mmdetection two-stage checkpoint (.pth): Cascade Mask R-CNN / Cascade R-CNN (3 stages)
 * or Mask R-CNN / Faster R-CNN (1 stage), as mtpd's cascade_maskrcnn_<backbone>_fpn / cascade_rcnn_<backbone>_fpn.
 */
export async function readMmdetTwoStage(path: string): Promise<MmdetCheckpoint> {
  const f = await loadPth(path);
  return mmdetTwoStageFromStateDict(f.tensors, classNamesOf(f.top), path);
}

/** The renaming of readMmdetTwoStage on a state dict already read. */
export function mmdetTwoStageFromStateDict(sd: StateDict, classNames: string[] | null, source: string): MmdetCheckpoint {
  const layout = twoStageLayout(sd, source);
  if (!layout) throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: no roi_head.bbox_head (not an mmdetection two-stage detector?)`);
  const family = layout.masks ? 'cascade_maskrcnn' : 'cascade_rcnn';
  const { arch, options: bb, swin } = archOf(sd, source, family);
  // the backbone's options only: RetinaNet's FPN / anchor / test options do not apply
  const options: Record<string, unknown> = { ...twoStageOptions(layout), anchor_style: 'mmdet' };
  if (layout.masks) options.mask_paste = 'mmdet';
  for (const k of ['width_mult', 'groups', 'width_per_group']) if (bb[k] !== undefined) options[k] = bb[k];
  const tensors: StateDict = new Map();
  const unmapped: string[] = [];
  // BatchNorm's step counters and Swin's relative position index carry no weights (as in readMmdet)
  const ignored: string[] = [];
  for (const [k, t] of sd) {
    if (/\.(num_batches_tracked|relative_position_index)$/.test(k)) {
      ignored.push(k);
      continue;
    }
    if (k.startsWith('backbone.')) {
      const rest = k.slice('backbone.'.length);
      let v: Tensor = t;
      let to: string | null;
      if (swin) {
        const n = mmdetSwinName(rest);
        to = n === null ? null : `backbone.body.${n}`;
        if (to !== null && /\.downsample\.(reduction\.weight|norm\.(weight|bias))$/.test(k)) v = unfoldToConcatOrder(t, k);
      } else to = `backbone.body.${rest}`;
      if (to === null) unmapped.push(k);
      else tensors.set(to, v);
      continue;
    }
    const r = renameMmdetTwoStage(k, t, layout);
    if (r === null) unmapped.push(k);
    else tensors.set(r.key, r.tensor);
  }
  const coco = COCO_CATEGORIES.map(([, n]) => normalizeName(n));
  const classes =
    classNames && classNames.length === 80 && classNames.every((n, i) => normalizeName(n) === coco[i]) ? 'coco80' : layout.numClasses === 80 && !classNames ? 'coco80' : 'dataset';
  return { arch, options, numClasses: layout.numClasses, classNames, classes, tensors, unmapped, ignored };
}
