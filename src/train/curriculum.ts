/**
 * The progressive curriculum (MTPD, Cao et al. ICML 2023, Sec. 3.1 and 4.2; method.md 1.2):
 * starting from the off-the-shelf student, one distillation stage per teacher in the chosen
 * order (BGS: weakest first, the strongest last), each a full schedule with its learning rate
 * restarting and new adapters, the student carried over from stage to stage.
 *
 * This file plans stages and chains them; running one stage (building the models, skipping it
 * when its result exists, resuming it, evaluating it) is the caller's `StageRunner` (the Run of
 * pipeline.ts), so the curriculum, the baselines and the ordering study share one runner.
 */
import type { Schedule } from '../config/schema.js';

export type Method = 'mtpd' | 'longer' | 'direct' | 'ensemble' | 'orders';

/** One training stage of the student. */
export interface StagePlan {
  /** Unique in the run: the stage's model file, checkpoints, metrics and report row. */
  name: string;
  /** A detection-only stage (the 'longer' baseline) or a distillation stage. */
  kind: 'detect' | 'distill';
  /** Teachers of a distillation stage (several only with ensemble 'maps'). */
  teachers: string[];
  /** Several teachers: the student matches the mean of their aligned maps through one distiller. */
  ensemble?: 'maps';
  schedule: Schedule;
  role: 'stage' | 'baseline' | 'order';
  method: Method;
  /** Teacher budgets (stage schedules) spent when this stage ends: the AP plot's x. */
  step: number;
}

/**
 * Runs one stage from the weights `from` and returns the student's weights after it (with
 * whatever else the runner records), or null when the stage was stopped (AbortSignal).
 */
export type StageRunner = (plan: StagePlan, from: string) => Promise<{ weights: string } | null>;

/** The curriculum's stages: "mtpd<i>-<teacher>", one stage schedule each. */
export function curriculumStages(order: string[], schedule: Schedule): StagePlan[] {
  return order.map((t, i) => ({
    name: `mtpd${i + 1}-${t}`,
    kind: 'distill' as const,
    teachers: [t],
    schedule,
    role: 'stage' as const,
    method: 'mtpd' as const,
    step: i + 1,
  }));
}

/**
 * Distils the student through the teachers in `order`, each stage starting from the previous
 * stage's student (the first from `ots`). Returns the final student's weights, or null when a
 * stage was stopped.
 */
export async function runCurriculum(order: string[], ots: string, schedule: Schedule, runStage: StageRunner): Promise<string | null> {
  let current = ots;
  for (const plan of curriculumStages(order, schedule)) {
    const r = await runStage(plan, current);
    if (!r) return null;
    current = r.weights;
  }
  return current;
}
