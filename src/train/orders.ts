/**
 * The ordering study (the paper's Table 2, small): the student distilled through EVERY order of
 * the pool's teachers (every sequence of 1..k distinct teachers) with a short per-teacher budget
 * and a linear learning-rate schedule, as in the paper's study (3 epochs per teacher, linear LR,
 * against a 12-epoch 1x stage), then every final student evaluated and the orders ranked by AP,
 * with the rank of the order Backward Greedy Selection picks.
 *
 * Orders share prefixes: the order A -> B continues from A's result, so the work is one stage
 * per node of the tree of prefixes. Each node is a stage of the run (its own seed, checkpoints
 * and step-skipping), named after the budget and the order, so a rerun skips what is done and a
 * run with another budget does not reuse it.
 */
import { mkdir } from 'node:fs/promises';
import type { Config, Schedule } from '../config/schema.js';
import { MtpdError } from '../errors.js';
import { allOrders } from '../order/bgs.js';
import { writeFileAtomic } from '../weights/atomic.js';
import type { StagePlan } from './curriculum.js';
import { formatResults, type ModelResult, prepareRun, STATS_HEAD, type TrainOptions } from './pipeline.js';
import { totalIterations } from './schedule.js';
import { jobBatch } from '../dist/train.js';
import { formatStudentSetup, type StudentSetup } from './student-setup.js';

export interface OrdersOptions extends TrainOptions {
  /** Steps per teacher (default: a quarter of the stage schedule, as the paper's 3 of 12 epochs). */
  iterations?: number;
  /** Longest order (default: order.k of the config). */
  k?: number;
  /** Refuse to run more than this many stages (tree nodes); default 64. */
  maxStages?: number;
}

export interface OrderRow {
  /** Forward order: order[0] is distilled first. */
  order: string[];
  /** The stage that made the final student of this order. */
  name: string;
  ap: number;
  stats: number[];
  /** A mask student's segm stats (mask AP first). */
  segm?: number[];
  rank: number;
  bgs: boolean;
}

export interface OrdersReport {
  output: string;
  /** Steps per teacher and the schedule of every stage. */
  iterations: number;
  k: number;
  schedule: Schedule;
  student: { name: string; ap: number; stats: number[]; segm?: number[] } & StudentSetup;
  /** The BGS order of the run (costs of the run folder) and its rank among the orders (1 = best). */
  bgs: string[];
  bgsRank: number | null;
  /** Every order, best first. */
  orders: OrderRow[];
  /** Stages run (tree nodes), shared prefixes counted once. */
  stages: number;
  aborted: boolean;
}

/** The stage name of an order's final node: the budget and the whole order ("orders@100:a>b"). */
export function orderStageName(order: string[], iterations: number): string {
  return `orders@${iterations}:${order.join('>')}`;
}

/** The short schedule of every node: `iterations` steps, linear decay, warmup at most a fifth of it. */
export function orderSchedule(schedule: Schedule, iterations: number): Schedule {
  const { epochs: _epochs, ...rest } = schedule;
  return { ...rest, iterations, policy: 'linear', warmupIterations: Math.min(schedule.warmupIterations, Math.floor(iterations / 5)) };
}

/** Every node of the prefix tree in an order that visits each prefix before its extensions. */
export function orderStages(teachers: string[], k: number, schedule: Schedule, iterations: number): { order: string[]; plan: StagePlan }[] {
  return allOrders(teachers, Math.min(k, teachers.length)).map((order) => ({
    order,
    plan: {
      name: orderStageName(order, iterations),
      kind: 'distill',
      teachers: [order[order.length - 1] as string],
      schedule: orderSchedule(schedule, iterations),
      role: 'order',
      method: 'orders',
      step: order.length,
    },
  }));
}

/** Ranks rows best first (AP, then shorter orders, then by name) and numbers them. */
function rank(rows: Omit<OrderRow, 'rank'>[]): OrderRow[] {
  const sorted = [...rows].sort((a, b) => b.ap - a.ap || a.order.length - b.order.length || (a.order.join('>') < b.order.join('>') ? -1 : 1));
  return sorted.map((r, i) => ({ ...r, rank: i + 1 }));
}

