/**
 * The COCO mask API (pycocotools `mask` / `maskApi.c`), bit-for-bit: run-length encoding of binary
 * masks, the compressed RLE string format, polygon and box rasterisation, area, bounding box, IoU
 * with crowd semantics, and merge. Pure TypeScript over typed arrays; no native code.
 *
 * Stable exported API (used by src/eval and src/data):
 *
 *   interface Rle { h; w; counts: Uint32Array }          decoded RLE (runs over the COLUMN-MAJOR
 *                                                        pixel order, first run is zeros), as maskApi's RLE
 *   interface CompressedRle   { size: [h, w]; counts: string }    what COCO JSON stores ("counts" string)
 *   interface UncompressedRle { size: [h, w]; counts: number[] }  COCO JSON iscrowd RLE
 *   type Polygon = number[]                              [x0, y0, x1, y1, ...]
 *   type Segmentation = Polygon[] | CompressedRle | UncompressedRle
 *
 *   encode(mask, h, w)            row-major HxW mask (nonzero = 1)   -> Rle          (mask.encode)
 *   decode(rle)                   Rle -> row-major HxW Uint8Array of 0/1            (mask.decode)
 *   rleToString(rle) / rleFromString(s, h, w)   counts <-> compressed string        (rleToString/rleFrString)
 *   rleDecodeStringInto(s, out, off)            decode into a caller's buffer, returns the count
 *   toCompressed(rle) / fromCompressed(obj)     Rle <-> {size, counts: string}
 *   frPoly(xy, h, w)              one polygon -> Rle, rasterised exactly as rleFrPoly
 *   frBbox(box, h, w)             [x, y, w, h] -> Rle (as rleFrBbox)
 *   frUncompressed(obj)           {size, counts: number[]} -> Rle (its own size, as frUncompressedRLE)
 *   frPyObjects(obj, h, w)        pycocotools' dispatch: list of polygons / boxes / uncompressed RLEs
 *                                 -> Rle[]; one polygon / box / uncompressed RLE -> Rle
 *   annToRle(segm, h, w)          COCO.annToRLE: polygons (merged), uncompressed or compressed RLE -> Rle
 *   area(rle)                     pixel count (rleArea)
 *   toBbox(rle)                   [x, y, w, h] tight box, maskApi's rleToBbox (Float64Array(4))
 *   toBboxAt(counts, off, len, h, w, out, o)   the same over pooled counts
 *   merge(rles, intersect=false)  union (or intersection) of same-size RLEs (rleMerge)
 *   iou(dt, gt, iscrowd)          Float64Array, dt-major: out[d * gt.length + g] (rleIou; -1 where
 *                                 sizes differ and the boxes overlap; crowd gt divides by dt area)
 *   bboxIou(dt, gt, iscrowd)      xywh boxes as flat Float64Array(4m) / (4n), same layout (bbIou)
 *   rleInterUnion(a, b) / rleInterUnionAt(...)  [intersection, union] pixel counts (pooled variant)
 *   validateRle(rle, what)        throws MtpdError naming `what` when counts do not sum to h*w
 *
 * Known deliberate differences from pycocotools, only where it would crash or read garbage:
 *   - annToRle treats a polygon list whose first polygon has exactly 4 numbers as polygons
 *     (pycocotools raises a TypeError there); frPyObjects keeps pycocotools' "4 numbers = box" rule.
 *   - encode treats any nonzero byte as 1 (pycocotools starts a new run on any value change).
 *   - malformed compressed strings (characters outside '0'..'o') raise an MtpdError.
 */
import { MtpdError } from '../errors.js';

export interface Rle {
  h: number;
  w: number;
  counts: Uint32Array;
}
export interface CompressedRle {
  size: [number, number];
  counts: string;
}
export interface UncompressedRle {
  size: [number, number];
  counts: number[];
}
export type Polygon = number[];
export type Segmentation = Polygon[] | CompressedRle | UncompressedRle;

function fail(message: string): never {
  throw new MtpdError('ERR_MTPD_ARGUMENT', message);
}

/** Row-major HxW mask (any nonzero byte is foreground) -> Rle over column-major order. */
export function encode(mask: ArrayLike<number>, h: number, w: number): Rle {
  if (mask.length !== h * w) fail(`encode: mask has ${mask.length} elements, expected h*w = ${h * w}`);
  const runs: number[] = [];
  let p = 0;
  let c = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] ? 1 : 0;
      if (v !== p) {
        runs.push(c);
        c = 0;
        p = v;
      }
      c++;
    }
  }
  runs.push(c);
  return { h, w, counts: Uint32Array.from(runs) };
}

