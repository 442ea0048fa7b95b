/**
 * COCO instances datasets: an annotation JSON (streamed, see jsonstream.ts) plus an image folder.
 *
 * Annotations live in columnar typed arrays (ids, image ids, boxes, areas, crowd flags, and
 * polygon coordinates / RLE counts in shared pools) instead of one JS object per annotation, so
 * COCO train2017 (~860k annotations, ~450 MB of JSON) fits comfortably. Polygon coordinates are
 * stored as float32 (enough for training masks; evaluation reads ground truth with full precision).
 *
 * Conventions:
 * - boxes handed out are xyxy in input pixels: [x, y, x + w, y + h] of the COCO xywh bbox, clipped
 *   to the image;
 * - labels are contiguous 0..C-1 in ascending category id order (see CategoryMap; 0 is a class);
 * - crowd annotations (iscrowd=1) are kept (for evaluation) but left out of training targets unless
 *   asked for;
 * - images without (valid, non-crowd) annotations are kept unless `emptyImages: 'skip'`.
 */
import path from 'node:path';
import { MtpdError } from '../errors.js';
import { rleDecodeStringInto } from '../coco/mask.js';
import { BadDataLog, type BadDataPolicy } from './baddata.js';
import { CategoryMap, type CocoCategory } from './categories.js';
import { streamTopLevelJson } from './jsonstream.js';

export interface CocoDatasetOptions {
  /** The instances JSON. */
  annotationFile: string;
  /** Folder the images' `file_name`s are relative to. */
  imageDir: string;
  /** 'error' (default) stops at the first bad item; 'skip' drops and counts it. */
  badData?: BadDataPolicy;
  /** Keep (default) or drop images that have no usable non-crowd annotation. */
  emptyImages?: 'keep' | 'skip';
  /** How far (pixels) a box may reach outside the image before it counts as bad; it is clipped. Default 1. */
  boxTolerance?: number;
  /** Read size for streaming the JSON (bytes; default 1 MiB). */
  chunkSize?: number;
}

/** COCO segmentation as found in the JSON. */
export type CocoSegmentation = number[][] | { counts: string | number[]; size: [number, number] };

export interface ImageRecord {
  /** Index in this dataset (0..length-1). */
  index: number;
  id: number;
  fileName: string;
  path: string;
  width: number;
  height: number;
}

/** Targets of one image, columnar. */
export interface ImageTargets {
  /** [K*4] xyxy in input pixels, clipped to the image. */
  boxes: Float32Array;
  /** [K] contiguous labels 0..C-1. */
  labels: Int32Array;
  /** [K] COCO annotation ids. */
  annotationIds: Float64Array;
  /** [K] 1 for crowd regions (only present when includeCrowd). */
  iscrowd: Uint8Array;
  /** [K] COCO areas. */
  areas: Float64Array;
  /** [K] segmentations (null where the annotation has none). */
  segmentations: (CocoSegmentation | null)[];
}

const SEG_NONE = 0;
const SEG_POLY = 1;
const SEG_RLE_COUNTS = 2;
const SEG_RLE_STRING = 3;

class Grow<T extends Float64Array | Float32Array | Int32Array | Uint32Array | Uint8Array> {
  data: T;
  length = 0;
  constructor(private readonly ctor: { new (n: number): T }, capacity = 1024) {
    this.data = new ctor(capacity);
  }
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  grow(min: number): void {
    let cap = this.data.length * 2;
    while (cap < min) cap *= 2;
    const next = new this.ctor(cap);
    next.set(this.data);
    this.data = next;
  }
  trimmed(): T {
    return this.data.slice(0, this.length) as T;
  }
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Integers the Int32Array columns hold exactly (widths, heights, category ids). */
const INT32_MAX = 0x7fffffff;
function isInt32(v: unknown): v is number {
  return Number.isInteger(v) && Math.abs(v as number) <= INT32_MAX;
}

export class CocoDataset {
  readonly annotationFile: string;
  readonly imageDir: string;
  readonly bad: BadDataLog;
  categories!: CategoryMap;
  /** Top-level values other than images/annotations/categories (info, licenses, ...). */
  readonly extra: Record<string, unknown> = {};

