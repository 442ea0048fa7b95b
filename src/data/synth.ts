/**
 * The built-in demo dataset: COCO-format images of shapes on cluttered, textured backgrounds.
 *
 * Design (what makes it worth distilling on):
 * - 8 shape classes, some deliberately alike: circle / hexagon (alike at small sizes), square /
 *   diamond (a square turned by 45 degrees +- 20 and stretched), star / cross, ring / circle;
 * - sizes spanning COCO's small (< 32^2 px), medium and large (> 96^2 px) area ranges, random
 *   colours with shading and stripes, 15% of them close to a background colour (camouflage);
 * - backgrounds of multi-octave value noise between two random colours, thin strokes, pixel noise;
 * - distractor blobs (smooth irregular shapes, never annotated) mixed into the z-order;
 * - overlaps: objects may hide each other (each keeps at least 40% of its pixels visible) and may
 *   be cut by the image border;
 * - crowd regions: clusters of tiny shapes of one class annotated once with iscrowd=1 and an
 *   uncompressed RLE of their visible pixels.
 *
 * Annotation conventions: the segmentation is the VISIBLE part of the object (its shape minus
 * everything drawn above it, clipped to the image), as polygons; a visible part with holes becomes
 * one polygon whose holes are joined to the outline by zero-width cuts (pycocotools' even-odd
 * rasterization keeps the holes). bbox is the extent of the polygon vertices; area is the pixel area
 * of the polygons rasterized as pycocotools does (rleFrPoly), like COCO's own areas.
 * Every image is a pure function of (seed, split, index), so the output is deterministic and the
 * same whatever the concurrency.
 */
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import polygonClipping, { type MultiPolygon, type Polygon } from 'polygon-clipping';
import sharp from 'sharp';
import { availableParallelism } from 'node:os';
import { MtpdError } from '../errors.js';
import { WorkerPool, siblingUrl } from './pool.js';
import { rasterize, ringsBounds, type Coverage } from './raster.js';
import { deriveRng, type Rng } from './rng.js';
import { polygonsArea } from './synth_area.js';

export const SYNTH_CATEGORIES = ['circle', 'triangle', 'square', 'diamond', 'hexagon', 'star', 'ring', 'cross'] as const;

/**
 * How hard the scenes are. 'hard' (the default) is the design above. 'clear' keeps the classes,
 * look-alikes and COCO size ranges but with fewer tiny objects, calm backgrounds, little clutter
 * and occlusion, no crowd regions and no camouflage: a detector trained from scratch on a CPU reaches
 * a usable AP on it, and small objects still need resolution (the demo's low-resolution student).
 */
export type SynthDifficulty = 'hard' | 'clear';

interface Profile {
  /** Share of small objects, and the smallest sqrt(area) in pixels. */
  small: number;
  minSqrtArea: number;
  /** Objects per image: minObjects + int(extraObjects). */
  minObjects: number;
  extraObjects: number;
  /** Distractor blobs: minDistractors + int(extraDistractors); background strokes: int(strokes). */
  minDistractors: number;
  extraDistractors: number;
  strokes: number;
  crowd: number;
  camouflage: number;
  /** Share of an object's pixels that must stay visible; share inside the image. */
  visible: number;
  inside: number;
  /** Pixel noise sigma range; background contrast range. */
  noise: [number, number];
  contrast: [number, number];
  /**
   * Colour carries the coarse class: each group of look-alike shapes shares a hue band (round:
   * circle, hexagon, ring; boxy: square, diamond; spiky: star, cross; triangle), backgrounds and
   * distractors are greyish. The shape inside a group still needs resolution to tell apart.
   */
  hueGroups: boolean;
}

const PROFILES: Record<SynthDifficulty, Profile> = {
  hard: { small: 0.4, minSqrtArea: 6, minObjects: 2, extraObjects: 10, minDistractors: 1, extraDistractors: 5, strokes: 6, crowd: 0.2, camouflage: 0.15, visible: 0.4, inside: 0.6, noise: [2, 9], contrast: [1, 2.5], hueGroups: false },
  clear: { small: 0.25, minSqrtArea: 14, minObjects: 2, extraObjects: 5, minDistractors: 0, extraDistractors: 2, strokes: 1, crowd: 0, camouflage: 0, visible: 0.75, inside: 0.85, noise: [1, 4], contrast: [0.2, 0.6], hueGroups: true },
};

