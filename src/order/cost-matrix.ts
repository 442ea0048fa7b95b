/**
 * The adaptation-cost matrix for a student and a teacher pool (MTPD Sec. 3.2; method.md 1.3).
 * Each model's features are extracted once per image batch (so the work grows linearly in the
 * number of models); every needed ordered pair (A, B) then gets, per shared FPN level, a linear
 * map fitted on training-split features and scored on held-out ones; d(A -> B) is the sum of the
 * per-level validation MSEs.
 */
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { CostTable } from './bgs.js';
import { fitLinearMap, type LinearFitOptions } from './linear-fit.js';

/** Anything that turns a batch of images into named feature maps (a frozen detector). */
export interface FeatureSource {
  name: string;
  /** Validation AP, for choosing the strongest teacher. */
  ap: number;
  features(images: Tensor[]): Promise<Record<string, Tensor>>;
}

export interface CostMatrixOptions extends LinearFitOptions {
  /** "bgs": only the pairs BGS can ask for (targets are teachers); "all": every ordered pair. */
  pairs?: 'bgs' | 'all';
  /** The student's name (required for pairs "bgs"). */
  student?: string;
  /** Levels to use (default: the taps every model shares). */
  levels?: string[];
  onProgress?: (event: { phase: 'features' | 'fit'; done: number; total: number; label: string }) => void;
}

export interface CostMatrix extends CostTable {
  /** Per-level costs: perLevel[A][B][level]. */
  perLevel: Record<string, Record<string, Record<string, number>>>;
  levels: string[];
  fitter: string;
  seconds: { features: number; fit: number };
}

type Bank = Map<string, { train: Record<string, Tensor>[]; val: Record<string, Tensor>[] }>;

export async function computeCostMatrix(
  models: FeatureSource[],
  trainBatches: Tensor[][],
  valBatches: Tensor[][],
  options: CostMatrixOptions = {},
): Promise<CostMatrix> {
  const names = models.map((m) => m.name);
  if (new Set(names).size !== names.length) throw new MtpdError('ERR_MTPD_CONFIG', `model names must be unique: ${names.join(', ')}`);
  if (trainBatches.length === 0 || valBatches.length === 0) throw new MtpdError('ERR_MTPD_DATA', 'the cost matrix needs at least one training and one validation batch');
  const pairsMode = options.pairs ?? 'bgs';
  if (pairsMode === 'bgs' && (options.student === undefined || !names.includes(options.student))) {
    throw new MtpdError('ERR_MTPD_CONFIG', `pairs "bgs" needs the student's name among the models (${names.join(', ')})`);
  }

  // 1. Features, once per model and batch.
  const t0 = Date.now();
  const bank: Bank = new Map();
  const totalFeat = models.length * (trainBatches.length + valBatches.length);
  let doneFeat = 0;
  for (const m of models) {
    const entry = { train: [] as Record<string, Tensor>[], val: [] as Record<string, Tensor>[] };
    for (const [split, batches] of [['train', trainBatches], ['val', valBatches]] as const) {
      for (const b of batches) {
        entry[split].push(await m.features(b));
        options.onProgress?.({ phase: 'features', done: ++doneFeat, total: totalFeat, label: `${m.name} ${split}` });
      }
    }
    bank.set(m.name, entry);
  }
  const tFeat = (Date.now() - t0) / 1000;

  // 2. Levels every model shares.
  const tapsOf = (n: string) => Object.keys(bank.get(n)?.train[0] ?? {});
  let levels = options.levels ?? tapsOf(names[0] as string).filter((l) => names.every((n) => tapsOf(n).includes(l)));
  levels = levels.filter((l) => names.every((n) => tapsOf(n).includes(l)));
  if (levels.length === 0) {
    throw new MtpdError('ERR_MTPD_CONFIG', `the models share no feature level (${names.map((n) => `${n}: ${tapsOf(n).join('/')}`).join('; ')})`);
  }

  // 3. Pairs.
  const pairs: [string, string][] = [];
  for (const a of names)
    for (const b of names) {
      if (a === b) continue;
      if (pairsMode === 'bgs' && b === options.student) continue;
      pairs.push([a, b]);
    }

  const t1 = Date.now();
  const costs: CostTable['costs'] = Object.fromEntries(names.map((n) => [n, {}]));
  const perLevel: CostMatrix['perLevel'] = Object.fromEntries(names.map((n) => [n, {}]));
  const fit: LinearFitOptions = {};
  for (const k of ['fitter', 'ridge', 'optimizer', 'lr', 'momentum', 'steps', 'seed'] as const) {
    if (options[k] !== undefined) (fit as Record<string, unknown>)[k] = options[k];
  }
  let done = 0;
  for (const [a, b] of pairs) {
    const A = bank.get(a);
    const B = bank.get(b);
    if (!A || !B) continue;
    let total = 0;
    const per: Record<string, number> = {};
    for (const level of levels) {
      const r = await fitLinearMap(
        { a: A.train.map((f) => f[level] as Tensor), b: B.train.map((f) => f[level] as Tensor) },
        { a: A.val.map((f) => f[level] as Tensor), b: B.val.map((f) => f[level] as Tensor) },
        fit,
      );
      per[level] = r.valMse;
      total += r.valMse;
    }
    (costs[a] as Record<string, number>)[b] = total;
    (perLevel[a] as Record<string, Record<string, number>>)[b] = per;
    options.onProgress?.({ phase: 'fit', done: ++done, total: pairs.length, label: `${a} -> ${b}` });
  }
  return {
    models: Object.fromEntries(models.map((m) => [m.name, { ap: m.ap }])),
    costs,
    perLevel,
    levels,
    fitter: fit.fitter ?? 'closed-form',
    seconds: { features: tFeat, fit: (Date.now() - t1) / 1000 },
  };
}
