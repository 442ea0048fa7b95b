/**
 * COCOeval (pycocotools cocoeval.py) for bbox and segm: evaluate + accumulate + summarize, with the
 * same numbers bit for bit, over typed arrays.
 *
 * How it maps onto pycocotools:
 *  - evaluate(): per (category, image) the detections are sorted by score (stable, as numpy's
 *    mergesort on -score), cut to maxDets[-1], IoUs computed once (maskApi's bbIou / rleIou with
 *    crowd), then for each area range the gts are ordered non-ignored first (stable) and matched
 *    greedily at every IoU threshold exactly as evaluateImg, including "a crowd gt can be matched
 *    many times", "stop at the first ignored gt once matched to a regular one" and
 *    `min(t, 1 - 1e-10)`. Each kept detection gets, per (area range, threshold), one of
 *    TP / FP / IGNORED (pycocotools' dtm + dtIgnore, with its `dtm == 0` test on gt ids).
 *  - accumulate(): per category the kept detections of all images are ordered by score, ties in
 *    image-id then per-image rank order (numpy's stable mergesort on the concatenation); for
 *    maxDets m only the first m of each image take part. Precision/recall follow cumsum,
 *    `tp / (fp + tp + np.spacing(1))`, the right-to-left envelope and searchsorted(side='left').
 *    -1 stays where a category has no non-ignored gt in an area range.
 *  - summarize(): the 12 stats as means over entries > -1, with numpy's pairwise summation.
 *
 * evaluateImages() is the first step and accumulate() the other two, so that accumulate can run
 * again with per-image weights (a bootstrap over images) without matching anything again.
 *
 * Difference: no detections at all evaluates to 0 wherever gt exists (pycocotools' loadRes crashes).
 */
import { rleInterUnionAt } from '../coco/mask.js';
import { SPACING_1, pairwiseSum, type EvalParams } from './params.js';
import { evalError, type Detections, type GroundTruth } from './store.js';

const FP = 0;
const TP = 1;
const IGN = 2;

export const STAT_NAMES = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const;
export type StatName = (typeof STAT_NAMES)[number];

export interface CategoryStats {
  name: string;
  /** The 12 summary numbers for this category alone (same definitions; -1 where undefined). */
  stats: Record<StatName, number>;
}

export interface EvalResult {
  params: EvalParams;
  /** Evaluated image ids and category ids, ascending (the K axis follows catIds). */
  imgIds: number[];
  catIds: number[];
  /** [T, R, K, A, M] */
  counts: [number, number, number, number, number];
  /** precision[t][r][k][a][m], C order; -1 where the category has no gt in that area range. */
  precision: Float64Array;
  /** recall[t][k][a][m], C order. */
  recall: Float64Array;
  /** scores[t][r][k][a][m]: the detection score at each recall threshold (pycocotools eval['scores']). */
  scores: Float64Array;
  /** AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl */
  stats: number[];
  perCategory: Record<string, CategoryStats>;
  /**
   * Detections of categories the ground truth does not list, by category id: left out of the
   * evaluation, as pycocotools does (set by CocoEvaluator, evaluate and evaluateFiles).
   */
  ignoredCategories?: Record<string, number>;
  /**
   * Ground-truth annotations of images or categories the file does not list, by image_id and by
   * category_id: left out, as pycocotools does (set by CocoEvaluator, evaluate and evaluateFiles).
   */
  ignoredAnnotations?: { images: Record<string, number>; categories: Record<string, number> };
}

/** Sorts idx[0..n) by score descending, ties by index ascending (a total order, so stable). */
function sortByScore(idx: Int32Array, n: number, score: Float64Array): void {
  if (n <= 24) {
    for (let i = 1; i < n; i++) {
      const v = idx[i]!;
      const s = score[v]!;
      let j = i - 1;
      while (j >= 0) {
        const u = idx[j]!;
        const su = score[u]!;
        if (su > s || (su === s && u < v)) break;
        idx[j + 1] = u;
        j--;
      }
      idx[j + 1] = v;
    }
    return;
  }
  idx.subarray(0, n).sort((a, b) => score[b]! - score[a]! || a - b);
}

/** Stable merge sort of idx[0..n) by key descending (numpy's mergesort of -key). */
function mergeSortDesc(idx: Int32Array, n: number, key: Float64Array, tmp: Int32Array): void {
  const RUN = 16;
  for (let lo = 0; lo < n; lo += RUN) {
    const hi = Math.min(lo + RUN, n);
    for (let i = lo + 1; i < hi; i++) {
      const v = idx[i]!;
      const kv = key[v]!;
      let j = i - 1;
      while (j >= lo && key[idx[j]!]! < kv) {
        idx[j + 1] = idx[j]!;
        j--;
      }
      idx[j + 1] = v;
    }
  }
  let src = idx;
  let dst = tmp;
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        if (key[src[j]!]! > key[src[i]!]!) dst[k++] = src[j++]!;
        else dst[k++] = src[i++]!;
      }
      while (i < mid) dst[k++] = src[i++]!;
      while (j < hi) dst[k++] = src[j++]!;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src !== idx) idx.set(src.subarray(0, n));
}