export interface SynthOptions {
  /** Output folder (created). */
  out: string;
  /** Training images (default 400). */
  images?: number;
  /** Validation images (default images / 4, at least 1). */
  valImages?: number;
  /** Longest image side in pixels (default 224); each side is drawn from [0.75 * size, size]. */
  size?: number;
  seed?: number;
  /** Scene difficulty (default 'hard'). */
  difficulty?: SynthDifficulty;
  /** Worker threads drawing images (default: cores, at most 4; 0 draws on the calling thread). */
  workers?: number;
  /** Called after each image. */
  onProgress?: (done: number, total: number) => void;
}

export interface SynthAnnotation {
  category_id: number;
  segmentation: number[][] | { counts: number[]; size: [number, number] };
  bbox: [number, number, number, number];
  area: number;
  iscrowd: 0 | 1;
}

export interface SynthImage {
  width: number;
  height: number;
  /** H x W x 3 RGB. */
  rgb: Uint8Array;
  annotations: SynthAnnotation[];
}

interface Layer {
  rings: number[][];
  cov: Coverage;
  kind: 'object' | 'distractor' | 'crowd';
  category: number; // contiguous index into SYNTH_CATEGORIES, -1 for distractors
  group: number; // crowd group, -1 otherwise
  paint: Paint;
  full: number; // pixels (coverage >= 0.5) inside the image when placed
}

interface Paint {
  rgb: [number, number, number];
  cx: number;
  cy: number;
  r: number;
  dx: number;
  dy: number;
  shade: number;
  stripes: number; // 0: none, else spatial frequency
  sx: number;
  sy: number;
}

const TAU = Math.PI * 2;

function hsv(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const m = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][((i % 6) + 6) % 6]!;
  return [m[0]! * 255, m[1]! * 255, m[2]! * 255];
}

/** Hue band of each category when colour carries the coarse class (Profile.hueGroups). */
const GROUP_HUE = [0.0, 0.75, 0.33, 0.33, 0.0, 0.55, 0.0, 0.55];

function groupColor(rng: Rng, category: number): [number, number, number] {
  return hsv((GROUP_HUE[category]! + rng.uniform(-0.04, 0.04) + 1) % 1, rng.uniform(0.6, 1), rng.uniform(0.55, 1));
}

function greyish(rng: Rng): [number, number, number] {
  return hsv(rng.next(), rng.uniform(0, 0.2), rng.uniform(0.25, 0.85));
}

function randomColor(rng: Rng): [number, number, number] {
  return hsv(rng.next(), rng.uniform(0.25, 1), rng.uniform(0.3, 1));
}

/** Points of a regular n-gon of radius 1 starting at angle a0. */
function ngon(n: number, a0: number, radius = 1): number[] {
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const a = a0 + (k * TAU) / n;
    out.push(radius * Math.cos(a), radius * Math.sin(a));
  }
  return out;
}

function transform(pts: number[], cx: number, cy: number, sx: number, sy: number, rot: number): number[] {
  const c = Math.cos(rot);
  const s = Math.sin(rot);
  const out = new Array<number>(pts.length);
  for (let i = 0; i < pts.length; i += 2) {
    const x = pts[i]! * sx;
    const y = pts[i + 1]! * sy;
    out[i] = cx + c * x - s * y;
    out[i + 1] = cy + s * x + c * y;
  }
  return out;
}

const deg = Math.PI / 180;

/** Approximate area / L^2 of each class (L = the extent passed to shapeRings). */
const FILL = [0.785, 0.33, 0.5, 0.5, 0.65, 0.3, 0.45, 0.5];

