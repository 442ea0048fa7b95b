/**
 * Detectors (RetinaNet over ResNet/ResNeXt/Swin FPN backbones, torchvision's architecture and
 * parameter names) as async TS objects over the native addon.
 *
 * Images are `(3, H, W)` float32 tensors in 0..1 or `(H, W, 3)` uint8 tensors (decoded image
 * bytes); boxes are xyxy in the pixels of the images as given. Every call is queued per model, so
 * at most one runs natively at a time.
 */
import { disposedError } from './dispose.js';
import { MtpdError, withCallSite } from './errors.js';
import { Module } from './module.js';
import { native, type NativeModuleHandle, type RawModuleInfo } from './native.js';
import { createNativeOptimizer, type Optimizer, type OptimizerOptions } from './optim.js';
import { tensor, type Tensor } from './tensor.js';

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
  /** Further native options in torchvision's snake_case names (fg_iou_thresh, anchor_sizes, layers, ...). */
  options?: Record<string, unknown>;
}

export interface Target {
  /** (K, 4) xyxy in image pixels, as a float32 tensor or rows of numbers. */
  boxes: Tensor | number[][];
  /** (K) class indices. */
  labels: Tensor | number[];
}

export interface Detection {
  /** (D, 4) float32 xyxy in original image pixels. */
  boxes: Tensor<'float32'>;
  /** (D) float32, descending. */
  scores: Tensor<'float32'>;
  /** (D) int64 raw label indices. */
  labels: Tensor<'int64'>;
}

export interface RunWhat {
  losses?: boolean;
  features?: boolean;
  detections?: boolean;
  /** Mixed precision: the forward pass under CUDA autocast (float16); results come back float32. CUDA only. */
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
}

/** The native detector handle (native/binding/detector_wrap.cc). */
export interface NativeDetectorHandle extends Omit<NativeModuleHandle, 'info' | 'forward'> {
  info(): DetectorInfo;
  forward?: never;
  run(images: Tensor[], targets: NativeTarget[] | null, what: RunWhat, grad: boolean): Promise<RunResult>;
  trainStep(optimizer: unknown, images: Tensor[], targets: NativeTarget[]): Promise<TrainStepResult>;
  evalImageSizes(sizes: [number, number][]): [number, number][];
}

/**
 * Feature maps with where each image lies in them: image i, resized to imageSizes[i] = [h, w],
 * occupies the top-left ceil(h/s) x ceil(w/s) cells of a tap of stride strides[tap] = s; the
 * rest is padding (see src/distill/align.ts).
 */
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
}

declare module './native.js' {
  interface Binding {
    createDetector(name: string, optionsJson: string, device: string): Promise<NativeDetectorHandle>;
    listDetectors(): Record<string, string>;
  }
}

const BUILDER = /^retinanet_(.+?)_fpn(_v2)?$/;

/** Maps a builder name and config onto the native registry name and options. */
export function resolveDetectorConfig(config: DetectorConfig): { name: string; options: Record<string, unknown> } {
  if (!config || typeof config.arch !== 'string') throw new MtpdError('ERR_MTPD_ARGUMENT', 'detector config needs an arch');
  const options: Record<string, unknown> = {};
  const m = BUILDER.exec(config.arch);
  if (m) {
    options.backbone = m[1];
    if (m[2]) Object.assign(options, { extra_blocks: 'c5', head_norm: 'gn', box_loss: 'giou' });
  } else if (config.arch !== 'retinanet') {
    throw new MtpdError(
      'ERR_MTPD_ARGUMENT',
      `unknown detector arch "${config.arch}" (expected retinanet_<backbone>_fpn, e.g. retinanet_resnet50_fpn, retinanet_resnet18_fpn, retinanet_swin_t_fpn, retinanet_resnet50_fpn_v2, or retinanet with backbone)`,
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
  return { boxes, labels };
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
      const h = await native().createDetector(resolved.name, JSON.stringify(resolved.options), config.device ?? 'cpu');
      return new Detector(h, config, resolved);
    } catch (err) {
      throw withCallSite(err, site);
    }
  }

  override info(): DetectorInfo {
    if (this.disposed) throw disposedError(this.kind, 'info');
    return this.detectorHandle.info();
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
