/**
 * Preparing one sample: decode (sharp), check, flip, normalize, resize, masks. Runs in loader
 * worker threads or on the calling thread; a pure function of its job, so results do not depend on
 * which thread prepares them.
 *
 * The `hwc` layout (what training, evaluation and the cost matrix use: uint8, not resized, the
 * detector resizing and normalizing on its own compute thread) is sharp's decoded buffer as it
 * is, the flip done by sharp too (`flop`, an exact mirror), so no JavaScript touches a pixel; the
 * decode runs on libuv's thread pool, off the main thread, with or without loader workers.
 */
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import { annToRle, decode } from '../coco/mask.js';
import type { BadDataKind } from './baddata.js';
import type { CocoSegmentation } from './coco.js';
import {
  hflipBoxes,
  hflipImage,
  hflipMasks,
  normalize,
  normalizeTables,
  resizeBilinear,
  resizeBoxes,
  resizeMasksNearest,
  resizePlan,
  type PlanarImage,
  type RawImage,
} from './transforms.js';

export interface SampleJob {
  /** Position of the sample in its epoch and its dataset index (echoed back). */
  position: number;
  index: number;
  imageId: number;
  path: string;
  /** Size declared in the annotation file. */
  width: number;
  height: number;
  boxes: Float32Array;
  labels: Int32Array;
  /** Segmentations for masks, or null for no masks. */
  segmentations: (CocoSegmentation | null)[] | null;
  flip: boolean;
  /** 'torchvision' resizes as GeneralizedRCNNTransform; 'none' keeps the decoded size. */
  resize: 'torchvision' | 'none';
  minSize: number;
  maxSize: number;
  /** float32: normalized with ImageNet mean/std; uint8: resized 0..255 values, not normalized. */
  output: 'float32' | 'uint8';
  /**
   * chw (default): planar C x h x w; hwc: interleaved h x w x C as decoded (uint8 with resize
   * 'none' only: sharp's buffer itself, flipped by sharp).
   */
  layout?: 'chw' | 'hwc';
}

export interface PreparedSample {
  position: number;
  index: number;
  imageId: number;
  /** C x h x w (layout chw), float32 normalized or uint8; h x w x C (layout hwc), uint8. */
  image: { data: Float32Array | Uint8Array; height: number; width: number; channels: number };
  originalSize: [number, number];
  boxes: Float32Array;
  labels: Int32Array;
  /** K x h x w, or null. */
  masks: Uint8Array | null;
  flipped: boolean;
  /** Set when the image could not be used (the loader decides: error or counted skip). */
  bad?: { kind: BadDataKind; message: string };
}

const IDENTITY_TABLES = normalizeTables([0, 0, 0], [1 / 255, 1 / 255, 1 / 255]);

async function decodeImage(job: SampleJob, flop = false): Promise<RawImage | { kind: BadDataKind; message: string }> {
  const where = `${job.path} (image id ${job.imageId})`;
  try {
    // No .rotate(): EXIF orientation is left alone, as COCO's annotations expect. flop: mirrored
    // left-right by libvips (the same bytes as hflipImage).
    const { data, info } = await sharp(job.path, { failOn: 'warning' }).removeAlpha().toColourspace('srgb').flop(flop).raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) return { kind: 'unreadable-image', message: `${where}: decoded to ${info.channels} channels, expected 3` };
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width, channels: 3 };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Missing or not: asked of the file system, not read from the message (libvips keeps one
    // error buffer for all threads, so a decode that fails beside a missing file can carry its
    // "does not exist" text).
    const isFile = await stat(job.path).then((st) => st.isFile(), () => false);
    if (!isFile) return { kind: 'missing-image-file', message: `${where}: image file not found` };
    return { kind: 'unreadable-image', message: `${where}: cannot decode image (${err.message.split('\n')[0]})` };
  }
}

