/**
 * The fixed training subset the analysis measures losses on: `size` training images drawn by a
 * seeded shuffle, as the detectors take them in evaluation (no flips, no multi-scale, the
 * detector's own resize), held in memory in fixed batches so every loss is on the same data.
 */
import type { CocoDataset } from '../data/coco.js';
import { DataLoader } from '../data/loader.js';
import type { Target } from '../detector.js';
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { detectorInputs } from '../train/inputs.js';

export interface SubsetBatch {
  images: Tensor<'float32' | 'uint8'>[];
  targets: Target[];
  imageIds: number[];
}

export interface TrainSubset {
  batches: SubsetBatch[];
  /** Images in all batches. */
  size: number;
  imageIds: number[];
}

export async function loadTrainSubset(train: CocoDataset, options: { size: number; seed: number; batchSize: number }): Promise<TrainSubset> {
  const { size, seed, batchSize } = options;
  if (!Number.isInteger(size) || size < 1) throw new MtpdError('ERR_MTPD_ARGUMENT', `subset: size must be an integer >= 1, got ${size}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new MtpdError('ERR_MTPD_ARGUMENT', `subset: batchSize must be an integer >= 1, got ${batchSize}`);
  const n = Math.min(size, train.length);
  const loader = new DataLoader(train, { batchSize, shuffle: true, seed, train: false, resize: 'none', output: 'uint8', layout: 'hwc', workers: 0 });
  const batches: SubsetBatch[] = [];
  let got = 0;
  try {
    for await (const batch of loader.epoch()) {
      const { images, targets } = detectorInputs(batch);
      const take = Math.min(images.length, n - got);
      batches.push({ images: images.slice(0, take), targets: targets.slice(0, take), imageIds: batch.imageIds.slice(0, take) });
      got += take;
      if (got >= n) break;
    }
  } finally {
    await loader.close();
  }
  return { batches, size: got, imageIds: batches.flatMap((b) => b.imageIds) };
}