  // images (all images in the file, in file order)
  private imgId!: Float64Array;
  private imgW!: Int32Array;
  private imgH!: Int32Array;
  private imgFile: string[] = [];
  private imgIndexById = new Map<number, number>();
  /** Dataset index -> image row (after emptyImages filtering). */
  private order!: Int32Array;

  // annotations, columnar
  private annId!: Float64Array;
  private annImg!: Float64Array; // raw image_id, then row index after finalize
  private annCat!: Int32Array;
  private annBox!: Float64Array; // xywh
  private annArea!: Float64Array;
  private annCrowd!: Uint8Array;
  private annValid!: Uint8Array;
  private segKind!: Uint8Array;
  private segStart!: Int32Array; // into polyLens (polygons) or rleCounts
  private segCount!: Int32Array; // number of polygons, or number of counts
  private segH!: Int32Array;
  private segW!: Int32Array;
  private polyLens!: Int32Array; // length (coords) of each polygon
  private polyStart!: Float64Array; // start of each polygon in polyCoords
  private polyCoords!: Float32Array;
  private rleCounts!: Uint32Array;
  private rleStrings = new Map<number, string>();
  /** Annotation rows grouped by image row: rows annByImg[annStart[r] .. annStart[r+1]). */
  private annByImg!: Int32Array;
  private annStart!: Int32Array;

  private constructor(opts: CocoDatasetOptions) {
    this.annotationFile = opts.annotationFile;
    this.imageDir = opts.imageDir;
    this.bad = new BadDataLog(opts.badData ?? 'error');
  }

  /** Streams and indexes an instances JSON. */
  static async load(opts: CocoDatasetOptions): Promise<CocoDataset> {
    const ds = new CocoDataset(opts);
    await ds.read(opts);
    return ds;
  }

