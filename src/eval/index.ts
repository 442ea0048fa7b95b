/**
 * COCO evaluation (bbox, segm) identical to pycocotools' COCOeval, as a Node API.
 *
 *   const r = evaluate(gtJson, resultsArray, { iouType: 'bbox' });   // r.stats: the 12 numbers
 *
 *   const ev = new CocoEvaluator(gtJson, { iouType: 'bbox' });       // during a validation pass
 *   ev.addDetections([{ image_id, category_id, score, bbox: [x, y, w, h] }, ...]);
 *   ev.addPredictions(imageId, { boxes, scores, labels });           // xyxy boxes, columnar
 *   const { stats, perCategory } = ev.summarize();
 *
 *   const r2 = evaluateFiles('instances_val.json', 'results.json', { iouType: 'segm' });
 *
 *   const b = bootstrap(gtJson, [{ name: 'a', detections: resultsA }, { name: 'b', detections: resultsB }]);
 *   pairOf(b, 'a', 'b');                                               // AP(a) - AP(b), 95% interval
 *
 * JSON files are read with JSON.parse (up to V8's string limit, ~512 MiB; larger files get a
 * clear error).
 */
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { runEval, formatSummary, summarizeStats, STAT_NAMES, type EvalResult, type CategoryStats } from './cocoeval.js';
import { defaultParams, linspace, type EvalParams, type IouType } from './params.js';
import { Detections, GroundTruth, evalError, type CocoDataset, type CocoDetection } from './store.js';
import type { CompressedRle, Rle } from '../coco/mask.js';
import { toCompressed } from '../coco/mask.js';

export { runEval, formatSummary, summarizeStats, STAT_NAMES, defaultParams, linspace, GroundTruth, Detections };
export type { EvalResult, CategoryStats, EvalParams, IouType, CocoDataset, CocoDetection };
export { accumulate, accumulateStats, evaluateImages, indexMatches, type ImageEvaluation } from './cocoeval.js';
export { bootstrap, modelOf, pairOf, type BootstrapModel, type BootstrapOptions, type BootstrapResult, type ModelSpread, type PairSpread } from './bootstrap.js';
export type { CocoAnnotation, CocoCategory, CocoImage } from './store.js';

export interface EvalOptions {
  /** 'bbox' (default) or 'segm'. */
  iouType?: IouType;
  /** Evaluate only these images (pycocotools' params.imgIds); default all gt images. */
  imgIds?: readonly number[];
  /**
   * Detections of categories the ground truth does not list, and ground-truth annotations of
   * images or categories the file does not list: 'ignore' (default, as pycocotools; counted in
   * the result's ignoredCategories / ignoredAnnotations) or 'error' (refused, naming the record).
   */
  unknownCategories?: 'ignore' | 'error';
}

/**
 * The warning for detections of categories the ground truth does not list (null when there are
 * none): how many, and which categories with their counts.
 */
export function ignoredCategoriesWarning(ignored: Record<string, number> | undefined, source = 'detections'): string | null {
  const rows = Object.entries(ignored ?? {}).sort((a, b) => Number(a[0]) - Number(b[0]));
  if (rows.length === 0) return null;
  const total = rows.reduce((n, [, c]) => n + c, 0);
  const list = rows.map(([id, c]) => `${id} (${c})`).join(', ');
  return `warning: ${source}: ${total} detection${total === 1 ? '' : 's'} of ${rows.length} categor${rows.length === 1 ? 'y' : 'ies'} the ground truth does not list were ignored, as pycocotools does: category_id ${list}`;
}

/**
 * The warning for ground-truth annotations whose image or category the file does not list
 * (null when there are none): pycocotools leaves them out, and so does the evaluation.
 */
