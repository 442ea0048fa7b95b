/**
 * Image/target transforms, applied identically to images, boxes and masks.
 *
 * Parity with torchvision 0.14's GeneralizedRCNNTransform (what RetinaNet uses):
 * - to_tensor: float32 x / 255; normalize: (x - mean) / std with ImageNet mean/std, in float32;
 * - resize: scale = min(min_size / min(h, w), max_size / max(h, w)) computed in float32 as torch
 *   does (reciprocal(min(h, w)) * min_size, two float32 roundings); output size
 *   floor(h * scale), floor(w * scale) (F.interpolate with recompute_scale_factor=True); the image is
 *   resampled bilinearly on the normalized float tensor with align_corners=False and no antialias,
 *   using the recomputed ratio in/out per axis (src = (dst + 0.5) * in/out - 0.5, clamped at 0);
 *   masks use nearest (src = min(floor(dst * in/out), in - 1)); boxes are multiplied by out/in per
 *   axis in float32. Values agree with torchvision to float rounding (see the golden test).
 * - batching: zero padding at the bottom/right up to a multiple of 32 of the largest H and W.
 * - horizontal flip (torchvision detection references): x1' = W - x2, x2' = W - x1.
 * Images are H x W x 3 uint8 (as decoded) before normalization and 3 x H x W float32 after.
 */
import type { Tensor } from '../tensor.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

const f = Math.fround;