function grow<T extends Int32Array | Float64Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/**
 * evaluateImg's result for every (category, image), which is all accumulate needs: per category
 * the kept detections of every image in accumulate's order (score descending, ties by image
 * then by rank in the image, as numpy's stable mergesort on the concatenation), each with one
 * TP / FP / IGNORED code per (area range, IoU threshold), and the non-ignored gt count of every
 * (category, image, area range). None of it depends on which images an accumulate counts, or
 * how many times: a bootstrap computes it once and re-accumulates with image weights.
 */
export interface ImageEvaluation {
  params: EvalParams;
  /** params.maxDets, ascending. */
  maxDets: number[];
  /** Evaluated image ids and category ids, ascending (weights follow imgIds). */
  imgIds: number[];
  catIds: number[];
  catNames: string[];
  /** [T, R, K, A, M] */
  counts: [number, number, number, number, number];
  /** Category k's kept detections are rows catStart[k] .. catStart[k + 1] - 1 of the arrays below. */
  catStart: Int32Array;
  /** Per kept detection: its image (index into imgIds), its rank in the image by score, its score. */
  img: Int32Array;
  rank: Int32Array;
  score: Float64Array;
  /**
   * codes[catStart[k] * A * T + (a * T + t) * nk + j]: TP / FP / IGNORED of category k's j-th
   * detection at area range a and IoU threshold t (nk = category k's detection count).
   */
  codes: Uint8Array;
  /** tieNext[r] = 1 when row r + 1 is a detection of the same category and image with the same score. */
  tieNext: Uint8Array;
  /** npig[(k * I + i) * A + a]: non-ignored gts of category k in image i for area range a. */
  npig: Int32Array;
  /** Per category, its MatchLists: made by indexMatches() or the first weighted accumulate, then kept. */
  lists?: MatchLists[];
}

/**
 * One category's TP and FP detections per (maxDets, area range, IoU threshold) slice, in
 * accumulate's order: those of rank < maxDets[mi] in their image, without IGNORED ones (they
 * count for nothing) and without the FPs after the last TP (precision is read at TPs only).
 * Slice (mi, a, t) is rows start[(mi * A + a) * T + t] .. start[(mi * A + a) * T + t + 1] - 1.
 */
export interface MatchLists {
  start: Int32Array;
  /** image * 4 + tieNext * 2 + (TP ? 1 : 0) */
  code: Int32Array;
  /** the detection's index in the category */
  det: Int32Array;
}

function matchLists(ev: ImageEvaluation, k: number): MatchLists {
  const [T, , , A, M] = ev.counts;
  const AT = A * T;
  const off = ev.catStart[k]!;
  const nk = ev.catStart[k + 1]! - off;
  const codes = ev.codes.subarray(off * AT, (off + nk) * AT);
  const rank = ev.rank.subarray(off, off + nk);
  // image * 4 + tieNext * 2 of each detection
  const key = new Int32Array(nk);
  for (let j = 0; j < nk; j++) key[j] = ev.img[off + j]! * 4 + ev.tieNext[off + j]! * 2;
  const start = new Int32Array(M * AT + 1);
  let code = new Int32Array(Math.max(16, nk));
  let det = new Int32Array(Math.max(16, nk));
  let n = 0;
  for (let mi = 0; mi < M; mi++) {
    const maxDet = ev.maxDets[mi]!;
    for (let q = 0; q < AT; q++) {
      const base = q * nk;
      code = grow(code, n + nk);
      det = grow(det, n + nk);
      // up to the last TP that takes part
      let u = n;
      let end = n;
      for (let j = 0; j < nk; j++) {
        const c = codes[base + j]!;
        if (c === IGN || rank[j]! >= maxDet) continue;
        code[u] = key[j]! + c; // TP = 1, FP = 0
        det[u++] = j;
        if (c === TP) end = u;
      }
      n = end;
      start[mi * AT + q + 1] = n;
    }
  }
  return { start, code: code.subarray(0, n), det: det.subarray(0, n) };
}

/** Keeps every category's MatchLists on `ev`, for many accumulates (a bootstrap); returns ev. */
export function indexMatches(ev: ImageEvaluation): ImageEvaluation {
  ev.lists ??= Array.from({ length: ev.catIds.length }, (_, k) => matchLists(ev, k));
  return ev;
}

