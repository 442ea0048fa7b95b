/**
 * torchvision two-stage checkpoints for `mtpd import`: a state dict in torchvision's names, as
 * `torch.save(model.state_dict())` writes it (the model zoo's maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth,
 * maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth, fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth). The
 * builder is read from the tensors: the `_v2` layout by its FastRCNNConvFCHead
 * (roi_heads.box_head.0.0.weight; v1 has box_head.fc6), masks by roi_heads.mask_predictor, the
 * classes by box_predictor.cls_score's rows (torchvision's num_classes, background included), the
 * ResNet by its blocks per stage and the width by the stem. The names are mtpd's already (older
 * layouts' rpn.head.conv / mask_fcn{i} are renamed by the detector's loader).
 */
import { TWO_STAGE_V2_OPTIONS } from '../detector.js';
import { MtpdError } from '../errors.js';
import type { StateDict } from '../weights/safetensors.js';

export interface TorchvisionTwoStage {
  /** mtpd's builder name: maskrcnn_<backbone>_fpn(_v2) or fasterrcnn_<backbone>_fpn(_v2). */
  arch: string;
  v2: boolean;
  masks: boolean;
  /** Real classes (torchvision's num_classes - 1; COCO checkpoints: 90, indexed by category id - 1). */
  numClasses: number;
  /** Options beyond what the builder name sets (width_mult, rpn_conv_depth, ResNet overrides). */
  options: Record<string, unknown>;
}

function blocks(keys: string[], stage: number): number {
  const re = new RegExp(`^backbone\\.body\\.layer${stage}\\.(\\d+)\\.`);
  return new Set(keys.map((k) => re.exec(k)?.[1]).filter((b) => b !== undefined)).size;
}

const RESNETS: Record<string, string> = {
  'basic:2,2,2,2': 'resnet18',
  'basic:3,4,6,3': 'resnet34',
  'bottleneck:3,4,6,3': '50',
  'bottleneck:3,4,23,3': '101',
  'bottleneck:3,8,36,3': '152',
};

/** The builder of a torchvision two-stage state dict, or null when it is not one (no rpn.head / roi_heads.box_predictor). */
export function torchvisionTwoStageLayout(sd: StateDict, source: string): TorchvisionTwoStage | null {
  const cls = sd.get('roi_heads.box_predictor.cls_score.weight');
  if (!cls || !sd.has('rpn.head.cls_logits.weight')) return null;
  const v2 = sd.has('roi_heads.box_head.0.0.weight');
  if (!v2 && !sd.has('roi_heads.box_head.fc6.weight')) {
    throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: roi_heads.box_head is neither TwoMLPHead (fc6, fc7) nor FastRCNNConvFCHead (0.0, ...)`);
  }
  const masks = sd.has('roi_heads.mask_predictor.mask_fcn_logits.weight');
  const numClasses = (cls.shape[0] as number) - 1;
  if (numClasses < 1) throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: roi_heads.box_predictor.cls_score has ${cls.shape[0]} rows, no class besides the background`);
  const keys = [...sd.keys()];
  const bottleneck = sd.has('backbone.body.layer1.0.conv3.weight');
  const layers = [1, 2, 3, 4].map((s) => blocks(keys, s));
  const known = RESNETS[`${bottleneck ? 'bottleneck' : 'basic'}:${layers.join(',')}`];
  const stem = sd.get('backbone.body.conv1.weight');
  if (!known || !stem) {
    throw new MtpdError('ERR_MTPD_WEIGHTS', `${source}: backbone.body is not a torchvision ResNet (${bottleneck ? 'Bottleneck' : 'BasicBlock'} blocks per stage ${layers.join(', ')})`);
  }
  const options: Record<string, unknown> = {};
  const widthMult = (stem.shape[0] as number) / 64;
  if (widthMult !== 1) options.width_mult = widthMult;
  let backbone = known;
  if (bottleneck) {
    // layer1's conv2: (width, width / groups, 3, 3), width = 64 x width_per_group / 64 x groups (x width_mult)
    const conv2 = sd.get('backbone.body.layer1.0.conv2.weight')!;
    const width = conv2.shape[0] as number;
    const groups = width / (conv2.shape[1] as number);
    const perGroup = Math.round(width / groups / widthMult);
    if (groups > 1) backbone = `resnext${known}_${groups}x${perGroup}d`;
    else if (perGroup === 128) backbone = `wide_resnet${known}_2`;
    else backbone = `resnet${known}`;
  }
  const convs = new Set(keys.map((k) => /^rpn\.head\.conv\.(\d+)\.0\.weight$/.exec(k)?.[1]).filter((c) => c !== undefined)).size || 1;
  if (convs !== (v2 ? TWO_STAGE_V2_OPTIONS.rpn_conv_depth : 1)) options.rpn_conv_depth = convs;
  const arch = `${masks ? 'maskrcnn' : 'fasterrcnn'}_${backbone}_fpn${v2 ? '_v2' : ''}`;
  return { arch, v2, masks, numClasses, options };
}
