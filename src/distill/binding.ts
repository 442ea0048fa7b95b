/**
 * The distillation part of the addon's interface (module augmentation of src/native.ts).
 */
import type { NativeModuleHandle } from '../native.js';
import type { Tensor } from '../tensor.js';

/** Named feature maps, `{p3: (N, C, H, W), ...}`. */
export type FeatureMaps = Record<string, Tensor>;

/** What FGD needs: per image boxes (K, 4) xyxy in the pixels of `imageSizes[i]` = [h, w]. */
export interface LossContext {
  boxes?: Tensor[];
  imageSizes?: [number, number][];
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
  ): Promise<import('./step.js').DistillStepResult>;
  teacherFeatures(teacher: number, images: Tensor[]): Promise<FeatureMaps>;
  info(): { options: string; lr: number; steps: number; parameters: string[] };
  setLr(lr: number): void;
  optimizerState(): Promise<{ names: string[]; tensors: Tensor[] }>;
  loadOptimizerState(names: string[], tensors: Tensor[], strict: boolean): Promise<void>;
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
      createStep(
        student: unknown,
        teachers: { name: string; model: unknown; distiller: unknown; weight?: number }[],
        optionsJson: string,
      ): NativeDistillStepHandle;
    };
  }
}