/**
 * evaluate(): matches every (category, image) once. `imgIds` restricts the images
 * (params.imgIds); detections of other images are left out.
 */
export function evaluateImages(gt: GroundTruth, dt: Detections, p: EvalParams, imgIds?: readonly number[]): ImageEvaluation {
  const iouThrs = p.iouThrs;
  const maxDets = [...p.maxDets].sort((a, b) => a - b);
  const T = iouThrs.length;
  const R = p.recThrs.length;
  const A = p.areaRng.length;
  const M = maxDets.length;
  const K = gt.catIds.length;
  const AT = A * T;
  const maxDetMax = maxDets[M - 1] ?? 0;

  // images evaluated, ascending id (np.unique(p.imgIds))
  let imgList: number[];
  if (imgIds) {
    const uniq = [...new Set(imgIds)].sort((a, b) => a - b);
    imgList = uniq.map((id) => {
      const pos = gt.imgPos.get(id);
      if (pos === undefined) evalError(`imgIds: ${id} is not an image of the ground truth`);
      return pos;
    });
  } else {
    imgList = gt.imgIds.map((_, i) => i);
  }
  const I = imgList.length;
  const imgRank = new Int32Array(gt.imgIds.length).fill(-1);
  imgList.forEach((pos, r) => (imgRank[pos] = r));

  // group gts and dts by (category, image rank), keeping their order (counting sort)
  const groups = K * I;
  const group = (cats: Int32Array, imgs: Int32Array, n: number) => {
    const start = new Int32Array(groups + 1);
    for (let j = 0; j < n; j++) {
      const r = imgRank[imgs[j]!]!;
      if (r >= 0) start[cats[j]! * I + r + 1]!++;
    }
    for (let g = 0; g < groups; g++) start[g + 1]! += start[g]!;
    const fill = start.slice(0, groups);
    const order = new Int32Array(start[groups]!);
    for (let j = 0; j < n; j++) {
      const r = imgRank[imgs[j]!]!;
      if (r >= 0) order[fill[cats[j]! * I + r]!++] = j;
    }
    return { start, order };
  };
  const G0 = group(gt.cat, gt.img, gt.n);
  const D0 = group(dt.cat, dt.img, dt.n);

  const segm = p.iouType === 'segm';
  const gm = gt.masks;
  const dm = dt.masks;
  if (segm && (!gm || !dm)) evalError('segm evaluation needs ground truth and detections loaded with iouType "segm"');

  // every kept detection of all categories, in accumulate's order per category
  const catStart = new Int32Array(K + 1);
  let outImg = new Int32Array(1024);
  let outRank = new Int32Array(1024);
  let outScore = new Float64Array(1024);
  let outCodes = new Uint8Array(1024 * AT);
  let nOut = 0;
  const npig = new Int32Array(K * I * A);

  // scratch, grown on demand
  let dIdx = new Int32Array(256);
  let ious = new Float64Array(1024);
  let gOrder = new Int32Array(64);
  let gIg = new Uint8Array(64);
  let gMatched = new Uint8Array(64);
  let dOut = new Uint8Array(256);
  // per-category kept detections
  let kScore = new Float64Array(4096);
  let kRank = new Int32Array(4096);
  let kImg = new Int32Array(4096);
  let kCodes = new Uint8Array(4096 * AT);
  let order = new Int32Array(4096);
  let tmp = new Int32Array(4096);
  const thrs = Float64Array.from(iouThrs, (t) => Math.min(t, 1 - 1e-10));
  const ui = new Float64Array(2);

  for (let k = 0; k < K; k++) {
    let nk = 0;
    for (let i = 0; i < I; i++) {
      const key = k * I + i;
      const gs = G0.start[key]!;
      const G = G0.start[key + 1]! - gs;
      const ds = D0.start[key]!;
      const D = D0.start[key + 1]! - ds;
      if (G === 0 && D === 0) continue;

      dIdx = grow(dIdx, D);
      for (let d = 0; d < D; d++) dIdx[d] = D0.order[ds + d]!;
      sortByScore(dIdx, D, dt.score);
      const Dk = Math.min(D, maxDetMax);

      // IoU matrix, dt-major: ious[d * G + g] with g in the gt's file order
      if (G > 0 && Dk > 0) {
        ious = grow(ious, Dk * G);
        for (let g = 0; g < G; g++) {
          const gi = G0.order[gs + g]!;
          const crowd = gt.crowd[gi] === 1;
          const B = segm ? gm!.bb : gt.box;
          const bi = segm ? 4 * gi : 4 * gi;
          const gx = B[bi]!;
          const gy = B[bi + 1]!;
          const gw = B[bi + 2]!;
          const gh = B[bi + 3]!;
          const ga = gw * gh;
          for (let d = 0; d < Dk; d++) {
            const di = dIdx[d]!;
            const DB = segm ? dm!.bb : dt.box;
            const dx = DB[4 * di]!;
            const dy = DB[4 * di + 1]!;
            const dw = DB[4 * di + 2]!;
            const dh = DB[4 * di + 3]!;
            let o = 0;
            const iw = Math.min(dw + dx, gw + gx) - Math.max(dx, gx);
            if (iw > 0) {
              const ih = Math.min(dh + dy, gh + gy) - Math.max(dy, gy);
              if (ih > 0) {
                const inter = iw * ih;
                o = inter / (crowd ? dw * dh : dw * dh + ga - inter);
              }
            }
            if (segm && o > 0) {
              // rleIou: box overlap first, then sizes, then the run-length intersection
              if (dm!.h[di] !== gm!.h[gi] || dm!.w[di] !== gm!.w[gi]) o = -1;
              else {
                rleInterUnionAt(dm!.counts, dm!.off[di]!, dm!.len[di]!, gm!.counts, gm!.off[gi]!, gm!.len[gi]!, ui);
                const inter = ui[0]!;
                let uu = ui[1]!;
                if (inter === 0) uu = 1;
                else if (crowd) uu = dm!.area[di]!;
                o = inter / uu;
              }
            }
            ious[d * G + g] = o;
          }
        }
      }

      // kept detections of this image join the category's list
      kScore = grow(kScore, nk + Dk);
      kRank = grow(kRank, nk + Dk);
      kImg = grow(kImg, nk + Dk);
      kCodes = grow(kCodes, (nk + Dk) * AT);
      dOut = grow(dOut, Dk);
      gOrder = grow(gOrder, G);
      gIg = grow(gIg, G);
      gMatched = grow(gMatched, G);
      for (let d = 0; d < Dk; d++) {
        kScore[nk + d] = dt.score[dIdx[d]!]!;
        kRank[nk + d] = d;
        kImg[nk + d] = i;
      }

      for (let a = 0; a < A; a++) {
        const lo = p.areaRng[a]![0];
        const hi = p.areaRng[a]![1];
        // gt ignore flags, then order: non-ignored first, stable (argsort of _ignore, mergesort)
        let nNon = 0;
        for (let g = 0; g < G; g++) {
          const gi = G0.order[gs + g]!;
          const ar = gt.area[gi]!;
          const ig = gt.crowd[gi] === 1 || ar < lo || ar > hi ? 1 : 0;
          gIg[g] = ig;
          if (!ig) nNon++;
        }
        npig[key * A + a] = nNon;
        let f0 = 0;
        let f1 = nNon;
        for (let g = 0; g < G; g++) {
          if (gIg[g]) gOrder[f1++] = g;
          else gOrder[f0++] = g;
        }
        for (let d = 0; d < Dk; d++) {
          const ar = dt.area[dIdx[d]!]!;
          dOut[d] = ar < lo || ar > hi ? 1 : 0;
        }
        if (G === 0) {
          for (let d = 0; d < Dk; d++) kCodes.fill(dOut[d] ? IGN : FP, (nk + d) * AT + a * T, (nk + d) * AT + a * T + T);
          continue;
        }
        for (let t = 0; t < T; t++) {
          gMatched.fill(0, 0, G);
          const thr = thrs[t]!;
          for (let d = 0; d < Dk; d++) {
            let best = thr;
            let m = -1;
            const row = d * G;
            for (let j = 0; j < G; j++) {
              const g = gOrder[j]!;
              if (gMatched[j] && gt.crowd[G0.order[gs + g]!] !== 1) continue;
              if (m > -1 && gIg[gOrder[m]!] === 0 && gIg[g] === 1) break;
              const v = ious[row + g]!;
              if (v < best) continue;
              best = v;
              m = j;
            }
            let code: number;
            if (m === -1) code = dOut[d] ? IGN : FP;
            else {
              gMatched[m] = 1;
              const g = gOrder[m]!;
              const ig = gIg[g] === 1;
              // pycocotools stores the gt id in dtm and tests dtm == 0 for "unmatched"
              if (gt.annId[G0.order[gs + g]!] !== 0) code = ig ? IGN : TP;
              else code = ig || dOut[d] ? IGN : FP;
            }
            kCodes[(nk + d) * AT + a * T + t] = code;
          }
        }
      }
      nk += Dk;
    }

    // order the category's kept detections by score (stable) and store their codes transposed,
    // codes[(a*T + t) * nk + j] within the category, for sequential scans
    order = grow(order, nk);
    tmp = grow(tmp, nk);
    for (let j = 0; j < nk; j++) order[j] = j;
    mergeSortDesc(order, nk, kScore, tmp);
    catStart[k] = nOut;
    outImg = grow(outImg, nOut + nk);
    outRank = grow(outRank, nOut + nk);
    outScore = grow(outScore, nOut + nk);
    outCodes = grow(outCodes, (nOut + nk) * AT);
    const cbase = nOut * AT;
    for (let j = 0; j < nk; j++) {
      const o = order[j]!;
      outImg[nOut + j] = kImg[o]!;
      outRank[nOut + j] = kRank[o]!;
      outScore[nOut + j] = kScore[o]!;
      const src = o * AT;
      for (let q = 0; q < AT; q++) outCodes[cbase + q * nk + j] = kCodes[src + q]!;
    }
    nOut += nk;
  }
  catStart[K] = nOut;
  const tieNext = new Uint8Array(nOut);
  for (let k = 0; k < K; k++) {
    for (let r = catStart[k]!; r + 1 < catStart[k + 1]!; r++) {
      if (outImg[r] === outImg[r + 1] && outScore[r] === outScore[r + 1]) tieNext[r] = 1;
    }
  }

  return {
    params: p,
    maxDets,
    imgIds: imgList.map((pos) => gt.imgIds[pos]!),
    catIds: gt.catIds.slice(),
    catNames: gt.catNames.slice(),
    counts: [T, R, K, A, M],
    catStart,
    img: outImg.subarray(0, nOut),
    rank: outRank.subarray(0, nOut),
    score: outScore.subarray(0, nOut),
    codes: outCodes.subarray(0, nOut * AT),
    tieNext,
    npig,
  };
}