/** Rings (outline first, then holes) of a shape of class `cat` with extent about L around (cx, cy). */
export function shapeRings(cat: number, rng: Rng, cx: number, cy: number, L: number): number[][] {
  const r = L / 2;
  const stretch = (a: number) => {
    const k = 1 + rng.uniform(-a, a);
    return [r * k, r / k] as const;
  };
  const nCircle = Math.max(16, Math.min(64, Math.round(L * 0.9)));
  switch (SYNTH_CATEGORIES[cat]) {
    case 'circle': {
      const [sx, sy] = stretch(0.12);
      return [transform(ngon(nCircle, 0), cx, cy, sx, sy, rng.uniform(0, TAU))];
    }
    case 'triangle': {
      const pts = ngon(3, -Math.PI / 2).map((v) => v + rng.uniform(-0.08, 0.08));
      const [sx, sy] = stretch(0.1);
      return [transform(pts, cx, cy, sx, sy, rng.uniform(0, TAU))];
    }
    case 'square': {
      const [sx, sy] = stretch(0.08);
      return [transform(ngon(4, Math.PI / 4), cx, cy, sx, sy, rng.uniform(-20, 20) * deg)];
    }
    case 'diamond': {
      const k = rng.uniform(1.2, 1.5);
      return [transform(ngon(4, 0), cx, cy, r / Math.sqrt(k), r * Math.sqrt(k), rng.uniform(-20, 20) * deg)];
    }
    case 'hexagon': {
      const [sx, sy] = stretch(0.08);
      return [transform(ngon(6, 0), cx, cy, sx, sy, rng.uniform(0, TAU))];
    }
    case 'star': {
      const inner = rng.uniform(0.38, 0.52);
      const pts: number[] = [];
      for (let k = 0; k < 10; k++) {
        const a = -Math.PI / 2 + (k * TAU) / 10;
        const rad = k % 2 === 0 ? 1 : inner;
        pts.push(rad * Math.cos(a), rad * Math.sin(a));
      }
      const [sx, sy] = stretch(0.08);
      return [transform(pts, cx, cy, sx, sy, rng.uniform(0, TAU))];
    }
    case 'ring': {
      const [sx, sy] = stretch(0.1);
      const rot = rng.uniform(0, TAU);
      const inner = rng.uniform(0.45, 0.65);
      return [transform(ngon(nCircle, 0), cx, cy, sx, sy, rot), transform(ngon(nCircle, 0, inner), cx, cy, sx, sy, rot)];
    }
    case 'cross': {
      const t = rng.uniform(0.24, 0.36);
      const pts = [t, -1, t, -t, 1, -t, 1, t, t, t, t, 1, -t, 1, -t, t, -1, t, -1, -t, -t, -t, -t, -1];
      const [sx, sy] = stretch(0.1);
      return [transform(pts, cx, cy, sx, sy, rng.uniform(-25, 25) * deg)];
    }
    default:
      throw new RangeError(`unknown synthetic class ${cat}`);
  }
}

function blobRings(rng: Rng, cx: number, cy: number, L: number): number[][] {
  const harmonics = [2, 3, 4, 5].map((k) => ({ k, a: rng.uniform(0, 0.22), p: rng.uniform(0, TAU) }));
  const pts: number[] = [];
  const n = 40;
  for (let i = 0; i < n; i++) {
    const a = (i * TAU) / n;
    let rad = 1;
    for (const h of harmonics) rad += h.a * Math.cos(h.k * a + h.p);
    pts.push(rad * Math.cos(a), rad * Math.sin(a));
  }
  const k = rng.uniform(0.6, 1.4);
  return [transform(pts, cx, cy, (L / 2) * k, L / 2 / k, rng.uniform(0, TAU))];
}

function strokeRings(rng: Rng, cx: number, cy: number, L: number): number[][] {
  const w = rng.uniform(1, 3) / L;
  return [transform([-1, -w, 1, -w, 1, w, -1, w], cx, cy, L / 2, L / 2, rng.uniform(0, TAU))];
}

function shoelace(r: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < r.length; i += 2) {
    const j = i + 2 < r.length ? i + 2 : 0;
    s += r[i]! * r[j + 1]! - r[j]! * r[i + 1]!;
  }
  return Math.abs(s) / 2;
}

