/**
 * The distillation part of the addon's interface (module augmentation of src/native.ts).
 */
import type { NativeModuleHandle } from '../native.js';
import type { Tensor } from '../tensor.js';

/** Named feature maps, `{p3: (N, C, H, W), ...}`. */
export type FeatureMaps = Record<string, Tensor>;

/**
 * Where a batch's images lie in one model's maps: per image [h, w] after that model's resize
 * (before padding), and each tap's stride in input pixels ({p3: 8, ..., p7: 128}).
 */
export interface MapLayout {
  imageSizes: [number, number][];
  strides: Record<string, number>;
}

/**
 * What the losses need besides the maps. FGD: per image boxes (K, 4) xyxy in the pixels of
 * `imageSizes[i]` = [h, w]. With both layouts, every pair aligns the student's maps onto the
 * teacher's grid image by image and the losses skip padding (native/distill/align.h); the boxes
 * are then in the student's resized pixels (imageSizes, if given, must be the student layout's).
 */
export interface LossContext {
  boxes?: Tensor[];
  imageSizes?: [number, number][];
  studentLayout?: MapLayout;
  teacherLayout?: MapLayout;
}

/** alignMap's result: the source's content on the target grid and the target's valid cells. */
export interface AlignedMap {
  /** (N, C, Ht, Wt), zero on padding. */
  aligned: Tensor<'float32'>;
  /** (N, 1, Ht, Wt): 1 on each image's valid cells. */
  mask: Tensor<'float32'>;
  /** Every image filled both maps exactly: the whole-map resize was the alignment. */
  whole: boolean;
}

export interface RawComputeResult {
  losses: Record<string, number>;
  total: number;
  /** pair -> "identity" | "conv1x1" | "resize" | "conv1x1+resize" */
  adapters: Record<string, string>;
  grads?: {
    /** d total / d student map, for every student tap a pair used. */
    student: Record<string, Tensor>;
    /** tap -> whether any gradient reached the teacher map (it never should). */
    teacherReceived: Record<string, boolean>;
    /** distiller parameter -> gradient norm, null when it got none. */
    params: Record<string, number | null>;
  };
}

export interface NativeDistillStepHandle {
  step(
    images: Tensor[],
    targets: { boxes: Tensor; labels: Tensor }[],
    teacherFeatures: (FeatureMaps | null)[] | null,
    teacherImageSizes: ([number, number][] | null)[] | null,
  ): Promise<import('./step.js').DistillStepResult>;
  teacherFeatures(teacher: number, images: Tensor[]): Promise<FeatureMaps>;
  info(): { options: string; lr: number; steps: number; parameters: string[] };
  setLr(lr: number): void;
  optimizerState(): Promise<{ names: string[]; tensors: Tensor[] }>;
  loadOptimizerState(names: string[], tensors: Tensor[], strict: boolean): Promise<void>;
  /** Frees the step's optimizer and its holds on the models (idempotent). */
  dispose(): void;
  setGradSync(sync: unknown): Promise<void>;
}

declare module '../native.js' {
  interface Binding {
    distill: {
      losses(): Record<string, string>;
      compute(
        distiller: NativeModuleHandle,
        student: FeatureMaps,
        teacher: FeatureMaps,
        context: LossContext | undefined,
        options: { grad?: boolean },
      ): Promise<RawComputeResult>;
      fgdMasks(context: LossContext, n: number, h: number, w: number): Promise<{ fg: Tensor; bg: Tensor }>;
      alignMap(
        source: Tensor,
        sourceSizes: [number, number][],
        sourceStride: number,
        targetHW: [number, number],
        targetSizes: [number, number][],
        targetStride: number,
        mode?: 'bilinear' | 'nearest',
      ): Promise<AlignedMap>;
      createStep(
        student: unknown,
        teachers: { name: string; model: unknown; distiller: unknown; weight?: number; strides?: Record<string, number> }[],
        optionsJson: string,
      ): NativeDistillStepHandle;
    };
  }
}