  private async read(opts: CocoDatasetOptions): Promise<void> {
    const file = opts.annotationFile;
    const tol = opts.boxTolerance ?? 1;
    const bad = this.bad;
    const imgId = new Grow(Float64Array);
    const imgW = new Grow(Int32Array);
    const imgH = new Grow(Int32Array);
    const annId = new Grow(Float64Array);
    const annImg = new Grow(Float64Array);
    const annCat = new Grow(Int32Array);
    const annBox = new Grow(Float64Array, 4096);
    const annArea = new Grow(Float64Array);
    const annCrowd = new Grow(Uint8Array);
    const segKind = new Grow(Uint8Array);
    const segStart = new Grow(Int32Array);
    const segCount = new Grow(Int32Array);
    const segH = new Grow(Int32Array);
    const segW = new Grow(Int32Array);
    const polyLens = new Grow(Int32Array);
    const polyStart = new Grow(Float64Array);
    const polyCoords = new Grow(Float32Array, 1 << 16);
    const rleCounts = new Grow(Uint32Array);
    const cats: CocoCategory[] = [];
    const annIds = new Set<number>();
    let sawImages = false;
    let sawAnnotations = false;
    let sawCategories = false;

    await streamTopLevelJson(file, {
      arrays: {
        images: (v, i) => {
          sawImages = true;
          const o = v as Record<string, unknown>;
          if (typeof o !== 'object' || o === null || !isNum(o.id) || typeof o.file_name !== 'string' || !isInt32(o.width) || !isInt32(o.height) || (o.width as number) <= 0 || (o.height as number) <= 0) {
            bad.record('malformed-image-entry', `${file}: images[${i}] (id ${JSON.stringify((o as { id?: unknown } | null)?.id)}) needs a numeric id, a file_name and positive integer width and height (at most ${INT32_MAX})`);
            return;
          }
          if (this.imgIndexById.has(o.id)) {
            bad.record('duplicate-image-id', `${file}: images[${i}] repeats image id ${o.id}`);
            return;
          }
          this.imgIndexById.set(o.id, imgId.length);
          imgId.push(o.id);
          imgW.push(o.width as number);
          imgH.push(o.height as number);
          this.imgFile.push(o.file_name);
        },
        categories: (v, i) => {
          sawCategories = true;
          const o = v as Record<string, unknown>;
          if (typeof o !== 'object' || o === null || !isInt32(o.id) || typeof o.name !== 'string') {
            throw new MtpdError('ERR_MTPD_DATA', `${file}: categories[${i}] needs an integer id (-${INT32_MAX}..${INT32_MAX}) and a name`);
          }
          const c: CocoCategory = { id: o.id as number, name: o.name };
          if (typeof o.supercategory === 'string') c.supercategory = o.supercategory;
          cats.push(c);
        },
        annotations: (v, i) => {
          sawAnnotations = true;
          const o = v as Record<string, unknown>;
          const idText = typeof o === 'object' && o !== null ? JSON.stringify(o.id) : '?';
          const where = `${file}: annotation id ${idText} (annotations[${i}])`;
          if (typeof o !== 'object' || o === null || !isNum(o.id) || !isNum(o.image_id) || !isInt32(o.category_id)) {
            bad.record('malformed-annotation', `${where} needs numeric id, image_id and integer category_id (-${INT32_MAX}..${INT32_MAX}), got category_id ${JSON.stringify(o?.category_id)}`);
            return;
          }
          const bb = o.bbox;
          if (!Array.isArray(bb) || bb.length !== 4 || !bb.every(isNum)) {
            bad.record('malformed-annotation', `${where}: bbox must be [x, y, width, height] numbers, got ${JSON.stringify(bb)}`);
            return;
          }
          const crowd = o.iscrowd === undefined ? 0 : o.iscrowd;
          if (crowd !== 0 && crowd !== 1 && crowd !== true && crowd !== false) {
            bad.record('malformed-annotation', `${where}: iscrowd must be 0 or 1, got ${JSON.stringify(crowd)}`);
            return;
          }
          if (o.area !== undefined && !isNum(o.area)) {
            bad.record('malformed-annotation', `${where}: area must be a number, got ${JSON.stringify(o.area)}`);
            return;
          }
          // segmentation
          const seg = o.segmentation;
          let kind = SEG_NONE;
          let start = 0;
          let count = 0;
          let sh = 0;
          let sw = 0;
          if (seg === undefined || seg === null || (Array.isArray(seg) && seg.length === 0)) {
            kind = SEG_NONE;
          } else if (Array.isArray(seg)) {
            start = polyLens.length;
            for (let p = 0; p < seg.length; p++) {
              const poly = seg[p] as unknown;
              if (!Array.isArray(poly) || poly.length < 6 || poly.length % 2 !== 0 || !poly.every(isNum)) {
                // roll back polygons of this annotation
                polyCoords.length = polyLens.length > start ? (polyStart.data[start] as number) : polyCoords.length;
                polyLens.length = start;
                polyStart.length = start;
                bad.record('malformed-annotation', `${where}: segmentation[${p}] must be a polygon [x1, y1, x2, y2, ...] with at least 3 points`);
                return;
              }
              polyStart.push(polyCoords.length);
              polyLens.push(poly.length);
              if (polyCoords.length + poly.length > polyCoords.data.length) polyCoords.grow(polyCoords.length + poly.length);
              polyCoords.data.set(poly as number[], polyCoords.length);
              polyCoords.length += poly.length;
            }
            kind = SEG_POLY;
            count = seg.length;
          } else if (typeof seg === 'object') {
            const r = seg as { counts?: unknown; size?: unknown };
            const size = r.size;
            if (!Array.isArray(size) || size.length !== 2 || !size.every((x) => Number.isInteger(x) && x >= 0)) {
              bad.record('malformed-annotation', `${where}: RLE segmentation needs size [height, width]`);
              return;
            }
            sh = size[0] as number;
            sw = size[1] as number;
            if (typeof r.counts === 'string') {
              kind = SEG_RLE_STRING;
              this.rleStrings.set(annId.length, r.counts);
            } else if (Array.isArray(r.counts) && r.counts.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
              kind = SEG_RLE_COUNTS;
              start = rleCounts.length;
              count = r.counts.length;
              for (const c of r.counts as number[]) rleCounts.push(c);
            } else {
              bad.record('malformed-annotation', `${where}: RLE counts must be a string or a list of integers in 0..${0xffffffff}`);
              return;
            }
          } else {
            bad.record('malformed-annotation', `${where}: segmentation must be a list of polygons or an RLE object`);
            return;
          }
          if (annIds.has(o.id)) {
            bad.record('duplicate-annotation-id', `${where}: annotation id ${o.id} appears twice`);
            if (kind === SEG_POLY) {
              polyCoords.length = polyStart.data[start] as number;
              polyLens.length = start;
              polyStart.length = start;
            } else if (kind === SEG_RLE_COUNTS) rleCounts.length = start;
            else if (kind === SEG_RLE_STRING) this.rleStrings.delete(annId.length);
            return;
          }
          annIds.add(o.id);
          annId.push(o.id);
          annImg.push(o.image_id);
          annCat.push(o.category_id as number);
          for (let k = 0; k < 4; k++) annBox.push(bb[k] as number);
          annArea.push(isNum(o.area) ? o.area : (bb[2] as number) * (bb[3] as number));
          annCrowd.push(crowd ? 1 : 0);
          segKind.push(kind);
          segStart.push(start);
          segCount.push(count);
          segH.push(sh);
          segW.push(sw);
        },
      },
      onKey: (key) => {
        if (key === 'images') sawImages = true;
        if (key === 'categories') sawCategories = true;
        if (key === 'annotations') sawAnnotations = true;
      },
      other: (key, value) => {
        this.extra[key] = value;
      },
    }, opts.chunkSize);
    if (!sawImages) throw new MtpdError('ERR_MTPD_DATA', `${file}: no 'images' array (is this a COCO instances file?)`);
    if (!sawCategories) throw new MtpdError('ERR_MTPD_DATA', `${file}: no 'categories' array (is this a COCO instances file?)`);
    void sawAnnotations; // an image-info-only file (e.g. test-dev) has no annotations: allowed
    this.categories = new CategoryMap(cats, `${file}: categories`);

    this.imgId = imgId.trimmed();
    this.imgW = imgW.trimmed();
    this.imgH = imgH.trimmed();
    this.annId = annId.trimmed();
    this.annImg = annImg.trimmed();
    this.annCat = annCat.trimmed();
    this.annBox = annBox.trimmed();
    this.annArea = annArea.trimmed();
    this.annCrowd = annCrowd.trimmed();
    this.segKind = segKind.trimmed();
    this.segStart = segStart.trimmed();
    this.segCount = segCount.trimmed();
    this.segH = segH.trimmed();
    this.segW = segW.trimmed();
    this.polyLens = polyLens.trimmed();
    this.polyStart = polyStart.trimmed();
    this.polyCoords = polyCoords.trimmed();
    this.rleCounts = rleCounts.trimmed();

    // Validate and resolve references.
    const nAnn = this.annId.length;
    const nImg = this.imgId.length;
    this.annValid = new Uint8Array(nAnn);
    const perImage = new Int32Array(nImg + 1);
    const rowOfAnn = new Int32Array(nAnn).fill(-1);
    for (let a = 0; a < nAnn; a++) {
      const id = this.annId[a]!;
      const where = `${file}: annotation id ${id}`;
      const row = this.imgIndexById.get(this.annImg[a]!);
      if (row === undefined) {
        bad.record('missing-image', `${where} points at image id ${this.annImg[a]} which is not in 'images'`);
        continue;
      }
      if (!this.categories.has(this.annCat[a]!)) {
        bad.record('unknown-category', `${where} has category_id ${this.annCat[a]} which is not in 'categories'`);
        continue;
      }
      const x = this.annBox[4 * a]!;
      const y = this.annBox[4 * a + 1]!;
      const w = this.annBox[4 * a + 2]!;
      const h = this.annBox[4 * a + 3]!;
      const W = this.imgW[row]!;
      const H = this.imgH[row]!;
      if (!(w > 0 && h > 0)) {
        bad.record('zero-area-box', `${where} (image ${this.imgFile[row]}) has a box of zero area [${x}, ${y}, ${w}, ${h}]`);
        continue;
      }
      if (x < -tol || y < -tol || x + w > W + tol || y + h > H + tol) {
        bad.record('box-outside-image', `${where} has box [${x}, ${y}, ${w}, ${h}] outside its ${W}x${H} image ${this.imgFile[row]}`);
        continue;
      }
      if ((this.segKind[a] === SEG_RLE_COUNTS || this.segKind[a] === SEG_RLE_STRING) && (this.segH[a] !== H || this.segW[a] !== W)) {
        bad.record('malformed-annotation', `${where}: RLE size [${this.segH[a]}, ${this.segW[a]}] differs from its image's ${H}x${W}`);
        continue;
      }
      if (this.segKind[a] === SEG_RLE_STRING) {
        // Decoded here so a corrupt string is named now, not deep in a loader worker later.
        const str = this.rleStrings.get(a)!;
        const counts = new Uint32Array(str.length);
        let sum = 0;
        try {
          const m = rleDecodeStringInto(str, counts, 0);
          for (let k = 0; k < m; k++) sum += counts[k]!;
        } catch (err) {
          bad.record('malformed-annotation', `${where}: RLE counts: ${(err as Error).message}`);
          continue;
        }
        if (sum !== H * W) {
          bad.record('malformed-annotation', `${where}: RLE counts sum to ${sum}, expected ${H}*${W}=${H * W}`);
          continue;
        }
      }
      if (this.segKind[a] === SEG_POLY) {
        // Rasterizing walks every edge pixel by pixel (pycocotools' rleFrPoly, 5x upsampled): a
        // vertex far outside the image would cost memory and time out of all proportion.
        const far = this.farPolygonVertex(a, W, H);
        if (far) {
          bad.record('malformed-annotation', `${where}: segmentation[${far[0]}] has vertex (${far[1]}, ${far[2]}), far outside its ${W}x${H} image ${this.imgFile[row]} (vertices must lie within one image size of it)`);
          continue;
        }
      }
      if (this.segKind[a] === SEG_RLE_COUNTS) {
        let sum = 0;
        const s = this.segStart[a]!;
        for (let k = 0; k < this.segCount[a]!; k++) sum += this.rleCounts[s + k]!;
        if (sum !== H * W) {
          bad.record('malformed-annotation', `${where}: RLE counts sum to ${sum}, expected ${H}*${W}=${H * W}`);
          continue;
        }
      }
      this.annValid[a] = 1;
      rowOfAnn[a] = row;
      perImage[row + 1]!++;
    }
    for (let r = 0; r < nImg; r++) perImage[r + 1]! += perImage[r]!;
    this.annStart = perImage;
    this.annByImg = new Int32Array(perImage[nImg]!);
    const fill = perImage.slice(0, nImg);
    for (let a = 0; a < nAnn; a++) {
      const r = rowOfAnn[a]!;
      if (r >= 0) this.annByImg[fill[r]!++] = a;
    }
    for (let a = 0; a < nAnn; a++) this.annImg[a] = rowOfAnn[a]!;

    const keep: number[] = [];
    for (let r = 0; r < nImg; r++) {
      if (opts.emptyImages === 'skip') {
        let any = false;
        for (let k = this.annStart[r]!; k < this.annStart[r + 1]!; k++) if (!this.annCrowd[this.annByImg[k]!]) any = true;
        if (!any) continue;
      }
      keep.push(r);
    }
    this.order = Int32Array.from(keep);
  }