/** Rle -> row-major HxW Uint8Array of 0/1. */
export function decode(rle: Rle): Uint8Array {
  validateRle(rle, 'decode: rle');
  const { h, w, counts } = rle;
  const out = new Uint8Array(h * w);
  let idx = 0; // column-major pixel index
  let v = 0;
  for (let j = 0; j < counts.length; j++) {
    const n = counts[j]!;
    if (v) {
      for (let k = 0; k < n; k++) {
        const i = idx + k;
        const x = Math.floor(i / h);
        out[(i - x * h) * w + x] = 1;
      }
    }
    idx += n;
    v ^= 1;
  }
  return out;
}

/** Throws when the counts of `rle` do not cover exactly h*w pixels. */
export function validateRle(rle: Rle, what: string): void {
  if (!Number.isInteger(rle.h) || !Number.isInteger(rle.w) || rle.h < 0 || rle.w < 0) {
    fail(`${what}: size must be two non-negative integers, got [${rle.h}, ${rle.w}]`);
  }
  let s = 0;
  for (let j = 0; j < rle.counts.length; j++) s += rle.counts[j]!;
  if (s !== rle.h * rle.w) fail(`${what}: RLE counts sum to ${s}, expected h*w = ${rle.h * rle.w}`);
}

/** pycocotools' compressed string: LEB128-like, 5 bits per char in '0'..'o', deltas from cnts[i-2]. */
export function rleToString(rle: Rle): string {
  const cnts = rle.counts;
  const out: number[] = [];
  for (let i = 0; i < cnts.length; i++) {
    let x = cnts[i]!;
    if (i > 2) x -= cnts[i - 2]!;
    let more = true;
    while (more) {
      let c = x & 0x1f; // low 5 bits (two's complement for negatives)
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out.push(c + 48);
    }
  }
  // chunked to stay under the argument-count limit of fromCharCode
  let s = '';
  for (let i = 0; i < out.length; i += 8192) s += String.fromCharCode(...out.slice(i, i + 8192));
  return s;
}

/** Inverse of rleToString (rleFrString). */
export function rleFromString(s: string, h: number, w: number): Rle {
  const cnts = new Uint32Array(s.length);
  const m = rleDecodeStringInto(s, cnts, 0);
  return { h, w, counts: cnts.slice(0, m) };
}

/**
 * rleFrString into out[off ...] (out needs room for s.length counts); returns the number of
 * counts. Integer fast path for numbers of up to 6 characters (30 bits), exact doubles beyond.
 */
export function rleDecodeStringInto(s: string, out: Uint32Array, off: number): number {
  const n = s.length;
  let m = 0;
  let p = 0;
  while (p < n) {
    let x = 0;
    let k = 0;
    let c = 0;
    do {
      if (p >= n) fail(`compressed RLE string ends inside a number at character ${p}`);
      const code = s.charCodeAt(p);
      if (code < 48 || code > 111) {
        fail(`compressed RLE string has invalid character ${JSON.stringify(s[p])} at ${p}`);
      }
      c = code - 48;
      if (k < 6) x |= (c & 0x1f) << (5 * k);
      else x += (c & 0x1f) * 2 ** (5 * k);
      p++;
      k++;
    } while (c & 0x20);
    if (c & 0x10) x = k <= 6 ? x | (-1 << (5 * k)) : x - 2 ** (5 * k); // sign-extend
    if (m > 2) x += out[off + m - 2]!;
    out[off + m++] = x >>> 0; // (uint) cast, as maskApi
  }
  return m;
}

export function toCompressed(rle: Rle): CompressedRle {
  return { size: [rle.h, rle.w], counts: rleToString(rle) };
}

export function fromCompressed(obj: CompressedRle): Rle {
  return rleFromString(obj.counts, obj.size[0], obj.size[1]);
}

/** {size, counts: number[]} -> Rle, with the object's own size (frUncompressedRLE). */
export function frUncompressed(obj: UncompressedRle): Rle {
  const counts = new Uint32Array(obj.counts.length);
  for (let j = 0; j < counts.length; j++) counts[j] = obj.counts[j]! >>> 0;
  return { h: obj.size[0], w: obj.size[1], counts };
}