/** Smooth value noise in [0, 1] from a lattice of spacing `cell`. */
function valueNoise(rng: Rng, W: number, H: number, cell: number, out: Float32Array, weight: number): void {
  const gw = Math.ceil(W / cell) + 2;
  const gh = Math.ceil(H / cell) + 2;
  const g = new Float32Array(gw * gh);
  for (let i = 0; i < g.length; i++) g[i] = rng.next();
  for (let y = 0; y < H; y++) {
    const fy = y / cell;
    const iy = Math.floor(fy);
    let ty = fy - iy;
    ty = ty * ty * (3 - 2 * ty);
    for (let x = 0; x < W; x++) {
      const fx = x / cell;
      const ix = Math.floor(fx);
      let tx = fx - ix;
      tx = tx * tx * (3 - 2 * tx);
      const a = g[iy * gw + ix]!;
      const b = g[iy * gw + ix + 1]!;
      const c = g[(iy + 1) * gw + ix]!;
      const d = g[(iy + 1) * gw + ix + 1]!;
      out[y * W + x]! += weight * (a + (b - a) * tx + (c - a + (d - c - b + a) * tx) * ty);
    }
  }
}

function paintLayer(img: Float32Array, W: number, layer: Layer): void {
  const { cov, paint } = layer;
  const w = cov.x1 - cov.x0;
  const [r0, g0, b0] = paint.rgb;
  for (let y = cov.y0; y < cov.y1; y++) {
    for (let x = cov.x0; x < cov.x1; x++) {
      const a = cov.data[(y - cov.y0) * w + (x - cov.x0)]!;
      if (a <= 0) continue;
      const alpha = a > 1 ? 1 : a;
      let k = 1 + (paint.shade * ((x - paint.cx) * paint.dx + (y - paint.cy) * paint.dy)) / paint.r;
      if (paint.stripes > 0 && Math.sin((x * paint.sx + y * paint.sy) * paint.stripes) > 0) k *= 0.75;
      const p = (y * W + x) * 3;
      img[p] = img[p]! * (1 - alpha) + r0 * k * alpha;
      img[p + 1] = img[p + 1]! * (1 - alpha) + g0 * k * alpha;
      img[p + 2] = img[p + 2]! * (1 - alpha) + b0 * k * alpha;
    }
  }
}

function toGeom(rings: number[][]): Polygon {
  return rings.map((r) => {
    const ring: [number, number][] = [];
    for (let i = 0; i < r.length; i += 2) ring.push([r[i]!, r[i + 1]!]);
    return ring;
  });
}

/** One polygon with holes -> one ring, holes joined to the outline by zero-width cuts. */
export function keyhole(poly: Polygon): number[] {
  const strip = (ring: [number, number][]) => (ring.length > 1 && ring[0]![0] === ring[ring.length - 1]![0] && ring[0]![1] === ring[ring.length - 1]![1] ? ring.slice(0, -1) : ring.slice());
  let outer = strip(poly[0]!);
  for (const holeRing of poly.slice(1)) {
    const hole = strip(holeRing);
    let best = Infinity;
    let bo = 0;
    let bh = 0;
    for (let i = 0; i < outer.length; i++) {
      for (let j = 0; j < hole.length; j++) {
        const d = (outer[i]![0] - hole[j]![0]) ** 2 + (outer[i]![1] - hole[j]![1]) ** 2;
        if (d < best) {
          best = d;
          bo = i;
          bh = j;
        }
      }
    }
    const h = [...hole.slice(bh), ...hole.slice(0, bh), hole[bh]!];
    outer = [...outer.slice(0, bo + 1), ...h, outer[bo]!, ...outer.slice(bo + 1)];
  }
  return outer.flatMap((p) => [p[0], p[1]]);
}

const round2 = (v: number) => Math.round(v * 100) / 100;

