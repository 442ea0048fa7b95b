/**
 * A distillation stage of the curriculum: the student learns from one teacher (MTPD) or several
 * at once (the ensemble baseline) for a full schedule, with its own adapters and loss-side
 * modules (new for every stage, dropped when the stage ends), one optimizer over the student and
 * the distillers, and checkpoints that carry both.
 */
import type { Config } from '../config/schema.js';
import type { Detector } from '../detector.js';
import { Distiller } from '../distill/distiller.js';
import { DistillSession } from '../distill/step.js';
import { MtpdError } from '../errors.js';
import { stateDictFromNative, type StateDict } from '../weights/safetensors.js';
import { type DetectionStageOptions, optimizerFor, runLoaderStage, type StageState } from './detection.js';
import type { StageResult } from './loop.js';

export interface DistillStageOptions extends Omit<DetectionStageOptions, 'det'> {
  student: Detector;
  teachers: { name: string; det: Detector }[];
  ensemble?: 'sum' | 'mean';
}

/** The FPN levels a student and a teacher share (config.distill.levels narrows them). */
export function sharedLevels(student: Detector, teacher: Detector, config: Config): string[] {
  const t = new Set(teacher.featureNames);
  const shared = student.featureNames.filter((n) => t.has(n));
  const wanted = config.distill.levels ?? shared;
  const missing = wanted.filter((l) => !shared.includes(l));
  if (missing.length) {
    throw new MtpdError('ERR_MTPD_CONFIG', `distill.levels names ${missing.join(', ')}, which student and teacher do not share (${shared.join(', ') || 'none'})`);
  }
  if (wanted.length === 0) throw new MtpdError('ERR_MTPD_CONFIG', `the student's FPN (${student.featureNames.join(', ')}) and the teacher's (${teacher.featureNames.join(', ')}) share no level`);
  return wanted;
}

export async function trainDistillStage(o: DistillStageOptions): Promise<StageResult> {
  const { student, config, schedule } = o;
  const distillers: Distiller[] = [];
  for (const t of o.teachers) {
    distillers.push(
      await Distiller.create(
        {
          student_channels: student.featureChannels,
          teacher_channels: t.det.featureChannels,
          seed: config.seed,
          taps: sharedLevels(student, t.det, config),
          losses: [{ type: config.distill.loss, weight: config.distill.weight, options: config.distill.options }],
        },
        config.device,
      ),
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
  const session = await DistillSession.create(
    student,
    o.teachers.map((t, i) => ({ name: t.name, model: t.det, distiller: distillers[i] as Distiller })),
    {
      ensemble: o.ensemble ?? 'sum',
      optimizer: optimizerFor(schedule),
    },
  );
  return runLoaderStage({
    ...o,
    resumeState: resuming ? state : null,
    optimizer: { stateDict: () => session.optimizerState(), loadStateDict: (sd) => session.loadOptimizerState(sd) },
    tags: { teachers: o.teachers.map((t) => t.name).join('+') },
    step: async (images, targets, lr) => {
      session.setLr(lr);
      return (await session.step({ images, targets })).losses;
    },
    weights: async () => {
      const weights: Record<string, StateDict> = { model: await student.stateDict() };
      for (const [i, d] of distillers.entries()) {
        weights[`distiller${i}`] = stateDictFromNative(await d.stateDict());
      }
      return weights;
    },
  });
}
