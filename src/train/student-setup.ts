/**
 * The student's setup: its backbone norm layer and how many backbone stages train, ONE choice
 * for the whole run. It is resolved once, before anything trains (the off-the-shelf stage
 * changes `student.weights` from null to a file, so resolving later would flip 'auto'), and
 * every stage the student goes through builds it this way: its off-the-shelf training, every
 * progressive stage, every baseline, every order of `mtpd orders`.
 *
 *   auto, weights null (trained from scratch here): trainable BatchNorm, all 5 stages trainable
 *   auto, weights given (pretrained):              FrozenBatchNorm, 3 stages trainable (torchvision's default)
 *   a `_v2` two-stage student (maskrcnn_<backbone>_fpn_v2): trainable BatchNorm either way, as
 *   torchvision's v2 builders (nn.BatchNorm2d whether or not the backbone is pretrained)
 */
import type { StudentConfig } from '../config/schema.js';

export interface StudentSetup {
  /** torchvision's norm_layer: BatchNorm2d that trains, or FrozenBatchNorm2d. */
  norm: 'bn' | 'frozen_bn';
  /** torchvision's trainable_backbone_layers (0..5, from the top). */
  trainableLayers: number;
}

/** The concrete setup of a student config: 'auto' decided by whether it starts from given weights. */
export function resolveStudentSetup(student: Pick<StudentConfig, 'weights' | 'norm' | 'trainableLayers'> & { backbone?: string | null; arch?: string }): StudentSetup {
  // a pretrained backbone (student.backbone) starts from given weights too, as torchvision's weights_backbone
  const scratch = student.weights === null && !student.backbone;
  const v2 = /^(maskrcnn|fasterrcnn)_.+_fpn_v2$/.test(student.arch ?? '');
  return {
    norm: student.norm === 'auto' ? (scratch || v2 ? 'bn' : 'frozen_bn') : student.norm,
    trainableLayers: student.trainableLayers === 'auto' ? (scratch ? 5 : 3) : student.trainableLayers,
  };
}

/** One line for logs and reports: "trainable BatchNorm, 5 of 5 backbone stages trainable". */
export function formatStudentSetup(s: StudentSetup): string {
  return `${s.norm === 'bn' ? 'trainable BatchNorm' : 'frozen BatchNorm'}, ${s.trainableLayers} of 5 backbone stages trainable`;
}