export function ignoredAnnotationsWarning(
  ignored: { images: Record<string, number>; categories: Record<string, number> } | undefined,
  source = 'ground truth',
): string | null {
  let all = 0;
  const part = (m: Record<string, number> | undefined, field: string, list: string): string | null => {
    const rows = Object.entries(m ?? {}).sort((a, b) => Number(a[0]) - Number(b[0]));
    if (rows.length === 0) return null;
    const total = rows.reduce((n, [, c]) => n + c, 0);
    all += total;
    return `${total} annotation${total === 1 ? '' : 's'} whose ${field} is not in "${list}" (${rows.map(([id, c]) => `${id} (${c})`).join(', ')})`;
  };
  const parts = [part(ignored?.images, 'image_id', 'images'), part(ignored?.categories, 'category_id', 'categories')].filter((x) => x !== null);
  if (parts.length === 0) return null;
  return `warning: ${source}: ${parts.join(' and ')} ${all === 1 ? 'was' : 'were'} left out, as pycocotools does`;
}

/** Largest file JSON.parse can take as one string (V8's string length limit). */
export const MAX_JSON_BYTES = 0x1fffffe8;

/** Reads and parses a JSON file, with errors that name the file. */
export function readJsonFile(path: string): unknown {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    return evalError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size > MAX_JSON_BYTES) {
    evalError(`${path} is ${(size / 2 ** 20).toFixed(0)} MiB; files above ${MAX_JSON_BYTES >> 20} MiB exceed V8's string limit and are not supported`);
  }
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return evalError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

export interface Predictions {
  /** N boxes, 4 numbers each: xyxy (default) or xywh. */
  boxes: ArrayLike<number>;
  scores: ArrayLike<number>;
  /** N labels; category ids, or indices into `categoryIds` when given. */
  labels: ArrayLike<number>;
  /** N masks for segm (RLE or compressed RLE at the image's size). */
  masks?: readonly (Rle | CompressedRle)[];
}

export interface PredictionOptions {
  boxFormat?: 'xyxy' | 'xywh';
  /** Maps label i to category id categoryIds[i] (e.g. contiguous training labels to COCO ids). */
  categoryIds?: ArrayLike<number>;
}

export interface Summary {
  stats: number[];
  perCategory: Record<string, CategoryStats>;
  /** pycocotools' printed table. */
  text: string;
  result: EvalResult;
}

/**
 * One image's predictions in the detector's columnar form as COCO results records (what a
 * results file holds; xyxy boxes become [x, y, w, h]).
 */
export function predictionsToResults(imageId: number, pred: Predictions, options: PredictionOptions = {}): CocoDetection[] {
  const n = pred.scores.length;
  if (pred.boxes.length !== 4 * n) evalError(`addPredictions(${imageId}): boxes has ${pred.boxes.length} numbers, expected 4 * ${n}`);
  if (pred.labels.length !== n) evalError(`addPredictions(${imageId}): labels has ${pred.labels.length} entries, expected ${n}`);
  if (pred.masks && pred.masks.length !== n) evalError(`addPredictions(${imageId}): masks has ${pred.masks.length} entries, expected ${n}`);
  const xyxy = (options.boxFormat ?? 'xyxy') === 'xyxy';
  const map = options.categoryIds;
  const batch: CocoDetection[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = pred.boxes[4 * i]!;
    const y = pred.boxes[4 * i + 1]!;
    const c = pred.boxes[4 * i + 2]!;
    const d = pred.boxes[4 * i + 3]!;
    const label = pred.labels[i]!;
    let cat = label;
    if (map) {
      if (!(label >= 0 && label < map.length && Number.isInteger(label))) {
        evalError(`addPredictions(${imageId}): labels[${i}] = ${label} is outside categoryIds (length ${map.length})`);
      }
      cat = map[label]!;
    }
    const det: CocoDetection = {
      image_id: imageId,
      category_id: cat,
      score: pred.scores[i]!,
      bbox: xyxy ? [x, y, c - x, d - y] : [x, y, c, d],
    };
    const m = pred.masks?.[i];
    if (m) det.segmentation = 'size' in m ? m : toCompressed(m);
    batch[i] = det;
  }
  return batch;
}

/** Incremental COCO evaluator: add detections batch by batch, then summarize (repeatable). */
export class CocoEvaluator {
  readonly gt: GroundTruth;
  readonly iouType: IouType;
  readonly params: EvalParams;
  private dets: Detections;
  private readonly imgIds: readonly number[] | undefined;
  private readonly unknownCategories: 'ignore' | 'error';

