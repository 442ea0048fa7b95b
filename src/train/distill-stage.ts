/**
 * A distillation stage: the student learns from one teacher (an MTPD stage, the direct
 * baseline) or from the mean of several teachers' maps (the ensemble baseline) for a full
 * schedule, with its own adapters and loss-side modules (new for every stage, dropped when the
 * stage ends), one optimizer over the student and the distillers, and checkpoints that carry
 * both. The ratio of the distillation to the detection loss is logged when the stage starts and
 * shown in its progress lines, with a warning when distillation swamps detection (> 10x).
 */
import type { Config } from '../config/schema.js';
import type { Detector } from '../detector.js';
import { Distiller } from '../distill/distiller.js';
import type { FeatureMaps } from '../distill/binding.js';
import { DistillSession } from '../distill/step.js';
import { Disposer } from '../dispose.js';
import { MtpdError } from '../errors.js';
import { setSeed } from '../runtime.js';
import { stateDictFromNative, type StateDict } from '../weights/safetensors.js';
import { type DetectionStageOptions, optimizerFor, runLoaderStage, type StageState } from './detection.js';
import type { StageResult } from './loop.js';
import { pairedLevels } from './levels.js';
import { targetLabelsOf } from './models.js';
import { totalIterations } from './schedule.js';
import { stageSeed } from './stage-seed.js';
import { attachGradSync, jobBatch } from '../dist/train.js';
import type { TeacherCache } from './teacher-cache.js';

export interface DistillStageOptions extends Omit<DetectionStageOptions, 'det'> {
  student: Detector;
  teachers: { name: string; det: Detector }[];
  /** Several teachers: 'maps' (the student matches the mean of the aligned teachers' maps, one distiller), 'sum' or 'mean' of per-teacher losses. */
  ensemble?: 'sum' | 'mean' | 'maps';
  /** The run's teacher maps (computed once per image, flip and teacher); none: teachers run on every step. */
  teacherCache?: TeacherCache | null;
}

/** Above this distillation/detection loss ratio a stage warns that distillation swamps detection. */
export const RATIO_WARNING = 10;

/**
 * PKD is scale-free (w (1 - Pearson r) per level, summed over levels) and its published weights
 * are 6-10, so at the weights it is meant to run with it is 10-30x a trained student's detection
 * loss; it warns only when far beyond that.
 */
export const RATIO_WARNING_PKD = 50;

/** The ratio above which a stage with this distillation loss warns. */
export function ratioWarningThreshold(loss: string): number {
  return loss === 'pkd' ? RATIO_WARNING_PKD : RATIO_WARNING;
}

/** Steps at the start of a distillation stage over which its distillation/detection ratio is logged. */
export const RATIO_WINDOW = 10;

function ratioOf(distill: number, det: number): number {
  return det > 0 ? distill / det : distill > 0 ? Infinity : 0;
}

function fmtRatio(r: number): string {
  return Number.isFinite(r) ? r.toFixed(2) : 'inf';
}

/** Sum of the "distill." terms over the sum of the detection terms of one step's losses. */
export function distillRatio(losses: Record<string, number>): number {
  let distill = 0;
  let det = 0;
  for (const [k, v] of Object.entries(losses)) {
    if (k.startsWith('distill.')) distill += v;
    else det += v;
  }
  return ratioOf(distill, det);
}

function ratioWarning(stage: string, ratio: number, weight: number, loss: string): string {
  const suggest = Number.isFinite(ratio) && ratio > 0 ? ` (e.g. distill.weight ${(weight / ratio).toPrecision(2)} makes them equal)` : '';
  const scaleFree = loss === 'pkd' ? '' : ', or use the scale-free distill.loss pkd';
  return `warning: ${stage}: the distillation loss is ${ratio.toFixed(1)}x the detection loss; it will swamp the detection task. Lower distill.weight${suggest}${scaleFree}.`;
}

/** The FPN levels distilled from a teacher into a student, paired by stride (levels.ts; config.distill.levels narrows them). */
export function sharedLevels(student: Detector, teacher: Detector, config: Config): string[] {
  return pairedLevels(student, teacher, config.distill.levels);
}

