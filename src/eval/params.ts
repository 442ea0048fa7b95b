/**
 * COCOeval parameters (pycocotools `Params.setDetParams`) and the numpy arithmetic that the
 * statistics depend on bit for bit: `np.linspace`, `np.spacing(1)` and the pairwise sum behind
 * `np.mean`.
 */

export type IouType = 'bbox' | 'segm';

export interface EvalParams {
  iouType: IouType;
  /** T IoU thresholds, np.linspace(.5, .95, 10): the 9th is 0.8999999999999999. */
  iouThrs: Float64Array;
  /** R recall thresholds, np.linspace(0, 1, 101). */
  recThrs: Float64Array;
  /** M max detections per image and category, ascending. */
  maxDets: number[];
  /** A area ranges [lo, hi], inclusive at both ends. */
  areaRng: [number, number][];
  areaRngLbl: string[];
}

/** np.linspace(start, stop, num) with endpoint=True, as numpy >= 1.16 computes it. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  const step = div > 0 ? delta / div : NaN;
  for (let i = 0; i < num; i++) {
    // numpy: y = arange(num) * step + start (or (arange/div)*delta when step == 0)
    out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
  }
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** np.spacing(1): the gap from 1.0 to the next double. */
export const SPACING_1 = 2.220446049250313e-16;

export function defaultParams(iouType: IouType = 'bbox'): EvalParams {
  return {
    iouType,
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0.0, 1.0, Math.round((1.0 - 0.0) / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRng: [
      [0 ** 2, 1e5 ** 2],
      [0 ** 2, 32 ** 2],
      [32 ** 2, 96 ** 2],
      [96 ** 2, 1e5 ** 2],
    ],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
  };
}

/** numpy's pairwise summation of float64 (numpy/core/src/umath/loops_utils.h), for exact means. */
export function pairwiseSum(a: ArrayLike<number>, start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i]!;
    return res;
  }
  if (n <= 128) {
    let r0 = a[start]!;
    let r1 = a[start + 1]!;
    let r2 = a[start + 2]!;
    let r3 = a[start + 3]!;
    let r4 = a[start + 4]!;
    let r5 = a[start + 5]!;
    let r6 = a[start + 6]!;
    let r7 = a[start + 7]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      r0 += a[start + i]!;
      r1 += a[start + i + 1]!;
      r2 += a[start + i + 2]!;
      r3 += a[start + i + 3]!;
      r4 += a[start + i + 4]!;
      r5 += a[start + i + 5]!;
      r6 += a[start + i + 6]!;
      r7 += a[start + i + 7]!;
    }
    let res = r0 + r1 + (r2 + r3) + (r4 + r5 + (r6 + r7));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** np.mean(x) of a 1-D float64 array. */
export function npMean(x: ArrayLike<number>): number {
  return pairwiseSum(x, 0, x.length) / x.length;
}
