/**
 * Which FPN levels a student and a teacher distil, paired by stride.
 *
 * A model's distillable levels are its FPN taps, except that a two-stage detector (Mask R-CNN,
 * Faster R-CNN, Cascade) gives only p2..p5: its p6 is torchvision's `pool` (LastLevelMaxPool, a
 * max-pooled copy of p5 that the RPN alone reads), so it carries nothing of its own. A RetinaNet
 * gives p3..p7. A student's level is paired with the teacher's level of the same stride (the
 * same cells of the image): Mask R-CNN (p2..p5, strides 4..32) with RetinaNet (p3..p7, strides
 * 8..128) distils p3, p4, p5. In mtpd every tap pN has stride 2^N, so a pair is two taps of the
 * same name; a pair whose names differ is refused (the distillers match maps by name).
 */
import type { Config } from '../config/schema.js';
import { isTwoStage } from '../detector.js';
import { MtpdError } from '../errors.js';

/** What the pairing needs of a detector (a Detector has all of it). */
export interface LevelSource {
  featureNames: string[];
  featureStrides: Record<string, number>;
  resolved: { name: string };
}

/** Two-stage taps that are no distillation point (torchvision's `pool` level). */
const TWO_STAGE_SKIP = new Set(['p6']);

/** The taps of `det` that can be distilled, finest first, with their strides. */
export function distillableLevels(det: LevelSource): { name: string; stride: number }[] {
  const twoStage = isTwoStage(det.resolved.name);
  return det.featureNames.filter((n) => !(twoStage && TWO_STAGE_SKIP.has(n))).map((n) => ({ name: n, stride: det.featureStrides[n] as number }));
}

/**
 * The levels distilled from `teacher` into `student`: those of equal stride among both models'
 * distillable levels (config.distill.levels narrows them; each must be one of them).
 */
export function pairedLevels(student: LevelSource, teacher: LevelSource, levels?: string[]): string[] {
  const t = new Map(distillableLevels(teacher).map((l) => [l.stride, l.name]));
  const shared: string[] = [];
  for (const l of distillableLevels(student)) {
    const tn = t.get(l.stride);
    if (tn === undefined) continue;
    if (tn !== l.name) throw new MtpdError('ERR_MTPD_CONFIG', `the student's level ${l.name} and the teacher's ${tn} have the same stride ${l.stride} but different names; distillation pairs maps by name`);
    shared.push(l.name);
  }
  const wanted = levels ?? shared;
  const missing = wanted.filter((l) => !shared.includes(l));
  const describe = (d: LevelSource) => distillableLevels(d).map((l) => `${l.name}/${l.stride}`).join(', ');
  if (missing.length) {
    throw new MtpdError('ERR_MTPD_CONFIG', `distill.levels names ${missing.join(', ')}, which student and teacher do not share (shared by stride: ${shared.join(', ') || 'none'}; student ${describe(student)}; teacher ${describe(teacher)})`);
  }
  if (wanted.length === 0) throw new MtpdError('ERR_MTPD_CONFIG', `the student's distillable FPN levels (${describe(student)}) and the teacher's (${describe(teacher)}) share no stride`);
  return wanted;
}

/**
 * The levels of the cost matrix over a student and its teachers: config.distill.levels, or the
 * levels every teacher pairs with the student (so every cost is measured on levels all pairs distil).
 */
export function runLevels(student: LevelSource, teachers: LevelSource[], config: Pick<Config, 'distill'>): string[] {
  const given = config.distill.levels;
  let common: string[] | null = null;
  for (const t of teachers) {
    const p = pairedLevels(student, t, given);
    common = common === null ? p : common.filter((l) => p.includes(l));
  }
  const levels = common ?? distillableLevels(student).map((l) => l.name);
  if (levels.length === 0) throw new MtpdError('ERR_MTPD_CONFIG', 'the student and its teachers share no FPN level that every teacher can distil (see distill.levels)');
  return levels;
}