/** The table of an ordering study: every order's AP, best first, the BGS order marked. */
export function formatOrders(r: OrdersReport): string {
  const label = (o: string[]) => o.join(' -> ');
  const w = Math.max(5, ...r.orders.map((o) => label(o.order).length));
  const pct = (v: number) => (v < 0 ? '   -' : (100 * v).toFixed(1)).padStart(6);
  const masks = r.orders.some((o) => o.segm);
  const signed = (v: number) => {
    const d = Math.round(1000 * v) / 10;
    return `${d > 0 ? '+' : ''}${d.toFixed(1)}`;
  };
  const head = `${'rank'.padStart(4)}  ${'order'.padEnd(w)}  ${'BGS'.padEnd(3)}  ${STATS_HEAD.map((h) => h.padStart(6)).join(' ')}  ${'vs OTS'.padStart(6)}${masks ? `  ${'mAP'.padStart(6)}  ${'mask vs OTS'.padStart(11)}` : ''}`;
  const lines = r.orders.map((o) => {
    const mask = masks ? `  ${pct(o.segm?.[0] ?? -1)}  ${(o.segm && r.student.segm ? signed((o.segm[0] as number) - (r.student.segm[0] as number)) : '').padStart(11)}` : '';
    return `${String(o.rank).padStart(4)}  ${label(o.order).padEnd(w)}  ${(o.bgs ? '*' : '').padEnd(3)}  ${o.stats.slice(0, 6).map(pct).join(' ')}  ${signed(o.ap - r.student.ap).padStart(6)}${mask}`.trimEnd();
  });
  const bgs = r.bgsRank !== null ? `BGS order ${label(r.bgs)}: rank ${r.bgsRank} of ${r.orders.length}` : `BGS order ${label(r.bgs)}: not among the orders run (k ${r.k})`;
  return [
    `every order of up to ${r.k} teachers, ${r.iterations} steps per teacher (linear LR), from the off-the-shelf student ${r.student.name} (AP ${(100 * r.student.ap).toFixed(1)}; ${formatStudentSetup(r.student)})`,
    '',
    head,
    '-'.repeat(head.length),
    ...lines,
    '',
    bgs,
  ].join('\n');
}

/**
 * `mtpd orders`: trains (or loads) the pool and the student, measures the costs and the BGS
 * order as `mtpd train` does (same run folder, same step-skipping), then runs the study and
 * writes orders.json and orders.md to the run folder.
 */
export async function runOrders(config: Config, options: OrdersOptions = {}): Promise<OrdersReport> {
  const k = options.k ?? config.order.k;
  if (!Number.isInteger(k) || k < 1) throw new MtpdError('ERR_MTPD_ARGUMENT', `--k must be a positive integer, got ${k}`);
  if (options.iterations !== undefined && (!Number.isInteger(options.iterations) || options.iterations < 1)) {
    throw new MtpdError('ERR_MTPD_ARGUMENT', `--iterations must be a positive integer, got ${options.iterations}`);
  }
  // The order BGS picks for this k is the one to mark.
  const withBgs: Config = { ...config, order: { ...config.order, method: 'bgs', k } };
  const { run, splits, resolved, results, order: bgs, setup } = await prepareRun(withBgs, options);
  const stageIterations = totalIterations(resolved.schedule, splits.train.length, jobBatch(resolved));
  const iterations = options.iterations ?? Math.max(1, Math.round(stageIterations / 4));
  const nodes = orderStages(resolved.teachers.map((t) => t.name), k, resolved.schedule, iterations);
  const max = options.maxStages ?? 64;
  if (nodes.length > max) throw new MtpdError('ERR_MTPD_ARGUMENT', `every order of up to ${k} of ${resolved.teachers.length} teachers is ${nodes.length} stages (more than ${max}); lower --k`);
  const ots = results.find((r) => r.role === 'student') as ModelResult;
  run.log(`orders: ${nodes.length} stages of ${iterations} steps (every order of up to ${k} teachers, prefixes shared)`);

  const weightsOf = new Map<string, string>([['', ots.weights]]);
  const done: Omit<OrderRow, 'rank'>[] = [];
  const evaluated: ModelResult[] = [];
  let aborted = false;
  for (const { order, plan } of nodes) {
    const from = weightsOf.get(order.slice(0, -1).join('>')) as string;
    const r = await run.stage(plan, from, { splits, resolved });
    if (!r) {
      aborted = true;
      break;
    }
    weightsOf.set(order.join('>'), r.weights);
    evaluated.push(r);
    done.push({ order, name: plan.name, ap: r.ap, stats: r.stats, ...(r.segm ? { segm: r.segm } : {}), bgs: order.join('>') === bgs.join('>') });
  }
  const orders = rank(done);
  const bgsRow = orders.find((o) => o.bgs);
  const report: OrdersReport = {
    output: resolved.output,
    iterations,
    k,
    schedule: orderSchedule(resolved.schedule, iterations),
    student: { name: ots.name, ap: ots.ap, stats: ots.stats, ...(ots.segm ? { segm: ots.segm } : {}), ...setup },
    bgs,
    bgsRank: bgsRow ? bgsRow.rank : null,
    orders,
    stages: evaluated.length,
    aborted,
  };
  if (!aborted) {
    await mkdir(resolved.output, { recursive: true });
    await writeFileAtomic(run.path('orders.json'), [Buffer.from(`${JSON.stringify(report, null, 1)}\n`)]);
    await writeFileAtomic(run.path('orders.md'), [Buffer.from(`# mtpd orders\n\n\`\`\`\n${formatOrders(report)}\n\`\`\`\n\nevery stage:\n\n\`\`\`\n${formatResults(evaluated)}\n\`\`\`\n`)]);
  }
  return report;
}