/** Rasterises one polygon [x0,y0,x1,y1,...] exactly as maskApi's rleFrPoly. */
export function frPoly(xy: ArrayLike<number>, h: number, w: number): Rle {
  const k = Math.floor(xy.length / 2);
  const scale = 5;
  // upsample and get discrete points densely along the entire boundary
  const x = new Int32Array(k + 1);
  const y = new Int32Array(k + 1);
  // maskApi's upsampled points are C ints: a coordinate past them would wrap (a wrong mask) or
  // walk an edge of billions of points.
  for (let j = 0; j < 2 * k; j++) {
    const v = Math.trunc(scale * xy[j]! + 0.5);
    if (!(Math.abs(v) <= 0x7fffffff)) fail(`frPoly: polygon coordinate ${xy[j]} at index ${j} is not a finite number within +-${Math.floor(0x7fffffff / scale)}`);
  }
  for (let j = 0; j < k; j++) x[j] = Math.trunc(scale * xy[j * 2]! + 0.5);
  x[k] = x[0]!;
  for (let j = 0; j < k; j++) y[j] = Math.trunc(scale * xy[j * 2 + 1]! + 0.5);
  y[k] = y[0]!;
  let m = 0;
  for (let j = 0; j < k; j++) m += Math.max(Math.abs(x[j]! - x[j + 1]!), Math.abs(y[j]! - y[j + 1]!)) + 1;
  const u = new Int32Array(m);
  const v = new Int32Array(m);
  m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j]!;
    let xe = x[j + 1]!;
    let ys = y[j]!;
    let ye = y[j + 1]!;
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      let t = xs;
      xs = xe;
      xe = t;
      t = ys;
      ys = ye;
      ye = t;
    }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = Math.trunc(ys + s * t + 0.5);
        m++;
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = Math.trunc(xs + s * t + 0.5);
        m++;
      }
    }
  }
  // get points along the y-boundary and downsample
  const kk = m;
  const bx = new Int32Array(kk);
  const by = new Int32Array(kk);
  m = 0;
  for (let j = 1; j < kk; j++) {
    if (u[j] !== u[j - 1]) {
      let xd = u[j]! < u[j - 1]! ? u[j]! : u[j]! - 1;
      xd = (xd + 0.5) / scale - 0.5;
      if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
      let yd = v[j]! < v[j - 1]! ? v[j]! : v[j - 1]!;
      yd = (yd + 0.5) / scale - 0.5;
      if (yd < 0) yd = 0;
      else if (yd > h) yd = h;
      yd = Math.ceil(yd);
      bx[m] = xd;
      by[m] = yd;
      m++;
    }
  }
  // compute the rle encoding given the y-boundary points
  let n = m;
  const a = new Uint32Array(n + 1);
  for (let j = 0; j < n; j++) a[j] = (bx[j]! * h + by[j]!) >>> 0;
  a[n++] = (h * w) >>> 0;
  a.sort(); // typed-array sort is numeric ascending
  let p = 0;
  for (let j = 0; j < n; j++) {
    const t = a[j]!;
    a[j] = t - p;
    p = t;
  }
  const b = new Uint32Array(n);
  let j = 0;
  m = 0;
  b[m++] = a[j++]!;
  while (j < n) {
    if (a[j]! > 0) b[m++] = a[j++]!;
    else {
      j++;
      if (j < n) b[m - 1] = b[m - 1]! + a[j++]!;
    }
  }
  return { h, w, counts: b.slice(0, m) };
}

