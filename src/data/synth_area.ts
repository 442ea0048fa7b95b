/** Pixel area of COCO polygons as pycocotools computes it: rleFrPoly per polygon, merged, counted. */
import { annToRle, area } from '../coco/mask.js';

export function polygonsArea(polys: number[][], h: number, w: number): number {
  return area(annToRle(polys, h, w));
}
