/**
 * Detectors (RetinaNet over ResNet/ResNeXt/Swin FPN backbones, torchvision's architecture and
 * parameter names) as async TS objects over the native addon.
 *
 * Images are `(3, H, W)` float32 tensors in 0..1 or `(H, W, 3)` uint8 tensors (decoded image
 * bytes); boxes are xyxy in the pixels of the images as given. Every call is queued per model, so
 * at most one runs natively at a time.
 */
import { disposedError } from './dispose.js';
import { MtpdError, optionsJson, withCallSite } from './errors.js';
import { type LoadReport, Module } from './module.js';
import { native, type NativeModuleHandle, type RawModuleInfo, type RawParameterInfo } from './native.js';
import { createNativeOptimizer, type Optimizer, type OptimizerOptions } from './optim.js';
import { tensor, type Tensor } from './tensor.js';
import type { StateDict } from './weights/safetensors.js';

/**
 * torchvision's renames of older two-stage checkpoints (its versioned _load_from_state_dict, as in
 * maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth): RPNHead "rpn.head.conv.{weight,bias}" ->
 * "rpn.head.conv.0.0.*", MaskRCNNHeads "roi_heads.mask_head.mask_fcn{i}.*" -> "roi_heads.mask_head.{i-1}.0.*".
 * Keys the model has under their own name are left alone.
 */
export function renameLegacyTwoStageKeys(dict: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of dict) {
    let n = k.replace(/^((?:.*\.)?rpn\.head\.conv)\.(weight|bias)$/, '$1.0.0.$2');
    n = n.replace(/^((?:.*\.)?roi_heads\.mask_head)\.mask_fcn(\d+)\.(weight|bias)$/, (_, p: string, i: string, t: string) => `${p}.${Number(i) - 1}.0.${t}`);
    if (out.has(n)) throw new MtpdError('ERR_MTPD_ARGUMENT', `state dict has "${k}" and its new name "${n}"`);
    out.set(n, v);
  }
  return out;
}

/** What `createDetector` accepts. Keys map onto the native "retinanet" options (torchvision's keyword names). */
export interface DetectorConfig {
  /** torchvision builder name (`retinanet_resnet50_fpn`, `retinanet_resnet18_fpn`, `retinanet_swin_t_fpn`, `..._v2`) or `retinanet` with `backbone`. */
  arch: string;
  backbone?: string;
  numClasses?: number;
  minSize?: number | number[];
  maxSize?: number;
  scoreThresh?: number;
  nmsThresh?: number;
  detectionsPerImg?: number;
  topkCandidates?: number;
  /** Scales every backbone/FPN/head width, keeping the names (small CPU models). */
  widthMult?: number;
  /** 0..5: backbone stages that train (torchvision's trainable_backbone_layers; default 3). */
  trainableLayers?: number;
  /** "frozen_bn" (default, as torchvision with pretrained backbones) or "bn". */
  normLayer?: 'frozen_bn' | 'bn';
  device?: string;
  /**
   * Convolution weights (and so every activation after the first convolution) in the
   * channels_last (NHWC) memory format instead of contiguous NCHW: faster convolutions on CUDA
   * with mixed precision (Tensor Cores); the same results to float rounding. Default false.
   */
  channelsLast?: boolean;
  /** Further native options in torchvision's snake_case names (fg_iou_thresh, anchor_sizes, layers, ...). */
  options?: Record<string, unknown>;
}

export interface Target {
  /** (K, 4) xyxy in image pixels, as a float32 tensor or rows of numbers. */
  boxes: Tensor | number[][];
  /** (K) class indices. */
  labels: Tensor | number[];
  /** (K, H, W) uint8 instance masks in the image's pixels (Mask R-CNN's losses need them). */
  masks?: Tensor;
}

export interface Detection {
  /** (D, 4) float32 xyxy in original image pixels. */
  boxes: Tensor<'float32'>;
  /** (D) float32, descending. */
  scores: Tensor<'float32'>;
  /** (D) int64 raw label indices. */
  labels: Tensor<'int64'>;
  /** Mask R-CNN: (D, 1, H, W) float32 mask probabilities in original image pixels (binarize at 0.5). */
  masks?: Tensor<'float32'>;
}

export interface RunWhat {
  losses?: boolean;
  features?: boolean;
  detections?: boolean;
  /** Mixed precision: the forward pass under autocast (CUDA float16, CPU bfloat16); results come back float32. */
  amp?: boolean;
}