/** Image multiplicities as an Int32Array (all 1 when absent); errors name the bad entry. */
function imageWeights(ev: ImageEvaluation, weights: ArrayLike<number> | undefined): { W: Int32Array; ones: boolean } {
  const I = ev.imgIds.length;
  const W = new Int32Array(I).fill(1);
  let ones = true;
  if (weights) {
    if (weights.length !== I) evalError(`weights: expected one per evaluated image (${I}), got ${weights.length}`);
    for (let i = 0; i < I; i++) {
      const w = weights[i]!;
      if (!(Number.isInteger(w) && w >= 0 && w < 2 ** 31)) evalError(`weights[${i}] must be a non-negative integer, got ${w}`);
      W[i] = w;
      if (w !== 1) ones = false;
    }
  }
  return { W, ones };
}

/** Where accumulateInto writes: the EvalResult layouts; scores may be left out. */
interface Accumulation {
  precision: Float64Array;
  recall: Float64Array;
  scores: Float64Array | null;
  /** Scratch kept between calls: per run of TPs its envelope precision, cumulative TP count, detection. */
  runPr?: Float64Array;
  runEnd?: Float64Array;
  runPos?: Int32Array;
}

/**
 * accumulate() with image weights W, writing every entry of the (area range a, maxDets mi)
 * slices with needP[a * M + mi] (precision, scores) or needR[a * M + mi] (recall) set.
 *
 * A detection of an image counted w times stands for w consecutive detections: each of its w
 * true positives has precision (tp0 + c) / (fp + tp0 + c + eps), non-decreasing in c, so the
 * right-to-left envelope is the same at all w of them and only the last needs keeping.
 * Detections of one image with equal scores (a tie block) repeat as a block, in the order the
 * copies would sort.
 */