function masksOf(job: SampleJob, H: number, W: number): Uint8Array {
  const segs = job.segmentations ?? [];
  const out = new Uint8Array(segs.length * H * W);
  segs.forEach((seg, k) => {
    if (seg === null) {
      // no segmentation: the box, filled
      const b = job.boxes;
      const x0 = Math.max(0, Math.floor(b[4 * k]!));
      const y0 = Math.max(0, Math.floor(b[4 * k + 1]!));
      const x1 = Math.min(W, Math.ceil(b[4 * k + 2]!));
      const y1 = Math.min(H, Math.ceil(b[4 * k + 3]!));
      for (let y = y0; y < y1; y++) out.fill(1, k * H * W + y * W + x0, k * H * W + y * W + x1);
      return;
    }
    out.set(decode(annToRle(seg as never, H, W)), k * H * W);
  });
  return out;
}

export async function prepareSample(job: SampleJob): Promise<PreparedSample> {
  const empty = (bad: { kind: BadDataKind; message: string }): PreparedSample => ({
    position: job.position,
    index: job.index,
    imageId: job.imageId,
    image: { data: new Float32Array(0), height: 0, width: 0, channels: 3 },
    originalSize: [job.height, job.width],
    boxes: new Float32Array(0),
    labels: new Int32Array(0),
    masks: null,
    flipped: false,
    bad,
  });
  const hwc = job.layout === 'hwc';
  if (hwc && (job.output !== 'uint8' || job.resize !== 'none')) {
    throw new RangeError(`prepareSample: layout 'hwc' needs output 'uint8' and resize 'none' (got ${job.output}, ${job.resize})`);
  }
  // hwc: sharp flips while it decodes; chw: the flip below (the planar path converts anyway)
  const decoded = await decodeImage(job, hwc && job.flip);
  if (!('data' in decoded)) return empty(decoded);
  let raw = decoded;
  const H = raw.height;
  const W = raw.width;
  if (H !== job.height || W !== job.width) {
    return empty({ kind: 'image-size-mismatch', message: `${job.path} (image id ${job.imageId}): decoded size ${W}x${H} differs from the annotation file's ${job.width}x${job.height}` });
  }
  const K = job.labels.length;
  let boxes: Float32Array = job.boxes.slice();
  let masks: Uint8Array | null = job.segmentations ? masksOf(job, H, W) : null;
  if (job.flip) {
    if (!hwc) raw = hflipImage(raw);
    boxes = hflipBoxes(boxes, W);
    if (masks) masks = hflipMasks(masks, K, H, W);
  }
  if (hwc) {
    return {
      position: job.position,
      index: job.index,
      imageId: job.imageId,
      image: { data: raw.data, height: H, width: W, channels: 3 },
      originalSize: [H, W],
      boxes,
      labels: job.labels.slice(),
      masks,
      flipped: job.flip,
    };
  }
  let img: PlanarImage = normalize(raw, job.output === 'uint8' ? IDENTITY_TABLES : undefined);
  if (job.resize === 'torchvision') {
    const plan = resizePlan(H, W, job.minSize, job.maxSize);
    img = resizeBilinear(img, plan.height, plan.width);
    boxes = resizeBoxes(boxes, H, W, plan.height, plan.width);
    if (masks) masks = resizeMasksNearest(masks, K, H, W, plan.height, plan.width);
  }
  let data: Float32Array | Uint8Array = img.data;
  if (job.output === 'uint8') {
    const u = new Uint8Array(img.data.length);
    for (let i = 0; i < u.length; i++) {
      const v = img.data[i]!;
      u[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    }
    data = u;
  }
  return {
    position: job.position,
    index: job.index,
    imageId: job.imageId,
    image: { data, height: img.height, width: img.width, channels: 3 },
    originalSize: [H, W],
    boxes,
    labels: job.labels.slice(),
    masks,
    flipped: job.flip,
  };
}

/** Buffers of a prepared sample that can be transferred between threads. */
export function transferList(s: PreparedSample): ArrayBuffer[] {
  const list = [s.image.data.buffer, s.boxes.buffer, s.labels.buffer];
  if (s.masks) list.push(s.masks.buffer);
  return [...new Set(list)] as ArrayBuffer[];
}
