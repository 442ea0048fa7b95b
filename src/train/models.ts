/**
 * Models of a run: detectors built from the config (each at its own input resolution), and
 * their evaluation on the validation split.
 */
import { join } from 'node:path';
import type { Config, ModelConfig, StudentConfig } from '../config/schema.js';
import { CocoDataset } from '../data/coco.js';
import { DataLoader } from '../data/loader.js';
import { createDetector, type Detector } from '../detector.js';
import { MtpdError } from '../errors.js';
import { CocoEvaluator, predictionsToResults, readJsonFile, type CocoDetection, type Summary } from '../eval/index.js';
import { setSeed } from '../runtime.js';
import { dist, fromMainRank } from '../dist/context.js';
import { detectorInputs } from './inputs.js';
import { resolveStudentSetup, type StudentSetup } from './student-setup.js';

export interface Splits {
  train: CocoDataset;
  val: CocoDataset;
  numClasses: number;
  /** Contiguous label -> COCO category id. */
  categoryIds: number[];
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
  return { train, val, numClasses: tIds.length, categoryIds: tIds };
}

/**
 * Builds a model of the config; loads its weights when it names a file. The student (a config
 * with `norm` / `trainableLayers`) is built with its setup (see student-setup.ts); a teacher
 * trained here from scratch (loadWeights false) gets trainable BatchNorm and every backbone
 * stage trainable; a teacher with weights keeps torchvision's default (frozen BatchNorm; it
 * only ever runs in eval mode). `seed` (default: the run's) seeds the initialization.
 */
export async function buildModel(m: ModelConfig | StudentConfig, config: Config, numClasses: number, options: { loadWeights?: boolean; seed?: number } = {}): Promise<Detector> {
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
    ...(setup ? { normLayer: setup.norm, trainableLayers: setup.trainableLayers } : {}),
    options: m.options,
  });
  if (m.weights && (options.loadWeights ?? true)) {
    await det.loadWeights(m.weights, m.weightsKey !== undefined ? { key: m.weightsKey } : {});
  }
  return det;
}

/**
 * Evaluation loader over the validation split: no shuffling, flips or resizing. With a shard
 * (data-parallel), each batch of batchSize x ranks images hands this rank its part.
 */
export function evalLoader(val: CocoDataset, batchSize: number, shard?: { rank: number; worldSize: number }): DataLoader {
  return new DataLoader(val, { batchSize: batchSize * (shard?.worldSize ?? 1), shuffle: false, train: false, resize: 'none', output: 'uint8', workers: 0, ...(shard ? { shard } : {}) });
}

/**
 * COCO bbox evaluation of a detector on the validation split, with its detections (COCO results
 * records). `distributed`: every rank of the job predicts its part of the images, the
 * detections are gathered (in image order) and rank 0 scores them; every rank gets the result.
 */
export async function evaluateModel(det: Detector, splits: Splits, config: Config, onBatch?: (done: number, total: number) => void, options: { distributed?: boolean } = {}): Promise<Summary & { detections: CocoDetection[] }> {
  const d = dist();
  const group = options.distributed && d.group ? d.group : null;
  const shard = group ? { rank: d.rank, worldSize: d.worldSize } : undefined;
  const loader = evalLoader(splits.val, config.evaluation.batchSize, shard);
  const total = Math.ceil(splits.val.length / (config.evaluation.batchSize * (shard?.worldSize ?? 1)));
  let done = 0;
  // This rank's detections, one array per batch of the job (in image order).
  const parts: CocoDetection[][] = [];
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
        for (const r of predictionsToResults(imageId, { boxes: p.boxes.data, scores: p.scores.data, labels: Array.from(p.labels.data, Number) }, { categoryIds: splits.categoryIds })) part.push(r);
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
    const score = () => scoreDetections(splits, detections);
    const summary = await fromMainRank('scoring detections', () => score());
    return { ...summary, detections };
  }
  detections = parts.flat();
  return { ...scoreDetections(splits, detections), detections };
}

function scoreDetections(splits: Splits, detections: CocoDetection[]): Summary {
  const gt = readJsonFile(splits.val.annotationFile);
  const evaluator = new CocoEvaluator(gt, { iouType: 'bbox', source: splits.val.annotationFile });
  // Image by image, as they were predicted.
  let from = 0;
  for (let i = 1; i <= detections.length; i++) {
    if (i === detections.length || (detections[i] as CocoDetection).image_id !== (detections[from] as CocoDetection).image_id) {
      const id = (detections[from] as CocoDetection).image_id;
      evaluator.addDetections(detections.slice(from, i), `predictions of image ${id}`);
      from = i;
    }
  }
  return evaluator.summarize();
}
