/**
 * Data: COCO-format datasets, transforms with torchvision parity, the batched loader, and the
 * synthetic demo dataset.
 */
export { CocoDataset, type CocoDatasetOptions, type CocoSegmentation, type ImageRecord, type ImageTargets } from './coco.js';
export { CategoryMap, type CocoCategory } from './categories.js';
export { BadDataLog, type BadDataKind, type BadDataPolicy } from './baddata.js';
export { streamTopLevelJson, TopLevelJsonStream, type TopLevelHandlers } from './jsonstream.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  batchImages,
  hflipBoxes,
  hflipImage,
  hflipMasks,
  normalize,
  normalizeTables,
  resizeBilinear,
  resizeBoxes,
  resizeMasksNearest,
  resizePlan,
  type Batch,
  type PlanarImage,
  type RawImage,
  type ResizePlan,
} from './transforms.js';
export { prepareSample, type PreparedSample, type SampleJob } from './pipeline.js';
export { DataLoader, type LoaderBatch, type LoaderOptions, type LoaderPosition, type Target } from './loader.js';
export { Rng, deriveRng, type RngState } from './rng.js';
export { SYNTH_CATEGORIES, synthImage, writeSynthDataset, type SynthOptions, type SynthSummary, type SynthImage, type SynthAnnotation } from './synth.js';