  constructor(gt: CocoDataset | GroundTruth | unknown, options: EvalOptions & { source?: string } = {}) {
    this.iouType = options.iouType ?? 'bbox';
    if (this.iouType !== 'bbox' && this.iouType !== 'segm') evalError(`iouType must be "bbox" or "segm", got ${JSON.stringify(this.iouType)}`);
    const unknown = options.unknownCategories ?? 'ignore';
    if (unknown !== 'ignore' && unknown !== 'error') evalError(`unknownCategories must be "ignore" or "error", got ${JSON.stringify(unknown)}`);
    this.gt = gt instanceof GroundTruth ? gt : new GroundTruth(gt, this.iouType, options.source, unknown);
    if (this.gt.masks === null && this.iouType === 'segm') evalError('the GroundTruth was built for bbox; segm needs masks');
    this.params = defaultParams(this.iouType);
    this.unknownCategories = unknown;
    this.dets = new Detections(this.gt, this.iouType, unknown);
    this.imgIds = options.imgIds;
  }

  get numDetections(): number {
    return this.dets.n;
  }

  /** Adds COCO result records ({image_id, category_id, score, bbox?, segmentation?}). */
  addDetections(batch: readonly CocoDetection[] | unknown, source = 'detections'): void {
    this.dets.add(batch as readonly unknown[], source);
  }

  /** Adds one image's predictions in the detector's columnar form. */
  addPredictions(imageId: number, pred: Predictions, options: PredictionOptions = {}): void {
    this.dets.add(predictionsToResults(imageId, pred, options), `predictions of image ${imageId}`);
  }

  /** Detections left out so far because the ground truth does not list their category, by category id. */
  get ignoredCategories(): Record<string, number> {
    return Object.fromEntries([...this.dets.ignored].sort((a, b) => a[0] - b[0]).map(([id, n]) => [String(id), n]));
  }

  /**
   * Ground-truth annotations left out because the file does not list their image or category
   * (as pycocotools), by image_id and by category_id.
   */
  get ignoredAnnotations(): { images: Record<string, number>; categories: Record<string, number> } {
    const rec = (m: Map<number, number>) => Object.fromEntries([...m].sort((a, b) => a[0] - b[0]).map(([id, n]) => [String(id), n]));
    return { images: rec(this.gt.ignored.images), categories: rec(this.gt.ignored.categories) };
  }

  /** Drops all detections (e.g. before the next validation pass). */
  reset(): void {
    this.dets = new Detections(this.gt, this.iouType, this.unknownCategories);
  }

  /** evaluate + accumulate: precision/recall arrays, the 12 stats and per-category stats. */
  evaluate(): EvalResult {
    return {
      ...runEval(this.gt, this.dets, this.params, this.imgIds),
      ignoredCategories: this.ignoredCategories,
      ignoredAnnotations: this.ignoredAnnotations,
    };
  }

  summarize(): Summary {
    const result = this.evaluate();
    return { stats: result.stats, perCategory: result.perCategory, text: formatSummary(result), result };
  }
}

/** One-shot evaluation of a COCO ground truth object and a results array. */
export function evaluate(gt: CocoDataset | unknown, dets: readonly CocoDetection[] | unknown, options: EvalOptions = {}): EvalResult {
  const ev = new CocoEvaluator(gt, options);
  ev.addDetections(dets, 'results');
  return ev.evaluate();
}

/** Evaluates a results file against an instances file; errors name the file and the field. */
export function evaluateFiles(gtPath: string, detsPath: string, options: EvalOptions = {}): EvalResult {
  const gt = readJsonFile(gtPath);
  const ev = new CocoEvaluator(gt, { ...options, source: basename(gtPath) });
  let dets: unknown = readJsonFile(detsPath);
  if (!Array.isArray(dets)) evalError(`${detsPath}: a results file must be a JSON array of detections`);
  ev.addDetections(dets, basename(detsPath));
  dets = undefined; // the parsed file is garbage from here on
  return ev.evaluate();
}