function boxesOverlap(a: Coverage, b: Coverage): boolean {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

/** Draws one image. `rng` fully determines it. */
export function synthImage(rng: Rng, size: number, difficulty: SynthDifficulty = 'hard'): SynthImage {
  const P = PROFILES[difficulty];
  const W = Math.round(rng.uniform(0.75, 1) * size);
  const H = Math.round(rng.uniform(0.75, 1) * size);
  const minSide = Math.min(W, H);

  // Background: value noise between two colours, a few strokes.
  const t = new Float32Array(W * H);
  const octaves = [Math.max(4, size / 4), Math.max(3, size / 10), Math.max(2, size / 28)];
  const weights = [0.55, 0.3, 0.15];
  octaves.forEach((cell, i) => valueNoise(rng, W, H, cell, t, weights[i]!));
  const c1 = P.hueGroups ? greyish(rng) : randomColor(rng);
  const c2: [number, number, number] = rng.bool(0.3) ? [c1[0] * rng.uniform(0.6, 1.2), c1[1] * rng.uniform(0.6, 1.2), c1[2] * rng.uniform(0.6, 1.2)] : P.hueGroups ? greyish(rng) : randomColor(rng);
  const img = new Float32Array(W * H * 3);
  const contrast = rng.uniform(P.contrast[0], P.contrast[1]);
  for (let p = 0; p < W * H; p++) {
    const m = Math.min(1, Math.max(0, 0.5 + (t[p]! - 0.5) * contrast));
    img[3 * p] = c1[0] * (1 - m) + c2[0]! * m;
    img[3 * p + 1] = c1[1] * (1 - m) + c2[1]! * m;
    img[3 * p + 2] = c1[2] * (1 - m) + c2[2]! * m;
  }
  const strokes = rng.int(P.strokes);
  for (let s = 0; s < strokes; s++) {
    const rings = strokeRings(rng, rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0.2, 0.8) * size);
    const paint = plainPaint(rng, rings);
    if (P.hueGroups) paint.rgb = greyish(rng);
    paintLayer(img, W, { rings, cov: rasterize(rings, W, H), kind: 'distractor', category: -1, group: -1, paint, full: 0 });
  }

  // Layers: objects, distractor blobs, crowd clusters, in random z-order.
  // Square root of the target area: small (< 32 px), medium (32-96 px), large (> 96 px), like
  // COCO's area ranges; the extent L of a shape follows from its fill factor.
  const maxSide = Math.min(170, 0.85 * minSide);
  const objectSqrtArea = (): number => {
    const u = rng.next();
    if (u < P.small || maxSide <= 40) return Math.exp(rng.uniform(Math.log(P.minSqrtArea), Math.log(32)));
    if (u < P.small + 0.3 || maxSide <= 110) return Math.exp(rng.uniform(Math.log(32), Math.log(Math.min(96, maxSide))));
    return rng.uniform(110, maxSide);
  };
  const extent = (sqrtArea: number, fill: number) => Math.min(1.1 * minSide, sqrtArea / Math.sqrt(fill));

  // Sizes are drawn first; bigger items tend to go further back (z-order by jittered size) so
  // that large objects are not rejected for hiding the small ones.
  type Kind = { kind: 'object'; cat: number } | { kind: 'distractor' } | { kind: 'crowd'; group: number };
  type Item = Kind & { L: number; z: number };
  const items: Item[] = [];
  const nObj = P.minObjects + rng.int(P.extraObjects);
  const nDis = P.minDistractors + rng.int(P.extraDistractors);
  const push = (it: Kind, L: number) => items.push({ ...it, L, z: L * rng.uniform(0.4, 1.6) });
  for (let i = 0; i < nObj; i++) {
    const cat = rng.int(SYNTH_CATEGORIES.length);
    push({ kind: 'object', cat }, extent(objectSqrtArea(), FILL[cat]!));
  }
  for (let i = 0; i < nDis; i++) push({ kind: 'distractor' }, extent(objectSqrtArea(), 0.75));
  const nCrowd = rng.bool(P.crowd) ? 1 : 0;
  for (let g = 0; g < nCrowd; g++) push({ kind: 'crowd', group: g }, rng.uniform(0.3, 0.6) * minSide);
  items.sort((a, b) => b.z - a.z);

  const layers: Layer[] = [];
  const label = new Int16Array(W * H).fill(-1);
  const visible: number[] = [];
  const crowdCats: number[] = [];

  const tryPlace = (kind: Layer['kind'], category: number, group: number, propose: () => number[][], minPixels: number): boolean => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const rings = propose();
      const cov = rasterize(rings, W, H);
      const w = cov.x1 - cov.x0;
      const take = new Map<number, number>();
      let full = 0;
      for (let y = cov.y0; y < cov.y1; y++) {
        for (let x = cov.x0; x < cov.x1; x++) {
          if (cov.data[(y - cov.y0) * w + (x - cov.x0)]! < 0.5) continue;
          full++;
          const l = label[y * W + x]!;
          if (l >= 0) take.set(l, (take.get(l) ?? 0) + 1);
        }
      }
      if (full < minPixels) continue;
      if (kind === 'object') {
        // at least 60% of the shape inside the image
        const a = shoelace(rings[0]!) - (rings[1] ? shoelace(rings[1]) : 0);
        if (full < P.inside * a) continue;
      }
      let ok = true;
      for (const [l, n] of take) {
        const other = layers[l]!;
        if (other.kind === 'object' && visible[l]! - n < P.visible * other.full) ok = false;
        if (other.kind === 'crowd' && other.group !== group && visible[l]! - n < 0.3 * other.full) ok = false;
      }
      if (!ok) continue;
      const idx = layers.length;
      for (const [l, n] of take) visible[l]! -= n;
      for (let y = cov.y0; y < cov.y1; y++) {
        for (let x = cov.x0; x < cov.x1; x++) if (cov.data[(y - cov.y0) * w + (x - cov.x0)]! >= 0.5) label[y * W + x] = idx;
      }
      const paint = plainPaint(rng, rings);
      if (P.hueGroups) paint.rgb = kind === 'distractor' ? greyish(rng) : groupColor(rng, category);
      // camouflage: some shapes take a colour close to the background's
      if (kind !== 'distractor' && rng.bool(P.camouflage)) paint.rgb = (rng.bool() ? c1 : c2).map((v) => Math.min(255, Math.max(0, v + rng.uniform(-45, 45)))) as [number, number, number];
      layers.push({ rings, cov, kind, category, group, paint, full });
      visible.push(full);
      return true;
    }
    return false;
  };


  for (const item of items) {
    if (item.kind === 'object') {
      const cat = item.cat;
      let L = item.L / 0.9;
      tryPlace('object', cat, -1, () => {
        L *= 0.9; // shrink on each retry
        // centres allow up to ~40% of the shape outside the image
        const m = Math.min(0.3 * L, 0.5 * minSide);
        return shapeRings(cat, rng, rng.uniform(m - 0.2 * L, W - m + 0.2 * L), rng.uniform(m - 0.2 * L, H - m + 0.2 * L), L);
      }, 12);
    } else if (item.kind === 'distractor') {
      let L = item.L / 0.9;
      tryPlace('distractor', -1, -1, () => {
        L *= 0.9;
        return blobRings(rng, rng.uniform(0, W), rng.uniform(0, H), L);
      }, 4);
    } else {
      const cat = rng.int(SYNTH_CATEGORIES.length);
      crowdCats[item.group] = cat;
      const R = item.L / 2;
      const gx = rng.uniform(R, W - R);
      const gy = rng.uniform(R, H - R);
      const members = 6 + rng.int(10);
      for (let m = 0; m < members; m++) {
        tryPlace('crowd', cat, item.group, () => shapeRings(cat, rng, gx + rng.uniform(-R, R), gy + rng.uniform(-R, R), rng.uniform(4, 9)), 3);
      }
    }
  }

  for (const layer of layers) paintLayer(img, W, layer);

  // Pixel noise, then quantize.
  // Triangular noise from one xorshift32 draw per value (sum of two 16-bit uniforms).
  const sigma = rng.uniform(P.noise[0], P.noise[1]);
  const amp = (sigma * 2.45) / 65536;
  let xs = rng.nextU32() | 1;
  const rgb = new Uint8Array(W * H * 3);
  for (let i = 0; i < rgb.length; i++) {
    xs ^= xs << 13;
    xs ^= xs >>> 17;
    xs ^= xs << 5;
    const v = img[i]! + amp * ((xs & 0xffff) + ((xs >>> 16) & 0xffff) - 65535);
    rgb[i] = v < 0 ? 0 : v > 255 ? 255 : (v + 0.5) | 0;
  }

  // Annotations.
  const annotations: SynthAnnotation[] = [];
  const frame: Polygon = [[[0, 0], [W, 0], [W, H], [0, H]]];
  layers.forEach((layer, i) => {
    if (layer.kind !== 'object') return;
    const above = layers.slice(i + 1).filter((o) => boxesOverlap(o.cov, layer.cov)).map((o) => toGeom(o.rings));
    let vis: MultiPolygon = polygonClipping.intersection(toGeom(layer.rings), frame);
    if (above.length > 0 && vis.length > 0) vis = polygonClipping.difference(vis, ...above);
    const polys = vis.map(keyhole).map((r) => r.map(round2)).filter((r) => r.length >= 6 && shoelace(r) >= 0.5);
    if (polys.length === 0) return;
    const [x0, y0, x1, y1] = ringsBounds(polys);
    const area = polygonsArea(polys, H, W);
    if (area <= 0) return;
    annotations.push({ category_id: layer.category + 1, segmentation: polys, bbox: [round2(x0), round2(y0), round2(x1 - x0), round2(y1 - y0)], area, iscrowd: 0 });
  });
  for (let g = 0; g < nCrowd; g++) {
    // Visible pixels of the group's members, as a column-major uncompressed RLE.
    const mine = new Uint8Array(layers.length);
    layers.forEach((l, i) => { if (l.kind === 'crowd' && l.group === g) mine[i] = 1; });
    const counts: number[] = [];
    let cur = 0;
    let run = 0;
    let area = 0;
    let x0 = W, y0 = H, x1 = -1, y1 = -1;
    for (let x = 0; x < W; x++) {
      for (let y = 0; y < H; y++) {
        const l = label[y * W + x]!;
        const v = l >= 0 && mine[l] ? 1 : 0;
        if (v !== cur) { counts.push(run); run = 0; cur = v; }
        run++;
        if (v) { area++; if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; }
      }
    }
    counts.push(run);
    if (area === 0) continue;
    annotations.push({ category_id: crowdCats[g]! + 1, segmentation: { counts, size: [H, W] }, bbox: [x0, y0, x1 - x0 + 1, y1 - y0 + 1], area, iscrowd: 1 });
  }
  return { width: W, height: H, rgb, annotations };
}

