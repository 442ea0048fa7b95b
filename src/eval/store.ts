/**
 * Columnar stores for COCO ground truth and detections: typed arrays with one row per annotation,
 * RLE counts pooled in one Uint32Array. Parsing validates every field and names it in errors
 * (`instances.json: annotations[12].bbox must be 4 finite numbers`).
 *
 * Semantics follow pycocotools' COCO / COCO.loadRes / COCOeval._prepare:
 *  - a gt is ignored iff `iscrowd` (its `ignore` field is overwritten by pycocotools, so unused);
 *  - annotations of images or categories the file does not list are left out (counted);
 *  - gt area is the annotation's `area` field; gt masks come from COCO.annToRLE (image size);
 *  - results: if the FIRST detection has a non-empty `bbox`, every detection's area is
 *    bbox w*h and a missing segmentation is the box as a polygon; otherwise the area is the mask's
 *    pixel count and a missing bbox is the mask's tight box (loadRes' two branches);
 *  - detection ids are 1, 2, ... in the order added (loadRes), which fixes the order of score ties.
 */
import { MtpdError } from '../errors.js';
import { annToRle, frBbox, rleDecodeStringInto, toBboxAt, type Rle, type Segmentation } from '../coco/mask.js';
import type { IouType } from './params.js';

export interface CocoImage {
  id: number;
  height?: number;
  width?: number;
  [k: string]: unknown;
}
export interface CocoCategory {
  id: number;
  name?: string;
  [k: string]: unknown;
}
export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  bbox?: number[];
  area?: number;
  iscrowd?: number | boolean;
  segmentation?: Segmentation;
  [k: string]: unknown;
}
export interface CocoDataset {
  images: CocoImage[];
  categories: CocoCategory[];
  annotations: CocoAnnotation[];
  [k: string]: unknown;
}
/** One line of a COCO results file. */
export interface CocoDetection {
  image_id: number;
  category_id: number;
  score: number;
  bbox?: number[];
  segmentation?: Segmentation;
  [k: string]: unknown;
}

