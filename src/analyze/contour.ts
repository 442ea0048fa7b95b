/**
 * Iso-lines of a function sampled on a grid, by marching squares: for each level and each grid
 * cell, the points where the level crosses the cell's edges (linear interpolation along the edge),
 * joined into segments (two crossings: one segment; four, a saddle: two, split by the cell's mean).
 */
export interface Segment {
  level: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** z[j][i] at (xs[i], ys[j]). */
export function isolines(xs: readonly number[], ys: readonly number[], z: readonly (readonly number[])[], levels: readonly number[]): Segment[] {
  const out: Segment[] = [];
  const at = (i: number, j: number) => (z[j] as readonly number[])[i] as number;
  for (const level of levels) {
    for (let j = 0; j + 1 < ys.length; j++) {
      for (let i = 0; i + 1 < xs.length; i++) {
        // Corners counter-clockwise from (i, j): v0 (i,j), v1 (i+1,j), v2 (i+1,j+1), v3 (i,j+1).
        const cx = [xs[i], xs[i + 1], xs[i + 1], xs[i]] as number[];
        const cy = [ys[j], ys[j], ys[j + 1], ys[j + 1]] as number[];
        const v = [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)];
        const pts: [number, number][] = [];
        for (let e = 0; e < 4; e++) {
          // Each edge is interpolated from its lower-left corner, so the two cells that share
          // it compute the same crossing bit for bit.
          let ka = e, kb = (e + 1) % 4;
          if ((cx[kb] as number) < (cx[ka] as number) || (cy[kb] as number) < (cy[ka] as number)) [ka, kb] = [kb, ka];
          const a = v[ka] as number, b = v[kb] as number;
          if ((a < level) !== (b < level)) {
            const t = (level - a) / (b - a);
            const ax = cx[ka] as number, ay = cy[ka] as number, bx = cx[kb] as number, by = cy[kb] as number;
            pts.push([ax + t * (bx - ax), ay + t * (by - ay)]);
          }
        }
        if (pts.length === 2) {
          const [p, q] = pts as [[number, number], [number, number]];
          out.push({ level, x1: p[0], y1: p[1], x2: q[0], y2: q[1] });
        } else if (pts.length === 4) {
          // Saddle: crossings on edges 0,1,2,3 in order; the centre value decides the pairing.
          const centre = (v[0]! + v[1]! + v[2]! + v[3]!) / 4;
          const [p0, p1, p2, p3] = pts as [number, number][];
          // Centre on v0's side: v0 and v2 join, the lines cut off v1 (edges 0, 1) and v3 (edges 2, 3).
          const pair = (centre < level) === ((v[0] as number) < level) ? [[p0, p1], [p2, p3]] : [[p0, p3], [p1, p2]];
          for (const [p, q] of pair as [[number, number], [number, number]][]) out.push({ level, x1: p[0], y1: p[1], x2: q[0], y2: q[1] });
        }
      }
    }
  }
  return out;
}