export interface RunResult {
  losses: Record<string, number>;
  features: Record<string, Tensor<'float32'>>;
  detections: Detection[];
  /** Per image (H, W) after resize, before padding. */
  imageSizes: [number, number][];
  originalSizes: [number, number][];
  /** Padded batch (H, W). */
  batchSize: [number, number];
}

export interface TrainStepResult {
  losses: Record<string, number>;
  /** Sum of the losses. */
  loss: number;
  /** Total gradient norm before clipping (NaN when an AMP step was skipped). */
  gradNorm: number;
  skipped: boolean;
  scale: number;
  lr: number;
}

export interface DetectorInfo extends RawModuleInfo {
  arch: string;
  numClasses: number;
  featureChannels: number;
  featureNames: string[];
  featureStrides: number[];
  config: string;
  /** How the convolution weights are laid out (channelsLast: "channels_last"). */
  memoryFormat: 'contiguous' | 'channels_last' | 'mixed';
}

/** The native detector handle (native/binding/detector_wrap.cc). */
export interface NativeDetectorHandle extends Omit<NativeModuleHandle, 'info' | 'forward'> {
  info(): DetectorInfo;
  forward?: never;
  run(images: Tensor[], targets: NativeTarget[] | null, what: RunWhat, grad: boolean): Promise<RunResult>;
  trainStep(optimizer: unknown, images: Tensor[], targets: NativeTarget[]): Promise<TrainStepResult>;
  evalImageSizes(sizes: [number, number][]): [number, number][];
  roiScales(): number[];
  setRoiScales(scales: number[]): void;
}

/**
 * Feature maps with where each image lies in them: image i, resized to imageSizes[i] = [h, w],
 * occupies the top-left ceil(h/s) x ceil(w/s) cells of a tap of stride strides[tap] = s; the
 * rest is padding (see src/distill/align.ts).
 */
export interface HvpResult {
  losses: Record<string, number>;
  /** Their sum: the detection loss the product is of. */
  loss: number;
  gradient: Map<string, Tensor<'float32'>>;
  product: Map<string, Tensor<'float32'>>;
}

export interface FeatureBatch {
  /** Named FPN maps, (N, C, H, W) over the padded batch. */
  maps: Record<string, Tensor<'float32'>>;
  /** Per image [h, w] after this model's resize, before padding. */
  imageSizes: [number, number][];
  /** tap -> stride in input pixels (p3: 8 ... p7: 128). */
  strides: Record<string, number>;
}

interface NativeTarget {
  boxes: Tensor;
  labels: Tensor;
  masks?: Tensor;
}

declare module './native.js' {
  interface Binding {
    createDetector(name: string, optionsJson: string, device: string, memoryFormat?: 'contiguous' | 'channels_last'): Promise<NativeDetectorHandle>;
    listDetectors(): Record<string, string>;
  }
}

const BUILDER = /^retinanet_(.+?)_fpn(_v2)?$/;
/**
 * Two-stage builders: torchvision's maskrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn (v1 layout) and
 * their `_v2` (maskrcnn_resnet50_fpn_v2, fasterrcnn_resnet50_fpn_v2; over any backbone here), and
 * the cascades cascade_maskrcnn_<backbone>_fpn, cascade_rcnn_<backbone>_fpn (native cascade_mask_rcnn, cascade_rcnn).
 */
const TWO_STAGE = /^(cascade_maskrcnn|cascade_rcnn|maskrcnn|fasterrcnn)_(.+?)_fpn(_v2)?$/;
/**
 * The layout torchvision 0.14's maskrcnn_resnet50_fpn_v2 / fasterrcnn_resnet50_fpn_v2 build, as
 * native options: the body's and the FPN's BatchNorm2d (the v2 builders use nn.BatchNorm2d whether
 * or not the backbone is pretrained), RPNHead(conv_depth=2), FastRCNNConvFCHead (4 x conv 3x3 +
 * BatchNorm2d, 1 FC of 1024), MaskRCNNHeads with BatchNorm2d.
 */
export const TWO_STAGE_V2_OPTIONS: Readonly<Record<string, unknown>> = Object.freeze({
  norm_layer: 'bn',
  fpn_norm: 'bn',
  rpn_conv_depth: 2,
  box_head: 'conv_fc',
  head_norm: 'bn',
});
const TWO_STAGE_NATIVE: Record<string, string> = {
  maskrcnn: 'mask_rcnn',
  fasterrcnn: 'faster_rcnn',
  cascade_maskrcnn: 'cascade_mask_rcnn',
  cascade_rcnn: 'cascade_rcnn',
};

