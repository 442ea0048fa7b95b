/**
 * Models of a run: detectors built from the config (each at its own input resolution), and
 * their evaluation on the validation split.
 */
import { join } from 'node:path';
import type { Config, ModelConfig, StudentConfig } from '../config/schema.js';
import type { CocoCategory } from '../data/categories.js';
import { describeMapping, mapClasses, type ClassMapping } from '../data/class-map.js';
import { CocoDataset } from '../data/coco.js';
import { DataLoader } from '../data/loader.js';
import { createDetector, type Detector } from '../detector.js';
import { MtpdError } from '../errors.js';
import { CocoEvaluator, predictionsToResults, readJsonFile, type CocoDetection, type Summary } from '../eval/index.js';
import { maskToRle } from '../predict.js';
import { setSeed } from '../runtime.js';
import { loadBackboneInto, type BackboneLoadReport } from '../weights/backbone-checkpoint.js';
import { readWeights } from '../weights/index.js';
import type { Tensor } from '../tensor.js';
import { dist, fromMainRank } from '../dist/context.js';
import { detectorInputs } from './inputs.js';
import { resolveStudentSetup, type StudentSetup } from './student-setup.js';

export interface Splits {
  train: CocoDataset;
  val: CocoDataset;
  numClasses: number;
  /** Contiguous label -> COCO category id. */
  categoryIds: number[];
  /** The dataset's categories, ascending id (what model classes are matched to). */
  categories?: CocoCategory[];
}

export async function openSplits(config: Config): Promise<Splits> {
  const root = config.data.root;
  const badData = config.data.skipBadData ? 'skip' : 'error';
  const train = await CocoDataset.load({
    annotationFile: join(root, config.data.train.annotations),
    imageDir: join(root, config.data.train.images),
    badData,
    emptyImages: config.data.keepEmptyImages ? 'keep' : 'skip',
  });
  const val = await CocoDataset.load({
    annotationFile: join(root, config.data.val.annotations),
    imageDir: join(root, config.data.val.images),
    badData,
    emptyImages: 'keep',
  });
  const tIds = train.categories.ids;
  const vIds = val.categories.ids;
  if (tIds.length !== vIds.length || tIds.some((id, i) => id !== vIds[i])) {
    throw new MtpdError('ERR_MTPD_DATA', `${config.data.val.annotations}: categories differ from ${config.data.train.annotations} (train ${tIds.join(',')}; val ${vIds.join(',')})`);
  }
  return { train, val, numClasses: tIds.length, categoryIds: tIds, categories: train.categories.toJSON() };
}

/** The class mapping of each detector built by buildModel (read by evaluateModel and the training stages). */
const mappings = new WeakMap<Detector, ClassMapping>();
const warned = new Set<string>();

/** How `det`'s outputs meet the dataset's categories; undefined for a detector buildModel did not make (then: the dataset's own). */
export function classMappingOf(det: Detector): ClassMapping | undefined {
  return mappings.get(det);
}

/** Dataset label -> model label for training `det`'s targets; undefined when its classes are the dataset's own. */
export function targetLabelsOf(det: Detector): Int32Array | undefined {
  const m = mappings.get(det);
  return m && m.kind !== 'dataset' ? m.modelLabels : undefined;
}

/**
 * The class mapping of a model config on a dataset (`data`: the splits, or only the number of
 * classes for models with the dataset's own classes). A student must have a class for every
 * dataset category; a teacher without some is warned about once (its AP on them is 0).
 */
export function modelClassMapping(m: ModelConfig | StudentConfig, data: Splits | number): ClassMapping {
  const kind = m.classes ?? 'dataset';
  if (typeof data === 'number') {
    if (kind !== 'dataset') throw new MtpdError('ERR_MTPD_CONFIG', `${m.name}: classes ${kind} needs the dataset's categories`);
    const cats = Array.from({ length: data }, (_, i) => ({ id: i, name: String(i) }));
    return mapClasses('dataset', cats);
  }
  const cats = data.categories ?? data.categoryIds.map((id) => ({ id, name: String(id) }));
  const mapping = mapClasses(kind, cats, m.classMatch ?? 'auto', `${m.name}.classes`);
  if (mapping.unmatched.length > 0) {
    if ('norm' in m) throw new MtpdError('ERR_MTPD_CONFIG', `${m.name}.classes: ${describeMapping(mapping, m.name)}; a student needs a class for every dataset category`);
    const line = describeMapping(mapping, m.name);
    if (!warned.has(line)) {
      warned.add(line);
      process.stderr.write(`warning: ${line}\n`);
    }
  }
  return mapping;
}

