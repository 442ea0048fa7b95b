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

/** Evaluation loader over the validation split: no shuffling, flips or resizing; decoding in `workers` threads (data.workers). */
export function evalLoader(val: CocoDataset, batchSize: number, workers = 0): DataLoader {
  return new DataLoader(val, { batchSize, shuffle: false, train: false, resize: 'none', output: 'uint8', workers });
}

/** COCO bbox evaluation of a detector on the validation split, with its detections (COCO results records). */
export async function evaluateModel(det: Detector, splits: Splits, config: Config, onBatch?: (done: number, total: number) => void): Promise<Summary & { detections: CocoDetection[] }> {
  const gt = readJsonFile(splits.val.annotationFile);
  const evaluator = new CocoEvaluator(gt, { iouType: 'bbox', source: splits.val.annotationFile });
  const loader = evalLoader(splits.val, config.evaluation.batchSize, config.data.workers);
  const total = Math.ceil(splits.val.length / config.evaluation.batchSize);
  let done = 0;
  const detections: CocoDetection[] = [];
  try {
    await det.eval();
    for await (const batch of loader.epoch()) {
      const { images } = detectorInputs(batch);
      const dets = await det.predict(images);
      dets.forEach((d, i) => {
        const imageId = batch.imageIds[i] as number;
        const recs = predictionsToResults(imageId, { boxes: d.boxes.data, scores: d.scores.data, labels: Array.from(d.labels.data, Number) }, { categoryIds: splits.categoryIds });
        evaluator.addDetections(recs, `predictions of image ${imageId}`);
        for (const r of recs) detections.push(r);
      });
      onBatch?.(++done, total);
    }
  } finally {
    await loader.close();
  }
  return { ...evaluator.summarize(), detections };
}
