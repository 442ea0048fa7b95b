/**
 * The baselines of the paper (Sec. 4.2, Tables 3 and 4; method.md 1.5), each ONE continuous
 * schedule of the progressive curriculum's whole budget (k stages of the stage schedule = k x
 * its iterations) from the off-the-shelf student:
 *
 *   longer-<k>x        the student trained on detection alone (the paper's "3x" row for k = 2)
 *   direct-<teacher>   distillation from the strongest teacher (the last of the order), one
 *                      set of adapters for the whole schedule
 *   ensemble-<a>+<b>   distillation from the ensemble of the order's teachers: the student
 *                      matches the mean of their aligned maps through one distiller, so the
 *                      total distillation weight is one teacher's
 *
 * The schedule keeps its policy over the longer run: step milestones stay fractions (a 2x step
 * schedule drops at 2/3 and 11/12 of 2x), warmup stays the same number of steps.
 */
import type { Schedule } from '../config/schema.js';
import { MtpdError } from '../errors.js';
import type { StagePlan, StageRunner } from './curriculum.js';

export type Baseline = 'longer' | 'direct' | 'ensemble';

export const BASELINES: readonly Baseline[] = ['longer', 'direct', 'ensemble'];

/** The stage schedule stretched to `k` stages: `k * stageIterations` steps in one schedule. */
export function budgetSchedule(schedule: Schedule, stageIterations: number, k: number): Schedule {
  const { epochs: _epochs, ...rest } = schedule;
  return { ...rest, iterations: k * stageIterations };
}

/**
 * The one stage of baseline `b` for a curriculum in `order` (k = order.length stages of
 * `stageIterations` steps each), or null when the baseline would repeat another run: the
 * ensemble of a one-teacher order is direct distillation.
 */
export function baselineStage(b: Baseline, order: string[], schedule: Schedule, stageIterations: number): StagePlan | null {
  const k = order.length;
  if (k === 0) throw new MtpdError('ERR_MTPD_CONFIG', `baseline ${b}: the teacher order is empty`);
  const strongest = order[k - 1] as string;
  const common = { schedule: budgetSchedule(schedule, stageIterations, k), role: 'baseline' as const, method: b, step: k };
  switch (b) {
    case 'longer':
      return { ...common, name: `longer-${k}x`, kind: 'detect', teachers: [] };
    case 'direct':
      return { ...common, name: `direct-${strongest}`, kind: 'distill', teachers: [strongest] };
    case 'ensemble':
      if (k < 2) return null;
      // The strongest teacher first: the mean is taken on its grid, through its distiller.
      return { ...common, name: `ensemble-${order.join('+')}`, kind: 'distill', teachers: [strongest, ...order.slice(0, -1)], ensemble: 'maps' };
    default:
      throw new MtpdError('ERR_MTPD_CONFIG', `unknown baseline "${String(b)}" (known: ${BASELINES.join(', ')})`);
  }
}

/** Runs baseline `b` from the off-the-shelf student `ots`; its weights, null when stopped, 'skipped' when it would repeat another run. */
export async function runBaseline(b: Baseline, order: string[], ots: string, schedule: Schedule, stageIterations: number, runStage: StageRunner): Promise<string | null | 'skipped'> {
  const plan = baselineStage(b, order, schedule, stageIterations);
  if (!plan) return 'skipped';
  const r = await runStage(plan, ots);
  return r ? r.weights : null;
}