  /** [polygon, x, y] of the first vertex of annotation row `a` outside [-W, 2W] x [-H, 2H], or null. */
  private farPolygonVertex(a: number, W: number, H: number): [number, number, number] | null {
    for (let p = 0; p < this.segCount[a]!; p++) {
      const s = this.polyStart[this.segStart[a]! + p]!;
      const n = this.polyLens[this.segStart[a]! + p]!;
      for (let k = s; k < s + n; k += 2) {
        const x = this.polyCoords[k]!;
        const y = this.polyCoords[k + 1]!;
        if (!(x >= -W && x <= 2 * W && y >= -H && y <= 2 * H)) return [p, x, y];
      }
    }
    return null;
  }

  /** Number of images in the dataset (after emptyImages filtering). */
  get length(): number {
    return this.order.length;
  }

  /** Number of images listed in the file. */
  get totalImages(): number {
    return this.imgId.length;
  }

  /** Number of valid annotations (crowd included). */
  get annotationCount(): number {
    return this.annByImg.length;
  }

  private row(index: number): number {
    const r = this.order[index];
    if (!Number.isInteger(index) || r === undefined) throw new RangeError(`image index ${index} is outside 0..${this.length - 1}`);
    return r;
  }

  image(index: number): ImageRecord {
    const r = this.row(index);
    const fileName = this.imgFile[r]!;
    return { index, id: this.imgId[r]!, fileName, path: path.join(this.imageDir, fileName), width: this.imgW[r]!, height: this.imgH[r]! };
  }

