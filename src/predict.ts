/** Image files in, COCO-style detections out (what `mtpd predict` prints). */
import { encode, toCompressed, type CompressedRle } from './coco/mask.js';
import { MtpdError } from './errors.js';
import { createDetector, type DetectorConfig } from './detector.js';
import { setThreads } from './runtime.js';
import { type Tensor, toNumbers } from './tensor.js';

export interface PredictOptions {
  arch: string;
  numClasses: number;
  weights: string;
  files: string[];
  device?: string;
  threads?: number;
  scoreThresh?: number;
  minSize?: number;
  maxSize?: number;
  widthMult?: number;
  /** Images per native call. */
  batchSize?: number;
}

export interface CocoDetection {
  file: string;
  /** [x, y, w, h] in original image pixels. */
  bbox: [number, number, number, number];
  score: number;
  category_id: number;
  /** Mask R-CNN: the mask binarized at 0.5, as COCO's compressed RLE (what `segm` evaluation reads). */
  segmentation?: CompressedRle;
}

/** Detection k's mask of (D, 1, H, W) probabilities, binarized at >= 0.5, as a compressed RLE. */
export function maskToRle(masks: Tensor, k: number): CompressedRle {
  const [, , h, w] = masks.shape as [number, number, number, number];
  const data = masks.data as Float32Array;
  const bin = new Uint8Array(h * w);
  const off = k * h * w;
  for (let i = 0; i < h * w; i++) bin[i] = (data[off + i] as number) >= 0.5 ? 1 : 0;
  return toCompressed(encode(bin, h, w));
}

/** Decodes an image file to a (H, W, 3) uint8 tensor (EXIF orientation applied, alpha dropped). */
export async function decodeImage(file: string): Promise<Tensor<'uint8'>> {
  const sharp = (await import('sharp')).default;
  try {
    const { data, info } = await sharp(file).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { dtype: 'uint8', shape: [info.height, info.width, 3], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    throw new MtpdError('ERR_MTPD_DATA', `${file}: cannot decode image (${(err as Error).message})`);
  }
}

export async function predictFiles(o: PredictOptions): Promise<CocoDetection[]> {
  if (o.threads !== undefined) setThreads(o.threads);
  else setThreads(0);
  const config: DetectorConfig = { arch: o.arch, numClasses: o.numClasses, device: o.device ?? 'cpu' };
  if (o.scoreThresh !== undefined) config.scoreThresh = o.scoreThresh;
  if (o.minSize !== undefined) config.minSize = o.minSize;
  if (o.maxSize !== undefined) config.maxSize = o.maxSize;
  if (o.widthMult !== undefined) config.widthMult = o.widthMult;
  const det = await createDetector(config);
  await det.loadWeights(o.weights, { strict: true });
  await det.eval();
  const out: CocoDetection[] = [];
  const bs = Math.max(1, o.batchSize ?? 1);
  for (let i = 0; i < o.files.length; i += bs) {
    const files = o.files.slice(i, i + bs);
    const images = await Promise.all(files.map(decodeImage));
    let dets: Awaited<ReturnType<typeof det.predict>>;
    try {
      dets = await det.predict(images);
    } catch (err) {
      // The native message counts images of the batch ("images[0] of size 1x20000 resizes to
      // nothing"); name the files.
      if (err instanceof Error) err.message = `${files.join(', ')}: ${err.message}`;
      throw err;
    }
    dets.forEach((d, j) => {
      const boxes = toNumbers(d.boxes);
      const scores = toNumbers(d.scores);
      const labels = toNumbers(d.labels);
      for (let k = 0; k < scores.length; k++) {
        const x1 = boxes[4 * k] as number;
        const y1 = boxes[4 * k + 1] as number;
        const x2 = boxes[4 * k + 2] as number;
        const y2 = boxes[4 * k + 3] as number;
        const r: CocoDetection = { file: files[j] as string, bbox: [x1, y1, x2 - x1, y2 - y1], score: scores[k] as number, category_id: labels[k] as number };
        if (d.masks) r.segmentation = maskToRle(d.masks, k);
        out.push(r);
      }
    });
  }
  return out;
}
