/**
 * Test fixtures for the alignment: feature maps whose content is a known function of image
 * coordinates, so that a map of the same images on another grid (another resolution, stride or
 * padding) is known exactly.
 *
 * Cell (i, j) of image n at stride s, resized to (h, w), has its centre at the normalized image
 * coordinates y = (i + 1/2) s / h, x = (j + 1/2) s / w. The content is
 *   f_{n,c}(y, x) = a + b Y + d X + e Y X,  Y = clamp(y, y_0, y_last), X = clamp(x, x_0, x_last),
 * where y_0 / y_last are the centres of the first / last valid cell of the REFERENCE grid (the
 * source of the alignment). Bilinear resampling (align_corners=false) of the reference map
 * interpolates between adjacent cell centres, where f is bilinear in (y, x), and clamps beyond the
 * first and last centres, where f is constant: so it reproduces f exactly on every valid cell of
 * any other grid, borders included. Padding cells hold `pad` (garbage that must never be read).
 */
import type { Tensor } from '../../src/tensor.js';

export type Size = [number, number];

export interface GridSpec {
  /** Per image [h, w] after the model's resize. */
  sizes: Size[];
  stride: number;
  /** The map's [H, W] (padding included). */
  hw: Size;
}

/** Per (image, channel) coefficients [a, b, d, e]. */
export type Coef = (n: number, c: number) => [number, number, number, number];

export function cells(size: Size, stride: number): Size {
  return [Math.ceil(size[0] / stride), Math.ceil(size[1] / stride)];
}

/** The map (N, C, H, W) of f on grid `g`, clamped to the centres of `ref` (the source grid). */
export function fieldMap(c: number, g: GridSpec, ref: GridSpec, coef: Coef, pad: (n: number, c: number, i: number, j: number) => number): Tensor<'float32'> {
  const n = g.sizes.length;
  const [H, W] = g.hw;
  const data = new Float32Array(n * c * H * W);
  for (let k = 0; k < n; k++) {
    const [h, w] = g.sizes[k] as Size;
    const [vh, vw] = cells([h, w], g.stride);
    const [rh, rw] = ref.sizes[k] as Size;
    const [rvh, rvw] = cells([rh, rw], ref.stride);
    const y0 = (0.5 * ref.stride) / rh, y1 = ((rvh - 0.5) * ref.stride) / rh;
    const x0 = (0.5 * ref.stride) / rw, x1 = ((rvw - 0.5) * ref.stride) / rw;
    for (let ch = 0; ch < c; ch++) {
      const [a, b, d, e] = coef(k, ch);
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) {
          let v: number;
          if (i < vh && j < vw) {
            const Y = Math.min(Math.max(((i + 0.5) * g.stride) / h, y0), y1);
            const X = Math.min(Math.max(((j + 0.5) * g.stride) / w, x0), x1);
            v = a + b * Y + d * X + e * Y * X;
          } else v = pad(k, ch, i, j);
          data[((k * c + ch) * H + i) * W + j] = v;
        }
    }
  }
  return { dtype: 'float32', shape: [n, c, H, W], data };
}

/** Deterministic coefficients in [lo, hi). */
export function coefs(seed: number, lo = -1, hi = 1): Coef {
  const f = (n: number, c: number, k: number) => {
    const x = Math.sin(seed * 12.9898 + n * 78.233 + c * 37.719 + k * 4.581) * 43758.5453;
    return lo + (hi - lo) * (x - Math.floor(x));
  };
  return (n, c) => [f(n, c, 0), f(n, c, 1), f(n, c, 2), f(n, c, 3)];
}

/** Max |a - b| over the valid cells of grid g. */
export function maxDiffOnValid(a: Tensor, b: Tensor, g: GridSpec): number {
  const [n, c, H, W] = a.shape as [number, number, number, number];
  let worst = 0;
  for (let k = 0; k < n; k++) {
    const [vh, vw] = cells(g.sizes[k] as Size, g.stride);
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < vh; i++)
        for (let j = 0; j < vw; j++) {
          const idx = ((k * c + ch) * H + i) * W + j;
          worst = Math.max(worst, Math.abs((a.data[idx] as number) - (b.data[idx] as number)));
        }
  }
  return worst;
}
