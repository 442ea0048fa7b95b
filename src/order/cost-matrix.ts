/**
 * The adaptation-cost matrix for a student and a teacher pool (MTPD Sec. 3.2; method.md 1.3).
 * Each model's features are extracted once per image batch (so the work grows linearly in the
 * number of models); every needed ordered pair (A, B) then gets, per FPN level, a linear map
 * fitted on training-split features and scored on held-out ones; d(A -> B) is the sum of the
 * per-level validation MSEs.
 *
 * The cost is measured on what is distilled: A's maps are aligned onto B's grid with the
 * adapter's own mapping (src/distill/align.ts: each image's valid cells, resampled bilinearly at
 * the per-image content scale), the 1x1 linear map is fitted on the aligned maps (it commutes with
 * the resampling, so this equals the adapter's conv-then-resize), and only B's valid cells count
 * in the fit and in the validation MSE, for both fitters. The levels are those distilled
 * (`levels`, e.g. config.distill.levels) or else every level the models share.
 */
import type { FeatureBatch } from '../detector.js';
import { alignMap } from '../distill/align.js';
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { CostTable } from './bgs.js';
import { fitLinearMap, type LinearFitOptions } from './linear-fit.js';

/**
 * Anything that turns a batch of images into named feature maps (a frozen detector). Returning a
 * FeatureBatch (`Detector.features(images, {layout: true})`) says where each image lies in the
 * maps; plain maps are taken as images that fill their maps exactly.
 */
export interface FeatureSource {
  name: string;
  /** Validation AP, for choosing the strongest teacher. */
  ap: number;
  features(images: Tensor[]): Promise<Record<string, Tensor> | FeatureBatch>;
}

export interface CostMatrixOptions extends LinearFitOptions {
  /** "bgs": only the pairs BGS can ask for (targets are teachers); "all": every ordered pair. */
  pairs?: 'bgs' | 'all';
  /** The student's name (required for pairs "bgs"). */
  student?: string;
  /** Levels to use, e.g. config.distill.levels (default: the taps every model shares); each must be a tap of every model. */
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

/** One model's features of one batch, with where its images lie. */
interface Features {
  maps: Record<string, Tensor>;
  /** Per image [h, w] after the model's resize; null: each image fills its map (plain maps). */
  imageSizes: [number, number][] | null;
  strides: Record<string, number>;
}

type Bank = Map<string, { train: Features[]; val: Features[] }>;

function isFeatureBatch(x: Record<string, Tensor> | FeatureBatch): x is FeatureBatch {
  return 'maps' in x && 'imageSizes' in x && 'strides' in x && Array.isArray((x as FeatureBatch).imageSizes);
}

/** The grid of one level: per-image sizes and stride (plain maps: the whole map at stride 1). */
function gridOf(f: Features, level: string, model: string): { sizes: [number, number][]; stride: number; map: Tensor } {
  const map = f.maps[level];
  if (!map || map.shape.length !== 4) throw new MtpdError('ERR_MTPD_DATA', `${model}: feature map "${level}" must be (N, C, H, W)`);
  const [n, , h, w] = map.shape as [number, number, number, number];
  if (f.imageSizes === null) return { sizes: Array.from({ length: n }, () => [h, w] as [number, number]), stride: 1, map };
  const stride = f.strides[level];
  if (stride === undefined) throw new MtpdError('ERR_MTPD_DATA', `${model}: no stride for feature map "${level}"`);
  if (f.imageSizes.length !== n) throw new MtpdError('ERR_MTPD_DATA', `${model}: ${f.imageSizes.length} image sizes for ${n} images`);
  return { sizes: f.imageSizes, stride, map };
}

/** A's level-`level` maps aligned onto B's grid, with B's valid cells, batch by batch. */
async function aligned(a: Features[], b: Features[], level: string, names: [string, string]): Promise<{ a: Tensor[]; b: Tensor[]; mask: Tensor[] }> {
  const out = { a: [] as Tensor[], b: [] as Tensor[], mask: [] as Tensor[] };
  for (const [i, fa] of a.entries()) {
    const ga = gridOf(fa, level, names[0]);
    const gb = gridOf(b[i] as Features, level, names[1]);
    const [, , hb, wb] = gb.map.shape as [number, number, number, number];
    const r = await alignMap(ga.map, ga.sizes, ga.stride, [hb, wb], gb.sizes, gb.stride);
    out.a.push(r.aligned);
    out.b.push(gb.map);
    out.mask.push(r.mask);
  }
  return out;
}

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
    const entry = { train: [] as Features[], val: [] as Features[] };
    for (const [split, batches] of [['train', trainBatches], ['val', valBatches]] as const) {
      for (const b of batches) {
        const f = await m.features(b);
        entry[split].push(isFeatureBatch(f) ? { maps: f.maps, imageSizes: f.imageSizes, strides: f.strides } : { maps: f, imageSizes: null, strides: {} });
        options.onProgress?.({ phase: 'features', done: ++doneFeat, total: totalFeat, label: `${m.name} ${split}` });
      }
    }
    bank.set(m.name, entry);
  }
  const tFeat = (Date.now() - t0) / 1000;

  // 2. The levels distilled, or every level the models share.
  const tapsOf = (n: string) => Object.keys(bank.get(n)?.train[0]?.maps ?? {});
  const levels = options.levels ?? tapsOf(names[0] as string).filter((l) => names.every((n) => tapsOf(n).includes(l)));
  for (const l of levels) {
    const lacking = names.filter((n) => !tapsOf(n).includes(l));
    if (lacking.length) throw new MtpdError('ERR_MTPD_CONFIG', `level ${l} is not a feature map of ${lacking.join(', ')} (${lacking.map((n) => `${n}: ${tapsOf(n).join('/')}`).join('; ')})`);
  }
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
      const r = await fitLinearMap(await aligned(A.train, B.train, level, [a, b]), await aligned(A.val, B.val, level, [a, b]), fit);
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