/** [x, y, w, h] box -> Rle (rleFrBbox: the box's corners as a polygon). */
export function frBbox(bb: ArrayLike<number>, h: number, w: number): Rle {
  const xs = bb[0]!;
  const xe = xs + bb[2]!;
  const ys = bb[1]!;
  const ye = ys + bb[3]!;
  return frPoly([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

function isUncompressed(o: unknown): o is UncompressedRle {
  return typeof o === 'object' && o !== null && 'counts' in o && 'size' in o;
}

/**
 * pycocotools' frPyObjects dispatch: a list whose first element has 4 numbers is a list of boxes,
 * more than 4 a list of polygons, dicts a list of uncompressed RLEs (each with its own size);
 * a flat list of 4 numbers is one box, of more one polygon, a dict one uncompressed RLE.
 */
export function frPyObjects(obj: unknown, h: number, w: number): Rle | Rle[] {
  if (Array.isArray(obj) && obj.length > 0) {
    const first: unknown = obj[0];
    if (Array.isArray(first)) {
      if (first.length === 4) return (obj as number[][]).map((b) => frBbox(b, h, w));
      if (first.length > 4) return (obj as number[][]).map((p) => frPoly(p, h, w));
    } else if (isUncompressed(first)) {
      return (obj as UncompressedRle[]).map(frUncompressed);
    } else if (obj.length === 4) {
      return frBbox(obj as number[], h, w);
    } else if (obj.length > 4) {
      return frPoly(obj as number[], h, w);
    }
  } else if (isUncompressed(obj) && Array.isArray(obj.counts)) {
    return frUncompressed(obj);
  }
  return fail('frPyObjects: input type is not supported');
}

/** COCO.annToRLE: polygons (all parts merged), uncompressed RLE, or compressed RLE -> one Rle. */
export function annToRle(segm: Segmentation, h: number, w: number): Rle {
  if (Array.isArray(segm)) return merge(segm.map((p) => frPoly(p, h, w)));
  if (typeof segm.counts === 'string') return rleFromString(segm.counts, segm.size[0], segm.size[1]);
  return frUncompressed(segm as UncompressedRle);
}

/** Number of foreground pixels (rleArea). */
export function area(rle: Rle): number {
  const c = rle.counts;
  let a = 0;
  for (let j = 1; j < c.length; j += 2) a += c[j]!;
  return a >>> 0;
}

/** Tight [x, y, w, h] box of the foreground, exactly as maskApi's rleToBbox. */
export function toBbox(rle: Rle, out: Float64Array = new Float64Array(4), offset = 0): Float64Array {
  toBboxAt(rle.counts, 0, rle.counts.length, rle.h, rle.w, out, offset);
  return out;
}

/** rleToBbox of counts[off .. off+len) into out[o .. o+4) (pooled variant, no allocation). */
export function toBboxAt(counts: Uint32Array, off: number, len: number, hh: number, ww: number, out: Float64Array, o: number): void {
  const h = hh >>> 0;
  const w = ww >>> 0;
  const m = Math.floor(len / 2) * 2;
  let xs = w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = 0;
  let xp = 0;
  if (m === 0) {
    out[o] = out[o + 1] = out[o + 2] = out[o + 3] = 0;
    return;
  }
  for (let j = 0; j < m; j++) {
    cc = (cc + counts[off + j]!) >>> 0;
    const t = (cc - (j & 1)) >>> 0;
    const y = t % h;
    const x = (t - y) / h;
    if ((j & 1) === 0) xp = x;
    else if (xp < x) {
      ys = 0;
      ye = h - 1;
    }
    if (x < xs) xs = x;
    if (x > xe) xe = x;
    if (y < ys) ys = y;
    if (y > ye) ye = y;
  }
  out[o] = xs;
  out[o + 2] = ((xe - xs) >>> 0) + 1;
  out[o + 1] = ys;
  out[o + 3] = ((ye - ys) >>> 0) + 1;
}

/** Union (or intersection) of RLEs of one size (rleMerge); a size mismatch gives an empty 0x0 Rle. */
export function merge(rles: readonly Rle[], intersect = false): Rle {
  const n = rles.length;
  if (n === 0) return { h: 0, w: 0, counts: new Uint32Array(0) };
  const r0 = rles[0]!;
  let h = r0.h;
  let w = r0.w;
  if (n === 1) return { h, w, counts: r0.counts.slice() };
  let cnts: Uint32Array = r0.counts.slice();
  let m = cnts.length;
  for (let i = 1; i < n; i++) {
    const B = rles[i]!;
    if (B.h !== h || B.w !== w) {
      h = w = m = 0;
      break;
    }
    const A = cnts.subarray(0, m);
    const out = new Uint32Array(A.length + B.counts.length + 1);
    let ca = A[0] ?? 0;
    let cb = B.counts[0] ?? 0;
    let v = 0;
    let va = 0;
    let vb = 0;
    m = 0;
    let a = 1;
    let b = 1;
    let cc = 0;
    let ct = 1;
    while (ct > 0) {
      const c = Math.min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && a < A.length) {
        ca = A[a++]!;
        va ^= 1;
      }
      ct += ca;
      cb -= c;
      if (!cb && b < B.counts.length) {
        cb = B.counts[b++]!;
        vb ^= 1;
      }
      ct += cb;
      const vp = v;
      v = intersect ? va & vb : va | vb;
      if (v !== vp || ct === 0) {
        out[m++] = cc;
        cc = 0;
      }
    }
    cnts = out;
  }
  return { h, w, counts: cnts.slice(0, m) };
}

/**
 * IoU of xywh boxes (bbIou): dt as Float64Array(4m), gt as Float64Array(4n); out[d*n + g].
 * A crowd gt divides the intersection by the detection's area.
 */
export function bboxIou(
  dt: ArrayLike<number>,
  gt: ArrayLike<number>,
  iscrowd: ArrayLike<number> | null,
  out?: Float64Array,
): Float64Array {
  const m = dt.length >> 2;
  const n = gt.length >> 2;
  const o = out ?? new Float64Array(m * n);
  for (let g = 0; g < n; g++) {
    const gx = gt[g * 4]!;
    const gy = gt[g * 4 + 1]!;
    const gw = gt[g * 4 + 2]!;
    const gh = gt[g * 4 + 3]!;
    const ga = gw * gh;
    const crowd = iscrowd !== null && !!iscrowd[g];
    for (let d = 0; d < m; d++) {
      const dx = dt[d * 4]!;
      const dy = dt[d * 4 + 1]!;
      const dw = dt[d * 4 + 2]!;
      const dh = dt[d * 4 + 3]!;
      const da = dw * dh;
      o[d * n + g] = 0;
      const iw = Math.min(dw + dx, gw + gx) - Math.max(dx, gx);
      if (iw <= 0) continue;
      const ih = Math.min(dh + dy, gh + gy) - Math.max(dy, gy);
      if (ih <= 0) continue;
      const i = iw * ih;
      const u = crowd ? da : da + ga - i;
      o[d * n + g] = i / u;
    }
  }
  return o;
}

/** Intersection and union pixel counts of two same-size RLEs, as rleIou's inner loop. */
export function rleInterUnion(A: Uint32Array, B: Uint32Array): [number, number] {
  const out = new Float64Array(2);
  rleInterUnionAt(A, 0, A.length, B, 0, B.length, out);
  return [out[0]!, out[1]!];
}

/**
 * rleInterUnion over pooled counts: A[aOff .. aOff+ka) and B[bOff .. bOff+kb); writes
 * [intersection, union] into out (no allocation; used by the evaluator's hot loop).
 */
export function rleInterUnionAt(
  A: Uint32Array,
  aOff: number,
  ka: number,
  B: Uint32Array,
  bOff: number,
  kb: number,
  out: Float64Array,
): void {
  let ca = ka > 0 ? A[aOff]! : 0;
  let cb = kb > 0 ? B[bOff]! : 0;
  let va = 0;
  let vb = 0;
  let a = 1;
  let b = 1;
  let i = 0;
  let u = 0;
  let ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    if (va | vb) {
      u += c;
      if (va & vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (!ca && a < ka) {
      ca = A[aOff + a++]!;
      va ^= 1;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < kb) {
      cb = B[bOff + b++]!;
      vb ^= 1;
    }
    ct += cb;
  }
  out[0] = i;
  out[1] = u;
}

/**
 * Mask IoU (rleIou): out[d * gt.length + g]. Box overlap is checked first (no box overlap -> 0),
 * then different image sizes give -1; an empty intersection gives 0; a crowd gt divides the
 * intersection by the detection's area.
 */
export function iou(dt: readonly Rle[], gt: readonly Rle[], iscrowd: ArrayLike<number> | null): Float64Array {
  const m = dt.length;
  const n = gt.length;
  const db = new Float64Array(4 * m);
  const gb = new Float64Array(4 * n);
  for (let d = 0; d < m; d++) toBbox(dt[d]!, db, 4 * d);
  for (let g = 0; g < n; g++) toBbox(gt[g]!, gb, 4 * g);
  const o = bboxIou(db, gb, iscrowd);
  for (let g = 0; g < n; g++) {
    const G = gt[g]!;
    const crowd = iscrowd !== null && !!iscrowd[g];
    for (let d = 0; d < m; d++) {
      if (!(o[d * n + g]! > 0)) continue;
      const D = dt[d]!;
      if (D.h !== G.h || D.w !== G.w) {
        o[d * n + g] = -1;
        continue;
      }
      const [inter, union] = rleInterUnion(D.counts, G.counts);
      let uu = union;
      if (inter === 0) uu = 1;
      else if (crowd) uu = area(D);
      o[d * n + g] = inter / uu;
    }
  }
  return o;
}