/**
 * Builds a model of the config; loads its weights when it names a file. The student (a config
 * with `norm` / `trainableLayers`) is built with its setup (see student-setup.ts); a teacher
 * trained here from scratch (loadWeights false) gets trainable BatchNorm and every backbone
 * stage trainable; a teacher with weights keeps torchvision's default (frozen BatchNorm; it
 * only ever runs in eval mode). `seed` (default: the run's) seeds the initialization.
 */
export async function buildModel(m: ModelConfig | StudentConfig, config: Config, data: Splits | number, options: { loadWeights?: boolean; seed?: number } = {}): Promise<Detector> {
  const mapping = modelClassMapping(m, data);
  const numClasses = mapping.numClasses;
  setSeed(options.seed ?? config.seed);
  const setup: StudentSetup | null = 'norm' in m ? resolveStudentSetup(m) : options.loadWeights === false ? { norm: 'bn', trainableLayers: 5 } : null;
  const det = await createDetector({
    arch: m.arch,
    numClasses,
    widthMult: m.widthMult,
    minSize: m.minSize ?? config.data.minSize,
    maxSize: m.maxSize ?? config.data.maxSize,
    scoreThresh: config.evaluation.scoreThresh,
    detectionsPerImg: config.evaluation.detectionsPerImage,
    device: config.device,
    ...(config.channelsLast ? { channelsLast: true } : {}),
    ...(setup ? { normLayer: setup.norm, trainableLayers: setup.trainableLayers } : {}),
    options: m.options,
  });
  if (m.weights && (options.loadWeights ?? true)) {
    await det.loadWeights(m.weights, m.weightsKey !== undefined ? { key: m.weightsKey } : {});
  } else if (m.backbone) {
    await loadBackbone(det, m.backbone, m.name);
  }
  mappings.set(det, mapping);
  return det;
}

const backboneReported = new Set<string>();

/**
 * Loads a backbone checkpoint (see weights/backbone-checkpoint.ts) into `det`'s backbone only;
 * says once per file and model on stderr which layout it was and what of it was not used.
 */
export async function loadBackbone(det: Detector, path: string, name = 'model'): Promise<BackboneLoadReport> {
  const sd = await readWeights(path);
  const own = await det.stateDict();
  const shapes = new Map([...own].map(([k, v]) => [k, v.shape]));
  const r = await loadBackboneInto(det, sd, shapes, `${name}.backbone ${path}`);
  const line = `${name}: backbone from ${path} (${r.layout} layout): ${r.loaded} tensors loaded; unused: ${r.unused.length ? `${r.unused.slice(0, 8).join(', ')}${r.unused.length > 8 ? `, ... (${r.unused.length})` : ''}` : 'none'}`;
  if (!backboneReported.has(line)) {
    backboneReported.add(line);
    process.stderr.write(`${line}\n`);
  }
  return r;
}

/**
 * Evaluation loader over the validation split: no shuffling, flips or resizing; decoding in
 * `workers` threads (data.workers). With a shard (data-parallel), each batch of batchSize x ranks
 * images hands this rank its part.
 */
export function evalLoader(val: CocoDataset, batchSize: number, shard?: { rank: number; worldSize: number }, workers = 0): DataLoader {
  return new DataLoader(val, { batchSize: batchSize * (shard?.worldSize ?? 1), shuffle: false, train: false, resize: 'none', output: 'uint8', layout: 'hwc', workers, ...(shard ? { shard } : {}) });
}

