/**
 * The alignment: the one mapping between two models' feature maps of the same images, shared by
 * the adapters, the ensemble of teacher maps and the adaptation-cost fit (native/distill/align.h).
 * At a level of stride s, image i resized to [h, w] occupies the top-left ceil(h/s) x ceil(w/s)
 * cells of its map; its content is resampled bilinearly (align_corners=false) at the per-image
 * scale (h_t / s_t) / (h_s / s_s) (the same in x) onto its valid cells of the target grid, and the
 * padding of both maps is never read.
 */
import { withCallSite } from '../errors.js';
import { native } from '../native.js';
import type { Tensor } from '../tensor.js';
import type { AlignedMap } from './binding.js';

export type { AlignedMap, MapLayout } from './binding.js';

/** ceil(h / s) x ceil(w / s): the cells an image resized to [h, w] occupies at stride s. */
export function validCells(size: [number, number], stride: number): [number, number] {
  return [Math.ceil(size[0] / stride), Math.ceil(size[1] / stride)];
}

/**
 * `source` (N, C, Hs, Ws), whose images were resized to `sourceSizes` and whose level has stride
 * `sourceStride`, onto a (Ht, Wt) grid of stride `targetStride` where the same images were
 * resized to `targetSizes`: `{aligned (N, C, Ht, Wt), mask (N, 1, Ht, Wt)}`.
 */
export async function alignMap(
  source: Tensor,
  sourceSizes: [number, number][],
  sourceStride: number,
  targetHW: [number, number],
  targetSizes: [number, number][],
  targetStride: number,
  mode: 'bilinear' | 'nearest' = 'bilinear',
): Promise<AlignedMap> {
  const site = new Error().stack;
  try {
    return await native().distill.alignMap(source, sourceSizes, sourceStride, targetHW, targetSizes, targetStride, mode);
  } catch (err) {
    throw withCallSite(err, site);
  }
}