function accumulateInto(ev: ImageEvaluation, weights: { W: Int32Array; ones: boolean }, needP: Uint8Array, needR: Uint8Array, out: Accumulation): void {
  const W = weights.W;
  // one plain pass over the codes (pycocotools' accumulate), or the weighted scan of MatchLists
  const direct = weights.ones && !ev.lists;
  if (!direct) indexMatches(ev);
  const recThrs = ev.params.recThrs;
  const maxDets = ev.maxDets;
  const [T, R, K, A, M] = ev.counts;
  const AT = A * T;
  const I = ev.imgIds.length;
  const { precision, recall, scores } = out;

  // weighted gt counts per (category, area range)
  const npig = new Float64Array(K * A);
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < I; i++) {
      const w = W[i]!;
      if (w === 0) continue;
      const at = (k * I + i) * A;
      for (let a = 0; a < A; a++) npig[k * A + a]! += w * ev.npig[at + a]!;
    }
  }

  let nkMax = 0;
  for (let k = 0; k < K; k++) nkMax = Math.max(nkMax, ev.catStart[k + 1]! - ev.catStart[k]!);
  let runPr = grow(out.runPr ?? new Float64Array(nkMax + 1), nkMax + 1);
  let runEnd = grow(out.runEnd ?? new Float64Array(nkMax + 1), nkMax + 1);
  let runPos = grow(out.runPos ?? new Int32Array(nkMax + 1), nkMax + 1);

  for (let k = 0; k < K; k++) {
    const off = ev.catStart[k]!;
    const nk = ev.catStart[k + 1]! - off;
    const img = ev.img.subarray(off, off + nk);
    const srank = ev.rank.subarray(off, off + nk);
    const sscore = ev.score.subarray(off, off + nk);
    const tie = ev.tieNext.subarray(off, off + nk);
    const codes = ev.codes.subarray(off * AT, (off + nk) * AT);
    const lists = direct ? null : ev.lists![k]!;
    for (let mi = 0; mi < M; mi++) {
      const maxDet = maxDets[mi]!;
      // does any counted image have a detection taking part, and which is the first
      let first = -1;
      for (let j = 0; j < nk; j++) {
        if (srank[j]! < maxDet && W[img[j]!]! > 0) {
          first = j;
          break;
        }
      }
      const nd = first >= 0;
      for (let a = 0; a < A; a++) {
        const wantP = needP[a * M + mi] === 1;
        const wantR = needR[a * M + mi] === 1;
        if (!wantP && !wantR) continue;
        const np_ = npig[k * A + a]!;
        if (np_ === 0) {
          // no gt of this kind: -1, as pycocotools leaves it
          for (let t = 0; t < T; t++) {
            if (wantR) recall[((t * K + k) * A + a) * M + mi] = -1;
            if (!wantP) continue;
            for (let r = 0; r < R; r++) {
              const at = (((t * R + r) * K + k) * A + a) * M + mi;
              precision[at] = -1;
              if (scores) scores[at] = -1;
            }
          }
          continue;
        }
        for (let t = 0; t < T; t++) {
          // precision only rises at true positives, and recall only changes there: keep
          // tp / (fp + tp + eps) at the last of each run of equal true positives; the envelope
          // and searchsorted need nothing else. runPos: the run's last TP as its list position
          // u, or -(j + 1) for detection j.
          const base = (a * T + t) * nk;
          let tp = 0;
          let fp = 0;
          let nRun = 0;
          if (lists === null) {
            for (let j = 0; j < nk; j++) {
              if (srank[j]! >= maxDet) continue;
              const c = codes[base + j]!;
              if (c === TP) {
                tp++;
                runPr[nRun] = tp / (fp + tp + SPACING_1);
                runEnd[nRun] = tp;
                runPos[nRun++] = -(j + 1);
              } else if (c === FP) fp++;
            }
          } else {
            const { code, det } = lists;
            const slice = (mi * A + a) * T + t;
            const u1 = lists.start[slice + 1]!;
            for (let u = lists.start[slice]!; u < u1; ) {
              const x = code[u]!;
              const w = W[x >> 2]!;
              if (w === 0) {
                u++;
                continue;
              }
              if (w > 1 && (x & 2) !== 0) {
                // a tie block (same image, same score; ranks rise inside it, so maxDet cuts its
                // tail): its copies follow one another, each in the block's order
                const j = det[u]!;
                let e = j + 1;
                while (e < nk && tie[e - 1] === 1 && srank[e]! < maxDet) e++;
                if (nRun + (e - j) * w > runPr.length) {
                  runPr = grow(runPr, nRun + (e - j) * w);
                  runEnd = grow(runEnd, nRun + (e - j) * w);
                  runPos = grow(runPos, nRun + (e - j) * w);
                }
                for (let copy = 0; copy < w; copy++) {
                  for (let v = j; v < e; v++) {
                    const c = codes[base + v]!;
                    if (c === TP) {
                      tp++;
                      runPr[nRun] = tp / (fp + tp + SPACING_1);
                      runEnd[nRun] = tp;
                      runPos[nRun++] = -(v + 1);
                    } else if (c === FP) fp++;
                  }
                }
                while (u < u1 && det[u]! < e) u++;
                continue;
              }
              if (x & 1) {
                tp += w;
                runPr[nRun] = tp / (fp + tp + SPACING_1);
                runEnd[nRun] = tp;
                runPos[nRun++] = u;
              } else fp += w;
              u++;
            }
          }
          if (wantR) recall[((t * K + k) * A + a) * M + mi] = nd ? tp / np_ : 0;
          if (!wantP) continue;
          for (let q = nRun - 2; q >= 0; q--) if (runPr[q + 1]! > runPr[q]!) runPr[q] = runPr[q + 1]!;
          let q = 0;
          let u = 0;
          for (let r = 0; r < R; r++) {
            const thr = recThrs[r]!;
            const at = (((t * R + r) * K + k) * A + a) * M + mi;
            let pr = 0;
            let sc = 0;
            if (!nd) {
              // nothing detected: 0
            } else if (thr <= 0) {
              // searchsorted -> 0: the first kept detection; envelope = best precision anywhere
              pr = nRun ? runPr[0]! : 0;
              sc = sscore[first]!;
            } else {
              while (q < tp && (q + 1) / np_ < thr) q++; // recall at the q-th TP is (q+1)/npig
              if (q < tp) {
                while (runEnd[u]! <= q) u++;
                pr = runPr[u]!;
                if (scores) {
                  const pos = runPos[u]!;
                  sc = sscore[pos >= 0 ? lists!.det[pos]! : -pos - 1]!;
                }
              }
            }
            precision[at] = pr;
            if (scores) scores[at] = sc;
          }
        }
      }
    }
  }
  out.runPr = runPr;
  out.runEnd = runEnd;
  out.runPos = runPos;
}