/**
 * COCO bbox evaluation of a detector on the validation split, with its detections (COCO results
 * records; a mask model's carry `segmentation`, its masks binarized at 0.5, and `segm` is the mask
 * evaluation of the same detections). `distributed`: every rank of the job predicts its part of
 * the images, the detections are gathered (in image order) and rank 0 scores them; every rank
 * gets the result.
 */
export async function evaluateModel(det: Detector, splits: Splits, config: Config, onBatch?: (done: number, total: number) => void, options: { distributed?: boolean } = {}): Promise<Summary & { detections: CocoDetection[]; segm?: Summary }> {
  const d = dist();
  const group = options.distributed && d.group ? d.group : null;
  const shard = group ? { rank: d.rank, worldSize: d.worldSize } : undefined;
  const loader = evalLoader(splits.val, config.evaluation.batchSize, shard, config.data.workers);
  const total = Math.ceil(splits.val.length / (config.evaluation.batchSize * (shard?.worldSize ?? 1)));
  let done = 0;
  // This rank's detections, one array per batch of the job (in image order).
  const parts: CocoDetection[][] = [];
  // model label -> dataset category id (-1: a class the dataset does not have, dropped)
  // (a model with the dataset's own classes: label i is the dataset's i-th category)
  const mapping = classMappingOf(det);
  const categoryIds = mapping && mapping.kind !== 'dataset' ? mapping.categoryIds : Int32Array.from(splits.categoryIds);
  let masked = false;
  try {
    await det.eval();
    for await (const batch of loader.epoch()) {
      const part: CocoDetection[] = [];
      parts.push(part);
      if (batch.shareWeight === 0) continue; // a copy that keeps this rank in step
      const { images } = detectorInputs(batch);
      const dets = await det.predict(images);
      dets.forEach((p, i) => {
        const imageId = batch.imageIds[i] as number;
        const n = p.scores.shape[0] as number;
        const masks = p.masks ? Array.from({ length: n }, (_, k) => maskToRle(p.masks as Tensor, k)) : undefined;
        if (masks) masked = true;
        const recs = predictionsToResults(imageId, { boxes: p.boxes.data, scores: p.scores.data, labels: Array.from(p.labels.data, Number), ...(masks ? { masks } : {}) }, { categoryIds });
        for (const r of recs) if (r.category_id >= 0) part.push(r);
      });
      onBatch?.(++done, total);
    }
  } finally {
    await loader.close();
  }
  let detections: CocoDetection[];
  if (group) {
    const all = await group.allgatherJson(parts, 'gathering detections');
    detections = [];
    for (let b = 0; b < parts.length; b++) for (const rankParts of all) for (const r of rankParts[b] ?? []) detections.push(r);
    const anyMasks = detections.some((r) => 'segmentation' in r);
    const summary = await fromMainRank('scoring detections', () => scoreDetections(splits, detections, anyMasks));
    return { ...summary, detections };
  }
  detections = parts.flat();
  return { ...scoreDetections(splits, detections, masked), detections };
}

/** COCO scores of a validation split's detections (bbox; and segm when `masks`). */
function scoreDetections(splits: Splits, detections: CocoDetection[], masks: boolean): Summary & { segm?: Summary } {
  const gt = readJsonFile(splits.val.annotationFile);
  const evaluator = new CocoEvaluator(gt, { iouType: 'bbox', source: splits.val.annotationFile });
  const segm = masks ? new CocoEvaluator(gt, { iouType: 'segm', source: splits.val.annotationFile }) : null;
  // Image by image, as they were predicted.
  let from = 0;
  for (let i = 1; i <= detections.length; i++) {
    if (i === detections.length || (detections[i] as CocoDetection).image_id !== (detections[from] as CocoDetection).image_id) {
      const id = (detections[from] as CocoDetection).image_id;
      const recs = detections.slice(from, i);
      evaluator.addDetections(recs, `predictions of image ${id}`);
      segm?.addDetections(recs, `mask predictions of image ${id}`);
      from = i;
    }
  }
  return { ...evaluator.summarize(), ...(segm ? { segm: segm.summarize() } : {}) };
}