/** True for the names of two-stage (Faster/Mask R-CNN and cascade) detectors. */
export function isTwoStage(arch: string): boolean {
  return TWO_STAGE.test(arch) || Object.values(TWO_STAGE_NATIVE).includes(arch);
}

/** True for the cascades (cascade_maskrcnn_<backbone>_fpn, cascade_rcnn_<backbone>_fpn, cascade_mask_rcnn, cascade_rcnn). */
export function isCascade(arch: string): boolean {
  return /^cascade_/.test(arch) && isTwoStage(arch);
}

function resolveTwoStage(config: DetectorConfig): { name: string; options: Record<string, unknown> } {
  const options: Record<string, unknown> = {};
  const m = TWO_STAGE.exec(config.arch);
  const name = m ? (TWO_STAGE_NATIVE[m[1] as string] as string) : config.arch;
  if (m) options.backbone = m[2];
  if (m?.[3]) {
    if (isCascade(config.arch)) throw new MtpdError('ERR_MTPD_ARGUMENT', `unknown detector arch "${config.arch}": torchvision's _v2 layout exists for maskrcnn_<backbone>_fpn_v2 and fasterrcnn_<backbone>_fpn_v2, not for the cascades`);
    Object.assign(options, TWO_STAGE_V2_OPTIONS);
  }
  if (config.backbone !== undefined) {
    if (m && config.backbone !== m[2]) throw new MtpdError('ERR_MTPD_ARGUMENT', `arch ${config.arch} and backbone ${config.backbone} disagree`);
    options.backbone = config.backbone;
  }
  if (config.topkCandidates !== undefined) {
    throw new MtpdError('ERR_MTPD_ARGUMENT', `topkCandidates is a RetinaNet option; ${config.arch} takes rpn_pre_nms_top_n_test in options`);
  }
  const map: [keyof DetectorConfig, string][] = [
    ['numClasses', 'num_classes'],
    ['minSize', 'min_size'],
    ['maxSize', 'max_size'],
    ['scoreThresh', 'box_score_thresh'],
    ['nmsThresh', 'box_nms_thresh'],
    ['detectionsPerImg', 'box_detections_per_img'],
    ['widthMult', 'width_mult'],
    ['trainableLayers', 'trainable_layers'],
    ['normLayer', 'norm_layer'],
  ];
  for (const [k, n] of map) if (config[k] !== undefined) options[n] = config[k];
  Object.assign(options, config.options ?? {});
  return { name, options };
}

/** Maps a builder name and config onto the native registry name and options. */
export function resolveDetectorConfig(config: DetectorConfig): { name: string; options: Record<string, unknown> } {
  if (!config || typeof config.arch !== 'string') throw new MtpdError('ERR_MTPD_ARGUMENT', 'detector config needs an arch');
  if (isTwoStage(config.arch)) return resolveTwoStage(config);
  const options: Record<string, unknown> = {};
  const m = BUILDER.exec(config.arch);
  if (m) {
    options.backbone = m[1];
    if (m[2]) Object.assign(options, { extra_blocks: 'c5', head_norm: 'gn', box_loss: 'giou' });
  } else if (config.arch !== 'retinanet') {
    throw new MtpdError(
      'ERR_MTPD_ARGUMENT',
      `unknown detector arch "${config.arch}" (expected retinanet_<backbone>_fpn, e.g. retinanet_resnet50_fpn, retinanet_resnet18_fpn, retinanet_swin_t_fpn, retinanet_resnet50_fpn_v2, maskrcnn_<backbone>_fpn(_v2), fasterrcnn_<backbone>_fpn(_v2), cascade_maskrcnn_<backbone>_fpn, cascade_rcnn_<backbone>_fpn, or retinanet / mask_rcnn / faster_rcnn / cascade_mask_rcnn / cascade_rcnn with backbone)`,
    );
  }
  if (config.backbone !== undefined) {
    if (m && config.backbone !== m[1]) {
      throw new MtpdError('ERR_MTPD_ARGUMENT', `arch ${config.arch} and backbone ${config.backbone} disagree`);
    }
    options.backbone = config.backbone;
  }
  const map: [keyof DetectorConfig, string][] = [
    ['numClasses', 'num_classes'],
    ['minSize', 'min_size'],
    ['maxSize', 'max_size'],
    ['scoreThresh', 'score_thresh'],
    ['nmsThresh', 'nms_thresh'],
    ['detectionsPerImg', 'detections_per_img'],
    ['topkCandidates', 'topk_candidates'],
    ['widthMult', 'width_mult'],
    ['trainableLayers', 'trainable_layers'],
    ['normLayer', 'norm_layer'],
  ];
  for (const [k, n] of map) if (config[k] !== undefined) options[n] = config[k];
  Object.assign(options, config.options ?? {});
  return { name: 'retinanet', options };
}