/**
 * accumulate() + summarize(): precision / recall / scores at every (IoU threshold, recall
 * threshold, category, area range, maxDets) and the 12 stats with per-category stats.
 *
 * `weights` says how many times each evaluated image counts (ev.imgIds order; non-negative
 * integers; default all 1). An image counted twice counts as two images, its gts and its
 * detections: the result equals COCOeval on a dataset holding a copy of it under a new id
 * that sorts right after it (and a gt with id 0 keeps pycocotools' "id 0 is unmatched" quirk in
 * every copy).
 */
export function accumulate(ev: ImageEvaluation, weights?: ArrayLike<number>): EvalResult {
  const [T, R, K, A, M] = ev.counts;
  const all = new Uint8Array(A * M).fill(1);
  const res: EvalResult = {
    params: ev.params,
    imgIds: ev.imgIds.slice(),
    catIds: ev.catIds.slice(),
    counts: [T, R, K, A, M],
    precision: new Float64Array(T * R * K * A * M),
    recall: new Float64Array(T * K * A * M),
    scores: new Float64Array(T * R * K * A * M),
    stats: [],
    perCategory: {},
  };
  accumulateInto(ev, imageWeights(ev, weights), all, all, res);
  res.stats = summarizeStats(res);
  for (let k = 0; k < K; k++) {
    const s = summarizeStats(res, k);
    const stats = {} as Record<StatName, number>;
    STAT_NAMES.forEach((n, j) => (stats[n] = s[j]!));
    res.perCategory[String(ev.catIds[k])] = { name: ev.catNames[k]!, stats };
  }
  return res;
}