function plainPaint(rng: Rng, rings: number[][]): Paint {
  const [x0, y0, x1, y1] = ringsBounds(rings);
  const a = rng.uniform(0, TAU);
  const b = rng.uniform(0, TAU);
  return {
    rgb: randomColor(rng),
    cx: (x0 + x1) / 2,
    cy: (y0 + y1) / 2,
    r: Math.max(1, (x1 - x0 + y1 - y0) / 4),
    dx: Math.cos(a),
    dy: Math.sin(a),
    shade: rng.uniform(0, 0.35),
    stripes: rng.bool(0.25) ? rng.uniform(0.4, 1.2) : 0,
    sx: Math.cos(b),
    sy: Math.sin(b),
  };
}

export interface SynthSummary {
  out: string;
  splits: { name: string; images: number; annotations: number; crowd: number; small: number; medium: number; large: number; annotationFile: string; imageDir: string }[];
}

/** Writes the demo dataset: OUT/{train,val}/*.png, OUT/instances_{train,val}.json. */
export async function writeSynthDataset(opts: SynthOptions): Promise<SynthSummary> {
  const nTrain = opts.images ?? 400;
  const nVal = opts.valImages ?? Math.max(1, Math.round(nTrain / 4));
  const size = opts.size ?? 224;
  const seed = opts.seed ?? 0;
  const difficulty = opts.difficulty ?? 'hard';
  if (!(difficulty in PROFILES)) throw new MtpdError('ERR_MTPD_ARGUMENT', `synth: difficulty must be one of ${Object.keys(PROFILES).join(', ')}, got ${String(difficulty)}`);
  const workers = opts.workers ?? Math.min(4, availableParallelism());
  for (const [k, v, lo] of [['images', nTrain, 1], ['valImages', nVal, 0], ['size', size, 32]] as const) {
    if (!Number.isInteger(v) || v < lo) throw new MtpdError('ERR_MTPD_ARGUMENT', `synth: ${k} must be an integer >= ${lo}, got ${v}`);
  }
  if (size > 4096) throw new MtpdError('ERR_MTPD_ARGUMENT', `synth: size must be at most 4096, got ${size}`);
  if (!Number.isInteger(seed) || seed < 0) throw new MtpdError('ERR_MTPD_ARGUMENT', `synth: seed must be a non-negative integer, got ${seed}`);
  if (!Number.isInteger(workers) || workers < 0) throw new MtpdError('ERR_MTPD_ARGUMENT', `synth: workers must be a non-negative integer, got ${workers}`);
  const total = nTrain + nVal;
  const pool = workers > 0 ? new WorkerPool<SynthFileRequest, SynthFileResult>(siblingUrl(import.meta.url, 'synth_worker'), workers) : null;
  let done = 0;
  const summary: SynthSummary = { out: opts.out, splits: [] };
  try {
    for (const [splitIdx, name, n] of [[0, 'train', nTrain], [1, 'val', nVal]] as const) {
      if (n === 0) continue;
      const imageDir = path.join(opts.out, name);
      await mkdir(imageDir, { recursive: true });
      const annotationFile = path.join(opts.out, `instances_${name}.json`);
      const stats = { name, images: n, annotations: 0, crowd: 0, small: 0, medium: 0, large: 0, annotationFile, imageDir };
      const results: SynthFileResult[] = new Array(n);
      let next = 0;
      const lane = async () => {
        for (let i = next++; i < n; i = next++) {
          const req: SynthFileRequest = { seed, split: splitIdx, index: i, size, difficulty, imageDir };
          results[i] = pool ? await pool.run(req) : await renderSynthFile(req);
          done++;
          opts.onProgress?.(done, total);
        }
      };
      // two requests in flight per worker keep every worker busy
      await Promise.all(Array.from({ length: Math.max(1, 2 * workers) }, lane));
      // Stream the JSON out in file order (annotation ids follow image order).
      const fh = await open(annotationFile, 'w');
      try {
        const info = { description: 'mtpd synthetic shapes', version: '1', year: 2026, contributor: 'mtpd data synth', seed, size, ...(difficulty === 'hard' ? {} : { difficulty }), split: name };
        const categories = SYNTH_CATEGORIES.map((c, i) => ({ id: i + 1, name: c, supercategory: 'shape' }));
        let buf = `{"info": ${JSON.stringify(info)},\n"licenses": [],\n"categories": ${JSON.stringify(categories)},\n"images": [\n`;
        const put = async (text: string) => {
          buf += text;
          if (buf.length > 1 << 20) {
            await fh.write(buf);
            buf = '';
          }
        };
        for (let i = 0; i < n; i++) await put(`${i ? ',\n' : ''}${JSON.stringify(results[i]!.image)}`);
        await put('],\n"annotations": [\n');
        let annId = 1;
        for (const r of results) {
          for (const a of r.annotations) {
            stats.annotations++;
            if (a.iscrowd) stats.crowd++;
            else if (a.area < 32 * 32) stats.small++;
            else if (a.area < 96 * 96) stats.medium++;
            else stats.large++;
            await put(`${annId > 1 ? ',\n' : ''}${JSON.stringify({ id: annId++, image_id: r.image.id, ...a })}`);
          }
        }
        await put(']}\n');
        await fh.write(buf);
      } finally {
        await fh.close();
      }
      summary.splits.push(stats);
    }
  } finally {
    await pool?.close();
  }
  return summary;
}

export interface SynthFileRequest {
  seed: number;
  split: number;
  index: number;
  size: number;
  difficulty?: SynthDifficulty;
  imageDir: string;
}

export interface SynthFileResult {
  image: { id: number; file_name: string; width: number; height: number };
  annotations: SynthAnnotation[];
}

/** Draws image `index` of `split` and writes its PNG (the unit of work of the worker threads). */
export async function renderSynthFile(req: SynthFileRequest): Promise<SynthFileResult> {
  const im = synthImage(deriveRng(req.seed, req.split, req.index), req.size, req.difficulty ?? 'hard');
  const id = req.index + 1;
  const fileName = `${String(id).padStart(12, '0')}.png`;
  await sharp(im.rgb, { raw: { width: im.width, height: im.height, channels: 3 } }).png({ compressionLevel: 3 }).toFile(path.join(req.imageDir, fileName));
  return { image: { id, file_name: fileName, width: im.width, height: im.height }, annotations: im.annotations };
}

