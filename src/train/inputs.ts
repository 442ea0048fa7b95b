/**
 * From a loader batch (uint8, not resized: the detectors resize and normalize themselves, as
 * torchvision's GeneralizedRCNNTransform does) to what a detector takes: one image per sample,
 * cut out of the padded batch, and its targets. A uint8 batch stays uint8 (the addon converts to
 * float32 / 255, (h, w, 3) to (3, h, w), on its compute thread, as torchvision's ToTensor does);
 * a float32 batch is cut as it is. An `hwc` batch gives (h, w, 3) images, a `chw` one (3, h, w).
 * The cut is a row copy (per channel for chw), never a loop over pixels.
 */
import type { LoaderBatch } from '../data/loader.js';
import type { Target } from '../detector.js';
import type { Tensor } from '../tensor.js';

/**
 * `modelLabels` (dataset label -> model label, for a model whose classes are not the dataset's
 * own, see class-map.ts) renumbers the targets' labels.
 */
export function detectorInputs(batch: Pick<LoaderBatch, 'images' | 'imageSizes' | 'targets'> & { layout?: LoaderBatch['layout'] }, modelLabels?: Int32Array): { images: Tensor<'float32' | 'uint8'>[]; targets: Target[] } {
  const images = batch.layout === 'hwc' ? cutHwc(batch.images as Tensor<'uint8'>, batch.imageSizes) : cutChw(batch.images, batch.imageSizes);
  // masks travel only when the loader made them (runs with a Mask R-CNN)
  const targets = batch.targets.map((t) => {
    const labels = modelLabels ? relabel(t.labels, modelLabels) : t.labels;
    return t.masks ? { boxes: t.boxes, labels, masks: t.masks } : { boxes: t.boxes, labels };
  });
  return { images, targets };
}

/**
 * [h, w] of a detector input, as the addon reads it: uint8 (h, w, 3) is interleaved, anything
 * else (3, h, w).
 */
export function imageHW(t: Tensor): [number, number] {
  const s = t.shape;
  if (s.length !== 3) throw new RangeError(`expected a 3-d image, got shape [${s.join(', ')}]`);
  return t.dtype === 'uint8' && s[2] === 3 ? [s[0] as number, s[1] as number] : [s[1] as number, s[2] as number];
}

/** (N, Hp, Wp, C) uint8 -> one (h, w, C) image per sample: rows of w*C bytes (one copy when w = Wp). */
function cutHwc(batch: Tensor<'uint8'>, sizes: [number, number][]): Tensor<'uint8'>[] {
  const [n, hp, wp, c] = batch.shape as [number, number, number, number];
  const src = batch.data;
  const images: Tensor<'uint8'>[] = [];
  for (let i = 0; i < n; i++) {
    const [h, w] = sizes[i] as [number, number];
    const base = i * hp * wp * c;
    const out = w === wp ? src.slice(base, base + h * w * c) : new Uint8Array(h * w * c);
    if (w !== wp) for (let y = 0; y < h; y++) out.set(src.subarray(base + y * wp * c, base + (y * wp + w) * c), y * w * c);
    images.push({ dtype: 'uint8', shape: [h, w, c], data: out });
  }
  return images;
}

function cutChw(batch: Tensor<'float32'> | Tensor<'uint8'>, sizes: [number, number][]): Tensor<'float32' | 'uint8'>[] {
  const [n, c, hp, wp] = batch.shape as [number, number, number, number];
  const src = batch.data as Uint8Array | Float32Array;
  const images: Tensor<'float32' | 'uint8'>[] = [];
  for (let i = 0; i < n; i++) {
    const [h, w] = sizes[i] as [number, number];
    // (N, C, Hp, Wp) -> (C, h, w): the image's top-left h x w of each plane.
    const out = src instanceof Uint8Array ? new Uint8Array(c * h * w) : new Float32Array(c * h * w);
    if (w === wp) {
      for (let ch = 0; ch < c; ch++) out.set(src.subarray((i * c + ch) * hp * wp, ((i * c + ch) * hp + h) * wp), ch * h * w);
    } else {
      for (let ch = 0; ch < c; ch++)
        for (let y = 0; y < h; y++) {
          const from = ((i * c + ch) * hp + y) * wp;
          out.set(src.subarray(from, from + w), (ch * h + y) * w);
        }
    }
    images.push(out instanceof Uint8Array ? { dtype: 'uint8', shape: [c, h, w], data: out } : { dtype: 'float32', shape: [c, h, w], data: out });
  }
  return images;
}

/** (K) int64 dataset labels -> (K) int64 model labels; a label without a model class is an error. */
function relabel(labels: Tensor<'int64'>, modelLabels: Int32Array): Tensor<'int64'> {
  const src = labels.data as BigInt64Array;
  const out = new BigInt64Array(src.length);
  for (let k = 0; k < src.length; k++) {
    const l = modelLabels[Number(src[k])];
    if (l === undefined || l < 0) throw new RangeError(`target label ${src[k]} has no class in the model (see the model's classes)`);
    out[k] = BigInt(l);
  }
  return { dtype: 'int64', shape: [src.length], data: out };
}
