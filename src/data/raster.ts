/**
 * Anti-aliased polygon coverage for the synthetic dataset: even-odd fill of one or more rings
 * (flat [x0, y0, x1, y1, ...] arrays in pixel coordinates, pixel (x, y) covering [x, x+1) x [y, y+1)),
 * sampled on `SUB` scanlines per pixel row with exact horizontal span coverage.
 */
export interface Coverage {
  /** Bounding pixel window [x0, x1) x [y0, y1) clipped to the image. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** (y1 - y0) x (x1 - x0) coverage in [0, 1]. */
  data: Float32Array;
}

const SUB = 4;

export function ringsBounds(rings: readonly number[][]): [number, number, number, number] {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const r of rings) {
    for (let i = 0; i < r.length; i += 2) {
      const x = r[i]!;
      const y = r[i + 1]!;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
    }
  }
  return [minX, minY, maxX, maxY];
}

export function rasterize(rings: readonly number[][], width: number, height: number): Coverage {
  const [minX, minY, maxX, maxY] = ringsBounds(rings);
  const x0 = Math.max(0, Math.floor(minX));
  const y0 = Math.max(0, Math.floor(minY));
  const x1 = Math.min(width, Math.ceil(maxX) + 1);
  const y1 = Math.min(height, Math.ceil(maxY) + 1);
  const w = Math.max(0, x1 - x0);
  const h = Math.max(0, y1 - y0);
  const data = new Float32Array(w * h);
  if (w === 0 || h === 0) return { x0, y0, x1: x0, y1: y0, data };
  const xs: number[] = [];
  const wt = 1 / SUB;
  for (let y = y0; y < y1; y++) {
    const row = (y - y0) * w;
    for (let s = 0; s < SUB; s++) {
      const sy = y + (s + 0.5) / SUB;
      xs.length = 0;
      for (const r of rings) {
        const n = r.length;
        for (let i = 0; i < n; i += 2) {
          const ax = r[i]!;
          const ay = r[i + 1]!;
          const j = i + 2 < n ? i + 2 : 0;
          const bx = r[j]!;
          const by = r[j + 1]!;
          if (ay <= sy !== by <= sy) xs.push(ax + ((sy - ay) * (bx - ax)) / (by - ay));
        }
      }
      xs.sort((a, b) => a - b);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        let xa = xs[k]! - x0;
        let xb = xs[k + 1]! - x0;
        if (xa < 0) xa = 0;
        if (xb > w) xb = w;
        if (xb <= xa) continue;
        const ia = Math.floor(xa);
        const ib = Math.floor(xb);
        if (ia === ib) {
          data[row + ia]! += (xb - xa) * wt;
        } else {
          data[row + ia]! += (ia + 1 - xa) * wt;
          for (let c = ia + 1; c < ib; c++) data[row + c]! += wt;
          if (ib < w) data[row + ib]! += (xb - ib) * wt;
        }
      }
    }
  }
  return { x0, y0, x1, y1, data };
}