export function evalError(message: string): never {
  throw new MtpdError('ERR_MTPD_EVAL', message);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function finiteNumber(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) evalError(`${what} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function readBox(v: unknown, what: string, out: Float64Array, at: number): void {
  if (!Array.isArray(v) || v.length !== 4) evalError(`${what} must be [x, y, width, height], got ${JSON.stringify(v)}`);
  for (let j = 0; j < 4; j++) {
    const x = v[j] as unknown;
    if (typeof x !== 'number' || !Number.isFinite(x)) evalError(`${what} must be 4 finite numbers, got ${JSON.stringify(v)}`);
    out[at + j] = x;
  }
  // a negative width or height is taken as it is, as pycocotools does: such a box overlaps
  // nothing (maskApi's bbIou), its area w*h may be negative (then outside every area range, so an
  // unmatched detection is ignored, not a false positive), and rasterised it is the same polygon
}

/**
 * Converts and checks a COCO segmentation (polygons, uncompressed or compressed RLE) and appends
 * it to `pool`; returns its row. Compressed strings are decoded straight into the pool.
 */
export function pushSegmentation(v: unknown, what: string, h: number, w: number, pool: RlePool): number {
  if (Array.isArray(v)) {
    if (v.length === 0) evalError(`${what} is an empty polygon list`);
    for (const [j, p] of v.entries()) {
      if (!Array.isArray(p) || p.length < 4 || p.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
        evalError(`${what}[${j}] must be a polygon [x0, y0, x1, y1, ...] of finite numbers`);
      }
    }
    if (!(h > 0 && w > 0)) evalError(`${what} is a polygon but its image has no valid height/width`);
    let rle: Rle;
    try {
      rle = annToRle(v as number[][], h, w);
    } catch (e) {
      return evalError(`${what}: ${(e as Error).message}`);
    }
    return pool.push(rle, what);
  }
  if (!isObj(v)) return evalError(`${what} must be polygons or an RLE object, got ${JSON.stringify(v)?.slice(0, 80)}`);
  const size = v.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((x) => Number.isInteger(x) && (x as number) >= 0)) {
    evalError(`${what}.size must be [height, width], got ${JSON.stringify(size)}`);
  }
  const counts = v.counts;
  if (typeof counts === 'string') {
    try {
      return pool.pushString(counts, size[0] as number, size[1] as number, what);
    } catch (e) {
      if (e instanceof MtpdError && e.code === 'ERR_MTPD_EVAL') throw e;
      return evalError(`${what}.counts: ${(e as Error).message}`);
    }
  }
  if (Array.isArray(counts)) {
    if (!counts.every((x) => Number.isInteger(x) && (x as number) >= 0)) evalError(`${what}.counts must be non-negative integers`);
    return pool.push(annToRle({ size: size as [number, number], counts: counts as number[] }, h, w), what);
  }
  return evalError(`${what}.counts must be a string (compressed RLE) or an array (uncompressed RLE)`);
}

/** Growable pool of RLEs with their mask boxes (rleToBbox) and areas. */
export class RlePool {
  n = 0;
  counts = new Uint32Array(4096);
  used = 0;
  off = new Uint32Array(256);
  len = new Uint32Array(256);
  h = new Int32Array(256);
  w = new Int32Array(256);
  bb = new Float64Array(1024);
  area = new Float64Array(256);

  /** Appends an RLE; throws naming `what` when its counts do not cover h*w pixels. */
  push(r: Rle, what: string): number {
    this.reserve(r.counts.length);
    this.counts.set(r.counts, this.used);
    return this.finish(r.counts.length, r.h, r.w, what);
  }

  /** Appends a compressed RLE string, decoded in place. */
  pushString(s: string, h: number, w: number, what: string): number {
    this.reserve(s.length);
    const m = rleDecodeStringInto(s, this.counts, this.used);
    return this.finish(m, h, w, what);
  }

  private reserve(m: number): void {
    if (this.n === this.off.length) this.growRows(this.n * 2);
    if (this.used + m > this.counts.length) {
      const c = new Uint32Array(Math.max(this.counts.length * 2, this.used + m));
      c.set(this.counts.subarray(0, this.used));
      this.counts = c;
    }
  }

  private finish(m: number, h: number, w: number, what: string): number {
    const i = this.n;
    const c = this.counts;
    const off = this.used;
    let sum = 0;
    let area = 0;
    for (let j = 0; j < m; j++) {
      const v = c[off + j]!;
      sum += v;
      if (j & 1) area += v;
    }
    if (sum !== h * w) evalError(`${what}: RLE counts sum to ${sum}, expected h*w = ${h * w}`);
    this.off[i] = off;
    this.len[i] = m;
    this.used += m;
    this.h[i] = h;
    this.w[i] = w;
    toBboxAt(c, off, m, h, w, this.bb, 4 * i);
    this.area[i] = area >>> 0;
    this.n++;
    return i;
  }

  /** Forgets every row (keeps the buffers). */
  clear(): void {
    this.n = 0;
    this.used = 0;
  }

  private growRows(cap: number): void {
    const g = <T extends Uint32Array | Int32Array | Float64Array>(a: T, k: number): T => {
      const b = new (a.constructor as new (n: number) => T)(cap * k);
      b.set(a);
      return b;
    };
    this.off = g(this.off, 1);
    this.len = g(this.len, 1);
    this.h = g(this.h, 1);
    this.w = g(this.w, 1);
    this.area = g(this.area, 1);
    this.bb = g(this.bb, 4);
  }
}

/** Ground truth, columnar. Image and category ids are sorted ascending (COCOeval's params). */
export class GroundTruth {
  readonly imgIds: number[];
  readonly imgPos = new Map<number, number>();
  readonly imgH: Float64Array;
  readonly imgW: Float64Array;
  readonly catIds: number[];
  readonly catPos = new Map<number, number>();
  readonly catNames: string[];
  readonly n: number;
  readonly annId: Float64Array;
  readonly img: Int32Array;
  readonly cat: Int32Array;
  readonly area: Float64Array;
  readonly crowd: Uint8Array;
  readonly box: Float64Array;
  readonly masks: RlePool | null;

  /**
   * Annotations left out because `images` or `categories` does not list their image_id or
   * category_id, by that id: pycocotools reads only the annotations of listed images and
   * categories (COCOeval._prepare's getAnnIds), so they are counted, not kept.
   */
  readonly ignored = { images: new Map<number, number>(), categories: new Map<number, number>() };

  /**
   * `unlisted`: 'ignore' (default, as pycocotools) leaves out annotations of images or
   * categories the file does not list, counting them in `ignored`; 'error' refuses them.
   */
  constructor(data: unknown, iouType: IouType, source = 'ground truth', unlisted: 'ignore' | 'error' = 'ignore') {
    if (!isObj(data)) evalError(`${source}: expected a COCO object with images, categories and annotations`);
    const images = data.images;
    const categories = data.categories;
    const anns = data.annotations;
    if (!Array.isArray(images)) evalError(`${source}: "images" must be an array`);
    if (!Array.isArray(categories)) evalError(`${source}: "categories" must be an array`);
    if (!Array.isArray(anns)) evalError(`${source}: "annotations" must be an array`);

    const imgs: { id: number; h: number; w: number }[] = [];
    const seenImg = new Set<number>();
    for (const [i, im] of images.entries()) {
      if (!isObj(im)) evalError(`${source}: images[${i}] must be an object`);
      const id = finiteNumber(im.id, `${source}: images[${i}].id`);
      if (seenImg.has(id)) evalError(`${source}: images[${i}].id ${id} is a duplicate`);
      seenImg.add(id);
      imgs.push({ id, h: typeof im.height === 'number' ? im.height : NaN, w: typeof im.width === 'number' ? im.width : NaN });
    }
    imgs.sort((a, b) => a.id - b.id);
    this.imgIds = imgs.map((x) => x.id);
    this.imgH = Float64Array.from(imgs, (x) => x.h);
    this.imgW = Float64Array.from(imgs, (x) => x.w);
    imgs.forEach((x, i) => this.imgPos.set(x.id, i));

    const cats: { id: number; name: string }[] = [];
    for (const [i, c] of categories.entries()) {
      if (!isObj(c)) evalError(`${source}: categories[${i}] must be an object`);
      const id = finiteNumber(c.id, `${source}: categories[${i}].id`);
      if (cats.some((x) => x.id === id)) evalError(`${source}: categories[${i}].id ${id} is a duplicate`);
      cats.push({ id, name: typeof c.name === 'string' ? c.name : String(id) });
    }
    cats.sort((a, b) => a.id - b.id);
    this.catIds = cats.map((c) => c.id);
    this.catNames = cats.map((c) => c.name);
    cats.forEach((c, i) => this.catPos.set(c.id, i));

    // the annotations pycocotools evaluates: those of listed images and categories
    const keep: number[] = [];
    const seenAnn = new Set<number>();
    for (let i = 0; i < anns.length; i++) {
      const a = anns[i] as unknown;
      const at = `${source}: annotations[${i}]`;
      if (!isObj(a)) evalError(`${at} must be an object`);
      const id = finiteNumber(a.id, `${at}.id`);
      if (seenAnn.has(id)) evalError(`${at}.id ${id} is a duplicate annotation id`);
      seenAnn.add(id);
      const inImages = this.imgPos.has(a.image_id as number);
      const inCats = this.catPos.has(a.category_id as number);
      if (inImages && inCats) {
        keep.push(i);
        continue;
      }
      const [what, v, list] = inImages ? ['category_id', a.category_id, 'categories'] : ['image_id', a.image_id, 'images'];
      if (unlisted === 'error' || typeof v !== 'number' || !Number.isFinite(v)) evalError(`${at}.${what} ${JSON.stringify(v)} is not in ${list}`);
      const m = inImages ? this.ignored.categories : this.ignored.images;
      m.set(v, (m.get(v) ?? 0) + 1);
    }
    const n = keep.length;
    this.n = n;
    this.annId = new Float64Array(n);
    this.img = new Int32Array(n);
    this.cat = new Int32Array(n);
    this.area = new Float64Array(n);
    this.crowd = new Uint8Array(n);
    this.box = new Float64Array(4 * n);
    this.masks = iouType === 'segm' ? new RlePool() : null;
    for (let i = 0; i < n; i++) {
      const a = anns[keep[i]!] as Record<string, unknown>;
      const at = `${source}: annotations[${keep[i]}]`;
      this.annId[i] = a.id as number;
      const ip = this.imgPos.get(a.image_id as number)!;
      this.img[i] = ip;
      this.cat[i] = this.catPos.get(a.category_id as number)!;
      this.area[i] = finiteNumber(a.area, `${at}.area`);
      const c = a.iscrowd;
      if (c !== undefined && c !== 0 && c !== 1 && c !== true && c !== false) {
        evalError(`${at}.iscrowd must be 0 or 1, got ${JSON.stringify(c)}`);
      }
      this.crowd[i] = c ? 1 : 0;
      if (iouType === 'bbox') readBox(a.bbox, `${at}.bbox`, this.box, 4 * i);
      else {
        if (a.segmentation === undefined) evalError(`${at}.segmentation is missing (needed for --iou-type segm)`);
        pushSegmentation(a.segmentation, `${at}.segmentation`, this.imgH[ip]!, this.imgW[ip]!, this.masks!);
      }
    }
  }
}

/** Detections, columnar, in the order added (ids 1..n). */
export class Detections {
  n = 0;
  img = new Int32Array(1024);
  cat = new Int32Array(1024);
  score = new Float64Array(1024);
  area = new Float64Array(1024);
  box = new Float64Array(4096);
  readonly masks: RlePool | null;
  /** loadRes' branch, fixed by the first detection: area from the bbox, or from the mask. */
  areaFrom: 'bbox' | 'mask' | null = null;
  /**
   * Detections whose category the ground truth does not list, by category id: pycocotools
   * evaluates only the ground truth's categories (params.catIds), so they are counted, not kept.
   */
  readonly ignored = new Map<number, number>();
  private readonly scratch = new RlePool();

  /**
   * `unknownCategories`: 'ignore' (default, as pycocotools) counts detections of categories the
   * ground truth does not list in `ignored`; 'error' refuses them, naming the record.
   */
  constructor(
    readonly gt: GroundTruth,
    readonly iouType: IouType,
    readonly unknownCategories: 'ignore' | 'error' = 'ignore',
  ) {
    this.masks = iouType === 'segm' ? new RlePool() : null;
  }

  private ensure(extra: number): void {
    const need = this.n + extra;
    if (need <= this.img.length) return;
    const cap = Math.max(need, this.img.length * 2);
    const g = <T extends Int32Array | Float64Array>(a: T, k: number): T => {
      const b = new (a.constructor as new (n: number) => T)(cap * k);
      b.set(a);
      return b;
    };
    this.img = g(this.img, 1);
    this.cat = g(this.cat, 1);
    this.score = g(this.score, 1);
    this.area = g(this.area, 1);
    this.box = g(this.box, 4);
  }

  /** Adds COCO result records; `where` names them in errors (e.g. the results file). */
  add(batch: readonly unknown[], where: string): void {
    if (!Array.isArray(batch)) evalError(`${where}: detections must be an array of {image_id, category_id, score, bbox|segmentation}`);
    this.ensure(batch.length);
    const base = this.n;
    const areaFrom0 = this.areaFrom;
    const m0 = this.masks ? [this.masks.n, this.masks.used] : [0, 0];
    const ignored0 = new Map(this.ignored);
    try {
      this.addUnchecked(batch, where);
    } catch (e) {
      // a bad record leaves the store as it was before this batch
      this.n = base;
      this.areaFrom = areaFrom0;
      if (this.masks) [this.masks.n, this.masks.used] = m0 as [number, number];
      this.ignored.clear();
      for (const [k, v] of ignored0) this.ignored.set(k, v);
      throw e;
    }
  }

  private addUnchecked(batch: readonly unknown[], where: string): void {
    const gt = this.gt;
    const base = this.n;
    for (let i = 0; i < batch.length; i++) {
      const d = batch[i] as unknown;
      const at = `${where}[${base + i}]`;
      if (!isObj(d)) evalError(`${at} must be an object`);
      const ip = gt.imgPos.get(d.image_id as number);
      if (ip === undefined) evalError(`${at}.image_id ${JSON.stringify(d.image_id)} is not an image of the ground truth`);
      const cp = gt.catPos.get(d.category_id as number);
      if (cp === undefined && (this.unknownCategories === 'error' || !Number.isInteger(d.category_id))) {
        evalError(`${at}.category_id ${JSON.stringify(d.category_id)} is not a category of the ground truth`);
      }
      const score = finiteNumber(d.score, `${at}.score`);
      if (this.areaFrom === null) {
        // loadRes picks its branch from the first result, whatever its category
        if (Array.isArray(d.bbox) && d.bbox.length > 0) this.areaFrom = 'bbox';
        else if (d.segmentation !== undefined) this.areaFrom = 'mask';
        else evalError(`${at} has neither a bbox nor a segmentation`);
      }
      if (cp === undefined) {
        const id = d.category_id as number;
        this.ignored.set(id, (this.ignored.get(id) ?? 0) + 1);
        continue;
      }
      const k = this.n;
      // loadRes' mask branch keeps `bbox: []` as it is: segm evaluation never reads it (the
      // box comes from the mask here), bbox evaluation refuses it (readBox)
      const emptyBox = Array.isArray(d.bbox) && d.bbox.length === 0;
      const hasBox = d.bbox !== undefined && !(emptyBox && this.areaFrom === 'mask' && this.iouType === 'segm');
      if (hasBox || this.areaFrom === 'bbox') readBox(d.bbox, `${at}.bbox`, this.box, 4 * k);
      const needMask = this.iouType === 'segm' || this.areaFrom === 'mask';
      if (needMask) {
        // bbox evaluation of mask-only results: the mask is needed for area and box, not kept
        const pool = this.masks ?? this.scratch;
        if (pool === this.scratch) pool.clear();
        let row: number;
        if (d.segmentation !== undefined) {
          row = pushSegmentation(d.segmentation, `${at}.segmentation`, gt.imgH[ip]!, gt.imgW[ip]!, pool);
        } else if (this.areaFrom === 'bbox') {
          const h = gt.imgH[ip]!;
          const w = gt.imgW[ip]!;
          if (!(h > 0 && w > 0)) evalError(`${at}: its image has no valid height/width to rasterise the box`);
          row = pool.push(frBbox(this.box.subarray(4 * k, 4 * k + 4), h, w), `${at}.bbox`);
        } else {
          return evalError(`${at}.segmentation is missing`);
        }
        if (this.areaFrom === 'mask') {
          this.area[k] = pool.area[row]!;
          if (!hasBox) this.box.set(pool.bb.subarray(4 * row, 4 * row + 4), 4 * k);
        }
      }
      if (this.areaFrom === 'bbox') this.area[k] = this.box[4 * k + 2]! * this.box[4 * k + 3]!;
      this.img[k] = ip;
      this.cat[k] = cp;
      this.score[k] = score;
      this.n++;
    }
  }
}