function toNativeTarget(t: Target, i: number): NativeTarget {
  if (!t || typeof t !== 'object') throw new MtpdError('ERR_MTPD_ARGUMENT', `targets[${i}] must be {boxes, labels}`);
  let boxes: Tensor;
  if (Array.isArray(t.boxes)) {
    const rows = t.boxes;
    rows.forEach((r, j) => {
      if (!Array.isArray(r) || r.length !== 4) throw new MtpdError('ERR_MTPD_ARGUMENT', `targets[${i}].boxes[${j}] must be [x1, y1, x2, y2]`);
    });
    boxes = tensor('float32', [rows.length, 4], rows.flat());
  } else boxes = t.boxes;
  const labels = Array.isArray(t.labels) ? tensor('int64', [t.labels.length], t.labels) : t.labels;
  return t.masks ? { boxes, labels, masks: t.masks } : { boxes, labels };
}

export class Detector extends Module {
  private constructor(
    readonly detectorHandle: NativeDetectorHandle,
    readonly config: DetectorConfig,
    readonly resolved: { name: string; options: Record<string, unknown> },
  ) {
    super(detectorHandle as unknown as NativeModuleHandle, resolved.name, resolved.options);
  }

  static async fromConfig(config: DetectorConfig): Promise<Detector> {
    const resolved = resolveDetectorConfig(config);
    const site = new Error().stack;
    try {
      const h = await native().createDetector(resolved.name, optionsJson(resolved.options, `detector ${config.arch}`), config.device ?? 'cpu', config.channelsLast ? 'channels_last' : 'contiguous');
      return new Detector(h, config, resolved);
    } catch (err) {
      throw withCallSite(err, site);
    }
  }

  override info(): DetectorInfo {
    if (this.disposed) throw disposedError(this.kind, 'info');
    return this.detectorHandle.info();
  }

  /** Loads by name; two-stage models first take torchvision's renames of older checkpoints. */
  override async loadStateDict(dict: StateDict, options: { strict?: boolean } = {}): Promise<LoadReport> {
    return super.loadStateDict(isTwoStage(this.resolved.name) ? renameLegacyTwoStageKeys(dict) : dict, options);
  }

  /** Feature tap names, finest first ("p3".."p7"). */
  get featureNames(): string[] {
    return this.info().featureNames;
  }

  get featureChannels(): number {
    return this.info().featureChannels;
  }

  get numClasses(): number {
    return this.info().numClasses;
  }

  /** Every native option with its resolved value (for run directories). */
  nativeConfig(): Record<string, unknown> {
    return JSON.parse(this.info().config) as Record<string, unknown>;
  }

  /** Runs the model in its current mode. `grad` keeps autograd (only useful natively). */
  async run(images: Tensor[], targets: Target[] | null, what: RunWhat): Promise<RunResult> {
    const nt = targets ? targets.map(toNativeTarget) : null;
    return this.enqueue(() => this.detectorHandle.run(images, nt, what, false));
  }

  /** Detections in original image pixels (eval mode). */
  async predict(images: Tensor[]): Promise<Detection[]> {
    // Eval mode and the run in one queued call, so a dispose() right after still lets it finish.
    return this.enqueue(async () => {
      this.detectorHandle.setTraining(false);
      return (await this.detectorHandle.run(images, null, { detections: true }, false)).detections;
    });
  }

  /** Feature tap strides in input pixels, by tap name ({p3: 8, ..., p7: 128}). */
  get featureStrides(): Record<string, number> {
    const info = this.info();
    return Object.fromEntries(info.featureNames.map((n, i) => [n, info.featureStrides[i] as number]));
  }

  /**
   * Each image's [h, w] after this model's resize in eval mode, for images of these [h, w]
   * (the sizes an eval-mode run reports, without running; what cached features were computed at).
   */
  evalImageSizes(sizes: [number, number][]): [number, number][] {
    return this.detectorHandle.evalImageSizes(sizes);
  }

