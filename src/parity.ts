/**
 * Numerical parity against torchvision golden files (scripts/golden/torchvision_retinanet.py,
 * scripts/golden/torchvision_maskrcnn.py): loads the torchvision state dict strictly by name, then
 * compares FPN features (eval), two-stage proposals (eval: the RPN alone on torchvision's FPN maps),
 * final detections with their masks (eval) and losses on the same targets (train mode; two-stage
 * samplers draw from the generator seeded as the golden run's) as relative errors
 * max|mtpd - torchvision| / max|torchvision|.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createDetector, renameLegacyTwoStageKeys, type Target } from './detector.js';
import { Module } from './module.js';
import { setSeed } from './runtime.js';
import { type Tensor, tensor, toNumbers } from './tensor.js';
import { loadSafetensors, readWeights } from './weights/index.js';

export interface Golden {
  name: string;
  weights: string;
  /** Native registry name ("retinanet", "mask_rcnn") or a builder name ("maskrcnn_resnet50_fpn_v2"). */
  arch: string;
  config: Record<string, unknown>;
  /** Seed of the generator before the training-mode pass (two-stage samplers), when the file has one. */
  lossSeed?: number;
  images: Tensor[];
  targets: Target[];
  features: Record<string, Tensor>;
  losses: Record<string, number>;
  detections: { boxes: Tensor; scores: Tensor; labels: Tensor; masks?: Tensor }[];
  /** Two-stage fixtures: per image the RPN's eval-mode proposals (P_i, 4) in resized pixels. */
  proposals: Tensor[];
}

export function goldenNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.io.safetensors'))
    .map((f) => f.replace(/\.io\.safetensors$/, ''))
    .sort();
}

export async function loadGolden(dir: string, name: string): Promise<Golden> {
  const { tensors, metadata } = await loadSafetensors(join(dir, `${name}.io.safetensors`));
  const get = (k: string): Tensor => {
    const t = tensors.get(k);
    if (!t) throw new Error(`${name}: golden file has no ${k}`);
    return t;
  };
  const g: Golden = {
    name,
    weights: join(dir, `${name}.weights.safetensors`),
    arch: metadata.arch ?? 'retinanet',
    ...(metadata.loss_seed !== undefined ? { lossSeed: Number(metadata.loss_seed) } : {}),
    config: JSON.parse(metadata.config ?? '{}') as Record<string, unknown>,
    images: [],
    targets: [],
    features: {},
    losses: {},
    detections: [],
    proposals: [],
  };
  for (let i = 0; tensors.has(`image.${i}`); i++) {
    g.images.push(get(`image.${i}`));
    const masks = tensors.get(`target.${i}.masks`);
    g.targets.push({ boxes: get(`target.${i}.boxes`), labels: get(`target.${i}.labels`), ...(masks ? { masks } : {}) });
    const dm = tensors.get(`det.${i}.masks`);
    g.detections.push({ boxes: get(`det.${i}.boxes`), scores: get(`det.${i}.scores`), labels: get(`det.${i}.labels`), ...(dm ? { masks: dm } : {}) });
    const rpn = tensors.get(`rpn.${i}.boxes`);
    if (rpn) g.proposals.push(rpn);
  }
  for (const [k, v] of tensors) {
    if (k.startsWith('features.')) g.features[k.slice(9)] = v;
    if (k.startsWith('loss.')) g.losses[k.slice(5)] = toNumbers(v)[0] as number;
  }
  return g;
}

/** max |a - b| / max |b| (Infinity when the shapes differ). */
export function relErr(a: Tensor, b: Tensor): number {
  if (a.shape.join(',') !== b.shape.join(',')) return Infinity;
  const x = toNumbers(a);
  const y = toNumbers(b);
  let num = 0;
  let den = 1e-12;
  for (let i = 0; i < y.length; i++) {
    num = Math.max(num, Math.abs((x[i] as number) - (y[i] as number)));
    den = Math.max(den, Math.abs(y[i] as number));
  }
  return num / den;
}

/** Rows `order` of a tensor's first dimension. */
function takeRows<T extends Tensor>(t: T, order: number[]): T {
  const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const src = t.data as unknown as ArrayLike<number | bigint>;
  const out = (t.data as unknown as { slice(a?: number, b?: number): { [i: number]: number | bigint } }).slice();
  order.forEach((from, to) => {
    for (let k = 0; k < row; k++) out[to * row + k] = src[from * row + k] as number | bigint;
  });
  return { ...t, data: out } as T;
}

/**
 * `got`'s detections reordered to line up with `ref`'s where the order is not determined: among
 * detections whose scores differ from a neighbour's by at most `tieTol` (relative to the largest
 * score), each of `ref`'s is paired with the nearest unpaired one of `got` (same label first,
 * then the smallest box distance). Two references sort such near-ties by float noise (a
 * different CPU's kernels move a score by an ulp), which is no difference in the detections.
 * Counts must already agree.
 */