/** An image as decoded: interleaved H x W x C uint8. */
export interface RawImage {
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** A normalized image: planar C x H x W float32. */
export interface PlanarImage {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

export interface ResizePlan {
  /** The scale torchvision computes (a float32 value). */
  scale: number;
  height: number;
  width: number;
}

/** torchvision's resize size for an h x w image given min_size and max_size. */
export function resizePlan(height: number, width: number, minSize: number, maxSize: number): ResizePlan {
  const lo = f(Math.min(height, width));
  const hi = f(Math.max(height, width));
  // torch evaluates `python_float / tensor` as tensor.reciprocal() * number, in float32
  const scale = Math.min(f(f(1 / lo) * f(minSize)), f(f(1 / hi) * f(maxSize)));
  return { scale, height: Math.floor(height * scale), width: Math.floor(width * scale) };
}

/** 256-entry lookup tables of normalized values per channel, computed in float32 as torchvision does. */
export function normalizeTables(mean: readonly number[] = IMAGENET_MEAN, std: readonly number[] = IMAGENET_STD): Float32Array[] {
  return mean.map((m, c) => {
    const t = new Float32Array(256);
    const mf = f(m);
    const sf = f(std[c] as number);
    for (let v = 0; v < 256; v++) t[v] = f(f(f(v / 255) - mf) / sf);
    return t;
  });
}

const DEFAULT_TABLES = normalizeTables();

/** HWC uint8 -> CHW float32 normalized ((x/255 - mean)/std). */
export function normalize(img: RawImage, tables: Float32Array[] = DEFAULT_TABLES): PlanarImage {
  const { height: H, width: W, channels: C, data } = img;
  if (C !== tables.length) throw new RangeError(`normalize: image has ${C} channels, mean/std have ${tables.length}`);
  const out = new Float32Array(C * H * W);
  const plane = H * W;
  for (let c = 0; c < C; c++) {
    const t = tables[c]!;
    const o = c * plane;
    for (let p = 0, q = c; p < plane; p++, q += C) out[o + p] = t[data[q]!]!;
  }
  return { data: out, height: H, width: W, channels: C };
}

/** Index/weight tables of one axis for bilinear resampling, align_corners=False (PyTorch CPU kernel). */
function linearAxis(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w0: Float32Array; w1: Float32Array } {
  const scale = f(inSize / outSize);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let src = f(f(scale * f(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const k = Math.trunc(src);
    const off = k < inSize - 1 ? 1 : 0;
    const l1 = f(src - k);
    i0[o] = k;
    i1[o] = k + off;
    w1[o] = l1;
    w0[o] = f(1 - l1);
  }
  return { i0, i1, w0, w1 };
}

/** Bilinear resize of a CHW float image (align_corners=False, no antialias), as F.interpolate. */
export function resizeBilinear(img: PlanarImage, outH: number, outW: number): PlanarImage {
  const { height: H, width: W, channels: C, data } = img;
  if (outH < 1 || outW < 1) throw new RangeError(`resize: output size ${outH}x${outW} must be at least 1x1`);
  if (outH === H && outW === W) return { ...img, data: data.slice() };
  const ys = linearAxis(H, outH);
  const xs = linearAxis(W, outW);
  const out = new Float32Array(C * outH * outW);
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    let o = c * outH * outW;
    for (let y = 0; y < outH; y++) {
      const r0 = base + ys.i0[y]! * W;
      const r1 = base + ys.i1[y]! * W;
      const h0 = ys.w0[y]!;
      const h1 = ys.w1[y]!;
      for (let x = 0; x < outW; x++) {
        const a = xs.i0[x]!;
        const b = xs.i1[x]!;
        const v0 = xs.w0[x]!;
        const v1 = xs.w1[x]!;
        out[o++] = h0 * (v0 * data[r0 + a]! + v1 * data[r0 + b]!) + h1 * (v0 * data[r1 + a]! + v1 * data[r1 + b]!);
      }
    }
  }
  return { data: out, height: outH, width: outW, channels: C };
}

/** Nearest resize of K masks (K x H x W uint8), as F.interpolate(mode='nearest'). */
export function resizeMasksNearest(masks: Uint8Array, K: number, H: number, W: number, outH: number, outW: number): Uint8Array {
  if (masks.length !== K * H * W) throw new RangeError(`masks: expected ${K}x${H}x${W} = ${K * H * W} bytes, got ${masks.length}`);
  const idx = (inSize: number, outSize: number): Int32Array => {
    const t = new Int32Array(outSize);
    if (inSize === outSize) for (let o = 0; o < outSize; o++) t[o] = o;
    else if (outSize === 2 * inSize) for (let o = 0; o < outSize; o++) t[o] = o >> 1;
    else {
      const s = f(inSize / outSize);
      for (let o = 0; o < outSize; o++) t[o] = Math.min(Math.floor(f(o * s)), inSize - 1);
    }
    return t;
  };
  const yi = idx(H, outH);
  const xi = idx(W, outW);
  const out = new Uint8Array(K * outH * outW);
  let o = 0;
  for (let k = 0; k < K; k++) {
    const base = k * H * W;
    for (let y = 0; y < outH; y++) {
      const row = base + yi[y]! * W;
      for (let x = 0; x < outW; x++) out[o++] = masks[row + xi[x]!]!;
    }
  }
  return out;
}

/** Scales xyxy boxes from an h x w image to an outH x outW one (in place), in float32 as torchvision. */
export function resizeBoxes(boxes: Float32Array, H: number, W: number, outH: number, outW: number): Float32Array {
  const rh = f(f(outH) / f(H));
  const rw = f(f(outW) / f(W));
  for (let i = 0; i < boxes.length; i += 4) {
    boxes[i] = f(boxes[i]! * rw);
    boxes[i + 1] = f(boxes[i + 1]! * rh);
    boxes[i + 2] = f(boxes[i + 2]! * rw);
    boxes[i + 3] = f(boxes[i + 3]! * rh);
  }
  return boxes;
}

/** Horizontal flip of an HWC image (new buffer). */
export function hflipImage(img: RawImage): RawImage {
  const { height: H, width: W, channels: C, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < H; y++) {
    const row = y * W * C;
    for (let x = 0; x < W; x++) {
      const s = row + x * C;
      const d = row + (W - 1 - x) * C;
      for (let c = 0; c < C; c++) out[d + c] = data[s + c]!;
    }
  }
  return { ...img, data: out };
}

/** Horizontal flip of xyxy boxes in an image of width W (in place). */
export function hflipBoxes(boxes: Float32Array, W: number): Float32Array {
  for (let i = 0; i < boxes.length; i += 4) {
    const x1 = boxes[i]!;
    boxes[i] = W - boxes[i + 2]!;
    boxes[i + 2] = W - x1;
  }
  return boxes;
}

/** Horizontal flip of K x H x W masks (new buffer): each row copied, then reversed in place (native). */
export function hflipMasks(masks: Uint8Array, K: number, H: number, W: number): Uint8Array {
  if (masks.length !== K * H * W) throw new RangeError(`masks: expected ${K}x${H}x${W} = ${K * H * W} bytes, got ${masks.length}`);
  const out = masks.slice();
  for (let r = 0; r < K * H; r++) out.subarray(r * W, (r + 1) * W).reverse();
  return out;
}

export interface Batch<D extends 'float32' | 'uint8' = 'float32'> {
  /** [N, C, Hp, Wp] ([N, Hp, Wp, C] for layout hwc), zero padded bottom/right, Hp and Wp multiples of the stride. */
  images: Tensor<D>;
  /** [N] sizes [h, w] of the images before padding (after resizing). */
  imageSizes: [number, number][];
}

type Planar<A> = { data: A; height: number; width: number; channels: number };

/**
 * Stacks CHW images into one zero-padded batch, as torchvision's batch_images(size_divisible):
 * (N, C, Hp, Wp). `hwc`: interleaved (h, w, C) images into (N, Hp, Wp, C), the same padding.
 * Row copies only.
 */
export function batchImages(images: readonly Planar<Float32Array>[], stride?: number): Batch<'float32'>;
export function batchImages(images: readonly Planar<Uint8Array>[], stride?: number, layout?: 'chw' | 'hwc'): Batch<'uint8'>;
export function batchImages(images: readonly Planar<Float32Array | Uint8Array>[], stride = 32, layout: 'chw' | 'hwc' = 'chw'): Batch<'float32' | 'uint8'> {
  if (images.length === 0) throw new RangeError('batchImages: no images');
  if (!Number.isInteger(stride) || stride < 1) throw new RangeError(`batchImages: stride must be a positive integer, got ${stride}`);
  const C = images[0]!.channels;
  const u8 = images[0]!.data instanceof Uint8Array;
  let Hp = 0;
  let Wp = 0;
  for (const [i, im] of images.entries()) {
    if (im.channels !== C) throw new RangeError(`batchImages: images[${i}] has ${im.channels} channels, images[0] has ${C}`);
    if (im.data instanceof Uint8Array !== u8) throw new RangeError(`batchImages: images[${i}] has a different dtype from images[0]`);
    if (im.data.length !== C * im.height * im.width) throw new RangeError(`batchImages: images[${i}] has ${im.data.length} values, expected ${C}x${im.height}x${im.width}`);
    Hp = Math.max(Hp, im.height);
    Wp = Math.max(Wp, im.width);
  }
  Hp = Math.ceil(Hp / stride) * stride;
  Wp = Math.ceil(Wp / stride) * stride;
  const N = images.length;
  const data = u8 ? new Uint8Array(N * C * Hp * Wp) : new Float32Array(N * C * Hp * Wp);
  const imageSizes = images.map((im) => [im.height, im.width] as [number, number]);
  if (layout === 'hwc') {
    if (!u8) throw new RangeError("batchImages: layout 'hwc' is for uint8 images");
    // (h, w, C) -> rows of w*C bytes at ((n*Hp + y)*Wp)*C
    images.forEach((im, n) => {
      const row = im.width * C;
      if (im.width === Wp) data.set(im.data, n * Hp * Wp * C);
      else for (let y = 0; y < im.height; y++) data.set(im.data.subarray(y * row, (y + 1) * row), (n * Hp + y) * Wp * C);
    });
    return { images: { dtype: 'uint8', shape: [N, Hp, Wp, C], data: data as Uint8Array }, imageSizes };
  }
  images.forEach((im, n) => {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < im.height; y++) {
        const src = (c * im.height + y) * im.width;
        data.set(im.data.subarray(src, src + im.width), ((n * C + c) * Hp + y) * Wp);
      }
    }
  });
  const shape = [N, C, Hp, Wp];
  return u8 ? { images: { dtype: 'uint8', shape, data: data as Uint8Array }, imageSizes } : { images: { dtype: 'float32', shape, data: data as Float32Array }, imageSizes };
}