  /**
   * The scales the RoI poolers of a two-stage model use, finest pooled level first ([] for
   * RetinaNet). A model with `roi_scales: "infer"` (torchvision's MultiScaleRoIAlign) infers them
   * from its first batch and keeps them: [] until then. That is state outside the weights, so
   * training checkpoints carry it and a resumed stage restores it with setRoiScales.
   */
  roiScales(): number[] {
    return this.detectorHandle.roiScales();
  }

  /** Restores roiScales() ([]: infer again from the next batch). Throws for scales the model cannot take. */
  setRoiScales(scales: number[]): void {
    this.detectorHandle.setRoiScales(scales);
  }

  /**
   * Named FPN maps ("p3".."p7"), (N, C, H, W) over the padded batch, in the current mode, without
   * grad. With `{layout: true}`, a FeatureBatch: the maps with each image's resized size and each
   * tap's stride, which say where every image lies in the maps.
   */
  async features(images: Tensor[], options?: { amp?: boolean }): Promise<Record<string, Tensor<'float32'>>>;
  async features(images: Tensor[], options: { layout: true; amp?: boolean }): Promise<FeatureBatch>;
  async features(images: Tensor[], options?: { layout?: boolean; amp?: boolean }): Promise<Record<string, Tensor<'float32'>> | FeatureBatch>;
  async features(images: Tensor[], options: { layout?: boolean; amp?: boolean } = {}): Promise<Record<string, Tensor<'float32'>> | FeatureBatch> {
    const r = await this.run(images, null, { features: true, ...(options.amp ? { amp: true } : {}) });
    if (!options.layout) return r.features;
    return { maps: r.features, imageSizes: r.imageSizes, strides: this.featureStrides };
  }

  /** Named losses on `targets` in the current mode, without grad. */
  async losses(images: Tensor[], targets: Target[]): Promise<Record<string, number>> {
    return (await this.run(images, targets, { losses: true })).losses;
  }

  /** Every parameter (not buffers) under its dotted state-dict name, with its shape and whether it trains. */
  parameters(): RawParameterInfo[] {
    return native().detectorParameters(this.detectorHandle);
  }

  /**
   * A Hessian-vector product of the detection loss (the sum of the named losses) on `targets`,
   * in the current mode, by double backward: for each named parameter, (H v) and the gradient,
   * with the losses at the current weights. `vectors` maps parameter names to tensors of their shapes.
   */
  async hessianVectorProduct(images: Tensor[], targets: Target[], vectors: Map<string, Tensor>): Promise<HvpResult> {
    const nt = targets.map(toNativeTarget);
    const names = [...vectors.keys()];
    const r = await this.enqueue(() => native().detectorHvp(this.detectorHandle, images, nt, names, [...vectors.values()]));
    const loss = Object.values(r.losses).reduce((a, b) => a + b, 0);
    return {
      losses: r.losses,
      loss,
      gradient: new Map(r.names.map((n, i) => [n, r.gradient[i] as Tensor<'float32'>])),
      product: new Map(r.names.map((n, i) => [n, r.product[i] as Tensor<'float32'>])),
    };
  }

  /**
   * Writes the weights as safetensors with what rebuilds the model in the metadata (`mtpd.arch`,
   * `mtpd.num_classes`, `mtpd.width_mult`; read by `mtpd export`), atomically.
   */
  override async saveWeights(path: string, metadata: Record<string, string> = {}): Promise<void> {
    const own: Record<string, string> = { 'mtpd.arch': this.config.arch, 'mtpd.num_classes': String(this.numClasses) };
    if (this.config.widthMult !== undefined) own['mtpd.width_mult'] = String(this.config.widthMult);
    await super.saveWeights(path, { ...own, ...metadata });
  }

  /** An optimizer over this model's trainable parameters. */
  async createOptimizer(options: OptimizerOptions = {}): Promise<Optimizer> {
    return this.enqueue(async () => createNativeOptimizer(this.detectorHandle, options, (fn) => this.enqueue(fn)));
  }

  /** Train mode, forward with losses, one backward, clip, optimizer step. */
  async trainStep(optimizer: Optimizer, images: Tensor[], targets: Target[]): Promise<TrainStepResult> {
    const nt = targets.map(toNativeTarget);
    return this.enqueue(async () => {
      this.detectorHandle.setTraining(true);
      return this.detectorHandle.trainStep(optimizer.handle, images, nt);
    });
  }
}

/** Builds a detector, e.g. `createDetector({arch: 'retinanet_resnet50_fpn', numClasses: 91})`. */
export async function createDetector(config: DetectorConfig): Promise<Detector> {
  return Detector.fromConfig(config);
}