const statBuffers = new WeakMap<ImageEvaluation, { acc: Accumulation; needP: Uint8Array; needR: Uint8Array }>();

/**
 * The 12 summary stats of accumulate(ev, weights), computing only the slices they read (the
 * bootstrap's inner step; its buffers are kept per ImageEvaluation and reused).
 */
export function accumulateStats(ev: ImageEvaluation, weights?: ArrayLike<number>): number[] {
  const [T, R, K, A, M] = ev.counts;
  let b = statBuffers.get(ev);
  if (!b) {
    const needP = new Uint8Array(A * M);
    const needR = new Uint8Array(A * M);
    for (const s of statSlices(ev.params)) {
      const ai = ev.params.areaRngLbl.indexOf(s.area);
      const mi = s.maxDet === undefined ? -1 : ev.maxDets.indexOf(s.maxDet);
      if (ai >= 0 && mi >= 0) (s.ap ? needP : needR)[ai * M + mi] = 1;
    }
    b = { acc: { precision: new Float64Array(T * R * K * A * M), recall: new Float64Array(T * K * A * M), scores: null }, needP, needR };
    statBuffers.set(ev, b);
  }
  accumulateInto(ev, imageWeights(ev, weights), b.needP, b.needR, b.acc);
  return summarizeStats({ params: ev.params, counts: ev.counts, precision: b.acc.precision, recall: b.acc.recall });
}

/** Runs evaluate + accumulate + summarize. `imgIds` restricts the images (params.imgIds). */
export function runEval(gt: GroundTruth, dt: Detections, p: EvalParams, imgIds?: readonly number[]): EvalResult {
  return accumulate(evaluateImages(gt, dt, p, imgIds));
}

/** One of the 12 summary stats, as pycocotools' _summarizeDets selects it. */
export interface StatSlice {
  /** Precision (AP) or recall (AR). */
  ap: boolean;
  /** One IoU threshold, or null for all of them. */
  iouThr: number | null;
  /** Area range label. */
  area: string;
  /** maxDets value (undefined when params have fewer than three). */
  maxDet: number | undefined;
}