export function alignTiedDetections<D extends { boxes: Tensor; scores: Tensor; labels: Tensor; masks?: Tensor | undefined }>(got: D, ref: { boxes: Tensor; scores: Tensor; labels: Tensor }, tieTol = 1e-6): D {
  const n = ref.scores.shape[0] as number;
  if (got.scores.shape[0] !== n) return got;
  const rs = toNumbers(ref.scores);
  const gs = toNumbers(got.scores);
  const rb = toNumbers(ref.boxes);
  const gb = toNumbers(got.boxes);
  const rl = toNumbers(ref.labels);
  const gl = toNumbers(got.labels);
  const tol = tieTol * Math.max(1e-12, ...rs.map(Math.abs), ...gs.map(Math.abs));
  const order = [...Array(n).keys()];
  let changed = false;
  for (let a = 0; a < n; ) {
    // [a, b): a run of near-tied scores in either list
    let b = a + 1;
    while (b < n && (Math.abs((rs[b] as number) - (rs[b - 1] as number)) <= tol || Math.abs((gs[b] as number) - (gs[b - 1] as number)) <= tol)) b++;
    if (b - a > 1) {
      const free = new Set(order.slice(a, b));
      for (let i = a; i < b; i++) {
        let best = -1;
        let bestCost = Infinity;
        for (const j of free) {
          let d = 0;
          for (let k = 0; k < 4; k++) d += Math.abs((rb[4 * i + k] as number) - (gb[4 * j + k] as number));
          const cost = (rl[i] === gl[j] ? 0 : 1e12) + d;
          if (cost < bestCost) {
            bestCost = cost;
            best = j;
          }
        }
        free.delete(best);
        if (order[i] !== best) changed = true;
        order[i] = best;
      }
    }
    a = b;
  }
  if (!changed) return got;
  const out = { ...got, boxes: takeRows(got.boxes, order), scores: takeRows(got.scores, order), labels: takeRows(got.labels, order) };
  if (got.masks) out.masks = takeRows(got.masks, order);
  return out;
}

export interface ParityCheck {
  what: string;
  error: number;
  ok: boolean;
  detail?: string;
}

export interface ParityReport {
  name: string;
  load: { missing: string[]; unexpected: string[]; mismatched: string[]; loaded: number };
  checks: ParityCheck[];
  ok: boolean;
}

/** Runs one golden model through mtpd and compares every output to `tol` relative. */
export async function checkParity(dir: string, name: string, tol = 1e-4, device = 'cpu'): Promise<ParityReport> {
  const g = await loadGolden(dir, name);
  const det = await createDetector({ arch: g.arch, device, options: g.config });
  const rep = await det.loadWeights(g.weights, { strict: false });
  const checks: ParityCheck[] = [];
  const add = (what: string, error: number, detail?: string) => checks.push({ what, error, ok: error <= tol, ...(detail ? { detail } : {}) });
  await det.eval();
  const out = await det.run(g.images, null, { features: true, detections: true });
  for (const [k, ref] of Object.entries(g.features)) {
    const got = out.features[k];
    add(`features.${k}`, got ? relErr(got, ref) : Infinity);
  }
  if (g.proposals.length) {
    // the RPN alone (models.RegionProposalNetwork) with the checkpoint's rpn.* weights, on torchvision's maps
    const rpn = await Module.create('models.RegionProposalNetwork', det.resolved.options, { device });
    try {
      const sd = renameLegacyTwoStageKeys(await readWeights(g.weights));
      const own = new Map([...sd].filter(([k]) => k.startsWith('rpn.')).map(([k, v]) => [k.slice(4), v] as const));
      const r = await rpn.loadStateDict(own, { strict: true });
      add('rpn.load', r.missing.length || r.unexpected.length || r.mismatched.length ? Infinity : 0);
      await rpn.eval();
      const maps = det.featureNames.map((n) => g.features[n]).filter((m): m is Tensor => m !== undefined);
      const sizes = tensor('int64', [out.imageSizes.length, 2], out.imageSizes.flat());
      const props = await rpn.forward([...maps, sizes, tensor('int64', [2], out.batchSize)]);
      g.proposals.forEach((ref, i) => {
        const p = props[i];
        const n = ref.shape[0] as number;
        if (!p || p.shape[0] !== n) add(`rpn.${i}.count`, Infinity, `mtpd ${p?.shape[0]} vs torchvision ${n}`);
        else add(`rpn.${i}.boxes`, relErr(p, ref));
      });
    } finally {
      await rpn.dispose();
    }
  }
  g.detections.forEach((ref, i) => {
    const raw = out.detections[i];
    const n = ref.scores.shape[0] as number;
    if (!raw || raw.scores.shape[0] !== n) {
      add(`det.${i}.count`, Infinity, `mtpd ${raw?.scores.shape[0]} vs torchvision ${n}`);
      return;
    }
    const d = alignTiedDetections(raw, ref);
    add(`det.${i}.scores`, relErr(d.scores, ref.scores));
    add(`det.${i}.boxes`, relErr(d.boxes, ref.boxes));
    const la = toNumbers(d.labels);
    const lb = toNumbers(ref.labels);
    const wrong = la.filter((v, j) => v !== lb[j]).length;
    add(`det.${i}.labels`, wrong ? Infinity : 0, wrong ? `${wrong} of ${n} labels differ` : undefined);
    if (ref.masks) add(`det.${i}.masks`, d.masks ? relErr(d.masks, ref.masks) : Infinity);
  });
  await det.train();
  if (g.lossSeed !== undefined) setSeed(g.lossSeed);
  const losses = await det.losses(g.images, g.targets);
  for (const [k, ref] of Object.entries(g.losses)) {
    const got = losses[k];
    add(`loss.${k}`, got === undefined ? Infinity : Math.abs(got - ref) / Math.max(Math.abs(ref), 1e-12), `mtpd ${got} vs torchvision ${ref}`);
  }
  const load = { missing: rep.missing, unexpected: rep.unexpected, mismatched: rep.mismatched.map((m) => m.key), loaded: rep.loaded };
  const loadOk = !load.missing.length && !load.unexpected.length && !load.mismatched.length;
  return { name, load, checks, ok: loadOk && checks.every((c) => c.ok) };
}
