/**
 * Teacher order (MTPD, Cao et al. ICML 2023, Sec. 3.2 and Algorithm 1; method.md 1.3-1.4).
 *
 * d(A -> B) is the adaptation cost: how badly a linear map fitted from model A's FPN features
 * reproduces model B's on held-out data. Backward Greedy Selection puts the strongest teacher
 * (highest val AP) last, then walks backwards: before the current first teacher `nxt` it places
 * the remaining teacher closest to it, d(T -> nxt) minimal, and stops when even that teacher is
 * farther from `nxt` than the trained student is (d(T -> nxt) > d(S -> nxt)) or the sequence
 * holds k teachers. Ties go to the name that sorts first.
 */
import { MtpdError } from '../errors.js';

export interface CostTable {
  /** Every model, the student included, with its validation AP. */
  models: Record<string, { ap: number }>;
  /** costs[A][B] = d(A -> B). */
  costs: Record<string, Record<string, number>>;
}

export interface BgsStep {
  /** The teacher placed at this step (prepended). */
  teacher: string;
  /** The teacher it precedes (null for the strongest, placed first). */
  next: string | null;
  cost: number | null;
  studentCost: number | null;
}

export interface BgsResult {
  /** Forward order: order[0] is distilled first, the last is the strongest teacher. */
  order: string[];
  steps: BgsStep[];
  /** Why selection stopped. */
  stop: 'k' | 'pool' | 'student-closer';
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function planError(msg: string): never {
  throw new MtpdError('ERR_MTPD_CONFIG', msg);
}

/** d(a -> b), or a clear error naming the missing entry. */
export function cost(table: CostTable, a: string, b: string): number {
  // Own entries only: `costs["constructor"]` must not find Object.prototype's.
  const row = Object.hasOwn(table.costs, a) ? table.costs[a] : undefined;
  const v = row && Object.hasOwn(row, b) ? row[b] : undefined;
  if (v === undefined) planError(`costs has no entry costs["${a}"]["${b}"] (d(${a} -> ${b}))`);
  if (!Number.isFinite(v) || v < 0) planError(`costs["${a}"]["${b}"] must be a finite non-negative number, got ${v}`);
  return v;
}

/** The candidate teachers: every model but the student. */
export function teachersOf(table: CostTable, student: string): string[] {
  if (!Object.hasOwn(table.models, student)) {
    planError(`unknown student "${student}"; models are ${Object.keys(table.models).sort(byName).join(', ') || '(none)'}`);
  }
  return Object.keys(table.models)
    .filter((m) => m !== student)
    .sort(byName);
}

/** The strongest teacher: highest AP, ties to the name that sorts first. */
export function strongest(table: CostTable, teachers: string[]): string {
  let best: string | undefined;
  for (const t of [...teachers].sort(byName)) {
    const ap = table.models[t]?.ap;
    if (ap === undefined || !Number.isFinite(ap)) planError(`models["${t}"].ap must be a finite number`);
    if (best === undefined || ap > (table.models[best]?.ap as number)) best = t;
  }
  if (best === undefined) planError('the pool has no teacher (every model but the student is a candidate)');
  return best;
}

export function backwardGreedySelection(table: CostTable, student: string, k?: number): BgsResult {
  const teachers = teachersOf(table, student);
  if (k !== undefined && (!Number.isInteger(k) || k < 1)) planError(`k must be a positive integer, got ${k}`);
  const limit = k ?? teachers.length;
  const last = strongest(table, teachers);
  const order = [last];
  const steps: BgsStep[] = [{ teacher: last, next: null, cost: null, studentCost: null }];
  const remaining = new Set(teachers.filter((t) => t !== last));
  let stop: BgsResult['stop'] = 'pool';
  for (;;) {
    if (remaining.size === 0) {
      stop = 'pool';
      break;
    }
    if (order.length >= limit) {
      stop = 'k';
      break;
    }
    const nxt = order[0] as string;
    let best: string | undefined;
    let bestCost = Infinity;
    for (const t of [...remaining].sort(byName)) {
      const c = cost(table, t, nxt);
      if (c < bestCost) {
        best = t;
        bestCost = c;
      }
    }
    const sCost = cost(table, student, nxt);
    if (best === undefined || bestCost > sCost) {
      stop = 'student-closer';
      break;
    }
    order.unshift(best);
    remaining.delete(best);
    steps.push({ teacher: best, next: nxt, cost: bestCost, studentCost: sCost });
  }
  return { order, steps, stop };
}

/** The alternative heuristic: the k strongest teachers, weakest first (order by AP). */
export function orderByAp(table: CostTable, student: string, k?: number): string[] {
  const teachers = teachersOf(table, student);
  const limit = k ?? teachers.length;
  if (!Number.isInteger(limit) || limit < 1) planError(`k must be a positive integer, got ${k}`);
  const sorted = [...teachers].sort((a, b) => (table.models[b]?.ap as number) - (table.models[a]?.ap as number) || byName(a, b));
  return sorted.slice(0, limit).reverse();
}

/** Every order of 1..k distinct teachers (optionally only those ending with `last`), in a fixed order. */
export function allOrders(teachers: string[], k: number, last?: string): string[][] {
  const out: string[][] = [];
  const pool = [...teachers].sort(byName);
  const walk = (seq: string[]) => {
    if (seq.length > 0 && (last === undefined || seq[seq.length - 1] === last)) out.push([...seq]);
    if (seq.length === k) return;
    for (const t of pool) {
      if (seq.includes(t)) continue;
      seq.push(t);
      walk(seq);
      seq.pop();
    }
  };
  walk([]);
  return out;
}

export interface ScoredOrder {
  order: string[];
  score: number;
}

/**
 * Exhaustive search (the paper's Table 2): scores every order of up to k teachers with `score`
 * (e.g. the val AP after short distillation runs, supplied by the trainer) and returns them best
 * first. Refuses more than `maxOrders` candidates rather than running for days.
 */
export async function exhaustiveSearch(
  table: CostTable,
  student: string,
  k: number,
  score: (order: string[]) => Promise<number>,
  options: { endWithStrongest?: boolean; maxOrders?: number } = {},
): Promise<ScoredOrder[]> {
  const teachers = teachersOf(table, student);
  if (!Number.isInteger(k) || k < 1) planError(`k must be a positive integer, got ${k}`);
  const last = options.endWithStrongest ? strongest(table, teachers) : undefined;
  const orders = allOrders(teachers, Math.min(k, teachers.length), last);
  const max = options.maxOrders ?? 64;
  if (orders.length > max) planError(`exhaustive search would score ${orders.length} orders (more than maxOrders=${max}); lower k`);
  const scored: ScoredOrder[] = [];
  for (const order of orders) scored.push({ order, score: await score(order) });
  return scored.sort((a, b) => b.score - a.score || byName(a.order.join('>'), b.order.join('>')));
}
