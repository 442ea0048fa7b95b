/**
 * Pixel area of COCO polygons as pycocotools computes it (rleFrPoly, then the union's area).
 * Placeholder until src/coco/mask.ts is merged: shoelace area of the polygons.
 */
export function polygonsArea(polys: readonly number[][], _h: number, _w: number): number {
  let a = 0;
  for (const r of polys) {
    let s = 0;
    for (let i = 0; i < r.length; i += 2) {
      const j = i + 2 < r.length ? i + 2 : 0;
      s += r[i]! * r[j + 1]! - r[j]! * r[i + 1]!;
    }
    a += Math.abs(s) / 2;
  }
  return a;
}