/** The slices behind AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl. */
export function statSlices(p: EvalParams): StatSlice[] {
  const maxDets = [...p.maxDets].sort((a, b) => a - b);
  const m2 = maxDets[2];
  const s = (ap: boolean, iouThr: number | null, area: string, maxDet: number | undefined): StatSlice => ({ ap, iouThr, area, maxDet });
  return [
    s(true, null, 'all', 100),
    s(true, 0.5, 'all', m2),
    s(true, 0.75, 'all', m2),
    s(true, null, 'small', m2),
    s(true, null, 'medium', m2),
    s(true, null, 'large', m2),
    s(false, null, 'all', maxDets[0]),
    s(false, null, 'all', maxDets[1]),
    s(false, null, 'all', m2),
    s(false, null, 'small', m2),
    s(false, null, 'medium', m2),
    s(false, null, 'large', m2),
  ];
}

/**
 * pycocotools' summarize() (_summarizeDets) over all categories, or one category index k:
 * the mean of precision (or recall) entries > -1 in the selected slice, -1 when none.
 */
export function summarizeStats(e: Pick<EvalResult, 'params' | 'counts' | 'precision' | 'recall'>, k?: number): number[] {
  const p = e.params;
  const [T, R, K, A, M] = e.counts;
  const maxDets = [...p.maxDets].sort((a, b) => a - b);
  const buf = new Float64Array(T * R * (k === undefined ? K : 1));
  let n = 0;
  const one = ({ ap, iouThr, area, maxDet }: StatSlice): number => {
    const ai = p.areaRngLbl.indexOf(area);
    const mi = maxDet === undefined ? -1 : maxDets.indexOf(maxDet);
    if (ai < 0 || mi < 0) return -1;
    const ts: number[] = [];
    for (let t = 0; t < T; t++) if (iouThr === null || p.iouThrs[t] === iouThr) ts.push(t);
    const k0 = k ?? 0;
    const k1 = k === undefined ? K : k + 1;
    n = 0;
    for (const t of ts) {
      if (ap) {
        for (let r = 0; r < R; r++) {
          for (let kk = k0; kk < k1; kk++) {
            const v = e.precision[(((t * R + r) * K + kk) * A + ai) * M + mi]!;
            if (v > -1) buf[n++] = v;
          }
        }
      } else {
        for (let kk = k0; kk < k1; kk++) {
          const v = e.recall[((t * K + kk) * A + ai) * M + mi]!;
          if (v > -1) buf[n++] = v;
        }
      }
    }
    return n === 0 ? -1 : pairwiseSum(buf, 0, n) / n;
  };
  return statSlices(p).map(one);
}

/**
 * Python's '{:0.Nf}' format: like toFixed, but an exact binary tie rounds half to even
 * (0.0625 -> '0.062', where toFixed gives '0.063').
 */
export function pyFixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  const scaled = x * 10 ** digits;
  // a tie is a dyadic x whose scaled value ends in exactly .5 (x * 2^k integral for small k)
  if (Number.isInteger(x * 2 ** 20) && Math.abs(scaled - Math.trunc(scaled)) === 0.5) {
    const down = Math.trunc(scaled);
    const even = down % 2 === 0 ? down : down + Math.sign(x);
    return (even / 10 ** digits).toFixed(digits);
  }
  return s;
}

/** The table pycocotools' summarize() prints. */
export function formatSummary(e: EvalResult, stats: readonly number[] = e.stats): string {
  const p = e.params;
  const maxDets = [...p.maxDets].sort((a, b) => a - b);
  const f2 = (x: number) => pyFixed(x, 2);
  const rows: [boolean, number | null, string, number][] = [
    [true, null, 'all', 100],
    [true, 0.5, 'all', maxDets[2]!],
    [true, 0.75, 'all', maxDets[2]!],
    [true, null, 'small', maxDets[2]!],
    [true, null, 'medium', maxDets[2]!],
    [true, null, 'large', maxDets[2]!],
    [false, null, 'all', maxDets[0]!],
    [false, null, 'all', maxDets[1]!],
    [false, null, 'all', maxDets[2]!],
    [false, null, 'small', maxDets[2]!],
    [false, null, 'medium', maxDets[2]!],
    [false, null, 'large', maxDets[2]!],
  ];
  return rows
    .map(([ap, thr, area, md], j) => {
      const title = (ap ? 'Average Precision' : 'Average Recall').padEnd(18);
      const type = ap ? '(AP)' : '(AR)';
      const iou = (thr === null ? `${f2(p.iouThrs[0]!)}:${f2(p.iouThrs[p.iouThrs.length - 1]!)}` : f2(thr)).padEnd(9);
      return ` ${title} ${type} @[ IoU=${iou} | area=${area.padStart(6)} | maxDets=${String(md).padStart(3)} ] = ${pyFixed(stats[j]!, 3)}\n`;
    })
    .join('');
}