export async function trainDistillStage(o: DistillStageOptions): Promise<StageResult> {
  const { student, config, schedule } = o;
  // The stage's own generator stream: adapter initialization and, through each distiller's own
  // seed, MGD's masks (a resumed stage restores the saved generators and mask states).
  setSeed(o.seed);
  // The stage's adapters and its session (the optimizer over student and adapters) are freed
  // when the stage ends; the student and teachers belong to the caller.
  await using owned = new Disposer();
  const distillers: Distiller[] = [];
  // Under ensemble "maps" the first distiller reads every teacher's maps: only the levels every
  // teacher pairs with the student (a Mask R-CNN's p2 has no RetinaNet partner).
  const levelsOf = o.teachers.map((t) => sharedLevels(student, t.det, config));
  const mapsLevels = (levelsOf[0] ?? []).filter((l) => levelsOf.every((ls) => ls.includes(l)));
  if (o.ensemble === 'maps' && mapsLevels.length === 0) {
    throw new MtpdError('ERR_MTPD_CONFIG', `${o.stage}: the teachers ${o.teachers.map((t) => t.name).join(', ')} share no level with the student for the ensemble of maps (${levelsOf.map((ls, i) => `${o.teachers[i]?.name}: ${ls.join('/')}`).join('; ')})`);
  }
  for (const [i, t] of o.teachers.entries()) {
    distillers.push(
      owned.add(await Distiller.create(
        {
          student_channels: student.featureChannels,
          teacher_channels: t.det.featureChannels,
          seed: stageSeed(o.seed, `distiller${i}`),
          taps: o.ensemble === 'maps' ? mapsLevels : (levelsOf[i] as string[]),
          losses: [{ type: config.distill.loss, weight: config.distill.weight, options: config.distill.options }],
        },
        config.device,
      )),
    );
  }
  const state = (o.resume?.state ?? null) as StageState | null;
  const resuming = o.resume && state?.stage === o.stage;
  if (resuming && o.resume) {
    await student.loadStateDict(await o.resume.weights('model'));
    for (const [i, d] of distillers.entries()) {
      const sd = await o.resume.weights(`distiller${i}`);
      await d.loadStateDict([...sd.keys()], [...sd.values()], true);
    }
  }
  const session = owned.add(await DistillSession.create(
    student,
    o.teachers.map((t, i) => ({ name: t.name, model: t.det, distiller: distillers[i] as Distiller })),
    {
      ensemble: o.ensemble ?? 'sum',
      optimizer: optimizerFor(schedule),
    },
  ));
  const gradSync = await attachGradSync(session, config, { model: student, stage: o.stage, log: o.log });
  // The distillation/detection ratio: logged once the stage's first RATIO_WINDOW steps are done
  // (over those steps, and at its first step, where a new adapter is still random), smoothed in
  // every progress line, and a warning (once per stage) when distillation swamps detection.
  const log = o.log ?? (() => undefined);
  const total = totalIterations(schedule, o.splits.train.length, jobBatch(config));
  const left = total - (resuming && state ? state.iter : 0);
  const window = { size: Math.max(1, Math.min(RATIO_WINDOW, left)), steps: 0, distill: 0, det: 0, first: NaN, done: false };
  let warned = false;
  let emaDistill: number | null = null;
  let emaDet: number | null = null;
  const warnIf = (ratio: number) => {
    if (ratio > ratioWarningThreshold(config.distill.loss) && !warned) {
      warned = true;
      log(ratioWarning(o.stage, ratio, config.distill.weight, config.distill.loss));
    }
  };
  const onLosses = (losses: Record<string, number>) => {
    let d = 0;
    let det = 0;
    for (const [k, v] of Object.entries(losses)) {
      if (k.startsWith('distill.')) d += v;
      else det += v;
    }
    emaDistill = emaDistill === null ? d : 0.9 * emaDistill + 0.1 * d;
    emaDet = emaDet === null ? det : 0.9 * emaDet + 0.1 * det;
    if (window.done) {
      warnIf(ratioOf(emaDistill, emaDet));
      return;
    }
    if (window.steps === 0) window.first = ratioOf(d, det);
    window.steps++;
    window.distill += d;
    window.det += det;
    if (window.steps >= window.size) {
      window.done = true;
      const ratio = ratioOf(window.distill, window.det);
      const when = resuming && state ? `the ${window.steps} step${window.steps === 1 ? '' : 's'} after step ${state.iter}` : `the first ${window.steps} step${window.steps === 1 ? '' : 's'}`;
      log(`${o.stage}: distillation/detection loss ratio ${fmtRatio(ratio)} over ${when} (${fmtRatio(window.first)} at the first; ${config.distill.loss}, weight ${config.distill.weight})`);
      warnIf(ratio);
    }
  };
  const cache = o.teacherCache;
  const before = cache ? { hits: cache.hits, misses: cache.misses, unwritten: cache.unwritten, ...cache.seconds } : null;
  const result = await runLoaderStage({
    ...o,
    resumeState: resuming ? state : null,
    gradSync,
    optimizer: { stateDict: () => session.optimizerState(), loadStateDict: (sd) => session.loadOptimizerState(sd) },
    tags: { teachers: o.teachers.map((t) => t.name).join('+') },
    targetLabels: targetLabelsOf(student),
    progressNote: () => `distill/det ${fmtRatio(ratioOf(emaDistill ?? 0, emaDet ?? 0))}`,
    step: async (images, targets, lr, batch) => {
      session.setLr(lr);
      let teacherFeatures: FeatureMaps[] | undefined;
      if (cache) {
        const meta = batch.imageIds.map((id, i) => ({ id, flipped: batch.flipped[i] ?? false }));
        teacherFeatures = [];
        for (const [i, t] of o.teachers.entries()) {
          // (the session runs its teachers under autocast when the schedule asks for amp)
          teacherFeatures.push(await cache.batch(t.name, t.det, meta, images, (x) => session.teacherFeatures(i, x), { amp: schedule.amp }));
        }
      }
      const losses = (await session.step({ images, targets, ...(teacherFeatures ? { teacherFeatures } : {}) })).losses;
      onLosses(losses);
      return losses;
    },
    weights: async () => {
      const weights: Record<string, StateDict> = { model: await student.stateDict() };
      for (const [i, d] of distillers.entries()) {
        weights[`distiller${i}`] = stateDictFromNative(await d.stateDict());
      }
      return weights;
    },
    model: student,
  });
  if (cache && before) {
    const full = cache.unwritten > before.unwritten ? `; ${cache.unwritten - before.unwritten} not kept (distill.cacheGiB is full)` : '';
    const s = cache.seconds;
    const secs = `${(s.read - before.read).toFixed(1)} s reading, ${(s.compute - before.compute).toFixed(1)} s computing, ${(s.write - before.write).toFixed(1)} s writing`;
    log(`${o.stage}: teacher maps: ${cache.hits - before.hits} read from the run's cache, ${cache.misses - before.misses} computed${full} (${secs})`);
  }
  return result;
}