  /** Dataset index of a COCO image id (-1 when absent or filtered). */
  indexOfImageId(id: number): number {
    const r = this.imgIndexById.get(id);
    if (r === undefined) return -1;
    // order is sorted ascending: binary search
    let lo = 0;
    let hi = this.order.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.order[mid]!;
      if (v === r) return mid;
      if (v < r) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Image ids of the dataset, in dataset order. */
  imageIds(): Float64Array {
    const out = new Float64Array(this.order.length);
    for (let i = 0; i < out.length; i++) out[i] = this.imgId[this.order[i]!]!;
    return out;
  }

  /**
   * Targets of image `index`: boxes xyxy (clipped to the image), contiguous labels, ids, areas and
   * segmentations. Crowd annotations are left out unless `includeCrowd`.
   */
  targets(index: number, opts: { includeCrowd?: boolean; segmentations?: boolean } = {}): ImageTargets {
    const r = this.row(index);
    const W = this.imgW[r]!;
    const H = this.imgH[r]!;
    const rows: number[] = [];
    for (let k = this.annStart[r]!; k < this.annStart[r + 1]!; k++) {
      const a = this.annByImg[k]!;
      if (!opts.includeCrowd && this.annCrowd[a]) continue;
      rows.push(a);
    }
    const K = rows.length;
    const boxes = new Float32Array(4 * K);
    const labels = new Int32Array(K);
    const annotationIds = new Float64Array(K);
    const iscrowd = new Uint8Array(K);
    const areas = new Float64Array(K);
    const segmentations: (CocoSegmentation | null)[] = [];
    rows.forEach((a, k) => {
      const x = this.annBox[4 * a]!;
      const y = this.annBox[4 * a + 1]!;
      const w = this.annBox[4 * a + 2]!;
      const h = this.annBox[4 * a + 3]!;
      boxes[4 * k] = Math.min(Math.max(x, 0), W);
      boxes[4 * k + 1] = Math.min(Math.max(y, 0), H);
      boxes[4 * k + 2] = Math.min(Math.max(x + w, 0), W);
      boxes[4 * k + 3] = Math.min(Math.max(y + h, 0), H);
      labels[k] = this.categories.labelOf(this.annCat[a]!);
      annotationIds[k] = this.annId[a]!;
      iscrowd[k] = this.annCrowd[a]!;
      areas[k] = this.annArea[a]!;
      if (opts.segmentations !== false) segmentations.push(this.segmentation(a));
    });
    return { boxes, labels, annotationIds, iscrowd, areas, segmentations };
  }

  /** The COCO segmentation of annotation row `a`, rebuilt from the pools. */
  private segmentation(a: number): CocoSegmentation | null {
    const kind = this.segKind[a];
    if (kind === SEG_POLY) {
      const polys: number[][] = [];
      for (let p = this.segStart[a]!; p < this.segStart[a]! + this.segCount[a]!; p++) {
        const s = this.polyStart[p]!;
        polys.push(Array.from(this.polyCoords.subarray(s, s + this.polyLens[p]!)));
      }
      return polys;
    }
    if (kind === SEG_RLE_COUNTS) {
      const s = this.segStart[a]!;
      return { counts: Array.from(this.rleCounts.subarray(s, s + this.segCount[a]!)), size: [this.segH[a]!, this.segW[a]!] };
    }
    if (kind === SEG_RLE_STRING) return { counts: this.rleStrings.get(a)!, size: [this.segH[a]!, this.segW[a]!] };
    return null;
  }

  /** Rough bytes held by the columnar arrays (for checks and reports). */
  get byteSize(): number {
    const arrays = [this.imgId, this.imgW, this.imgH, this.annId, this.annImg, this.annCat, this.annBox, this.annArea, this.annCrowd, this.annValid, this.segKind, this.segStart, this.segCount, this.segH, this.segW, this.polyLens, this.polyStart, this.polyCoords, this.rleCounts, this.annByImg, this.annStart, this.order];
    return arrays.reduce((s, x) => s + x.byteLength, 0);
  }
}
