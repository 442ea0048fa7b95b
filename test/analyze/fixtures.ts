/** Tiny detectors and inputs for the analysis tests. */
import { createDetector, type Detector, type Target } from '../../src/detector.js';
import type { Tensor } from '../../src/tensor.js';
import { mulberry32 } from '../helpers.js';

/** The demo student's kind at test size: ResNet-18 FPN, trainable BatchNorm, GroupNorm head. */
export async function tinyDetector(seed = 0): Promise<Detector> {
  const { setSeed } = await import('../../src/runtime.js');
  setSeed(seed);
  return createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64, normLayer: 'bn', trainableLayers: 5, options: { head_norm: 'gn', anchor_sizes: [8, 16, 32, 64, 128] } });
}

/** A smaller one for explicit Hessians: one class, 16-channel FPN, a head without norm layers (its convs have biases). */
export async function plainDetector(seed = 0): Promise<Detector> {
  const { setSeed } = await import('../../src/runtime.js');
  setSeed(seed);
  return createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 1, widthMult: 0.0625, minSize: 64, maxSize: 64, normLayer: 'bn', trainableLayers: 5, options: { anchor_sizes: [8, 16, 32, 64, 128] } });
}

/** Two 64x64 images with a bright box each, and the boxes as targets. */
export function tinyBatch(seed = 1, classes = 2): { images: Tensor<'float32'>[]; targets: Target[] } {
  const rnd = mulberry32(seed);
  const images: Tensor<'float32'>[] = [];
  const targets: Target[] = [];
  for (let n = 0; n < 2; n++) {
    const data = new Float32Array(3 * 64 * 64);
    for (let i = 0; i < data.length; i++) data[i] = 0.3 * rnd();
    const x0 = 8 + Math.floor(20 * rnd()), y0 = 8 + Math.floor(20 * rnd()), s = 16 + Math.floor(12 * rnd());
    for (let c = 0; c < 3; c++) for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) data[(c * 64 + y) * 64 + x] = c === n ? 0.9 : 0.2;
    images.push({ dtype: 'float32', shape: [3, 64, 64], data });
    targets.push({ boxes: [[x0, y0, x0 + s, y0 + s]], labels: [n % classes] });
  }
  return { images, targets };
}
