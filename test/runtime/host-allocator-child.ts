// Child of host-allocator.test.ts: a ResNet-18 RetinaNet at 512 px (buffers of 1 MiB and up, the
// cached ones) runs a train step and inference; prints its results and the allocator's figures.
import { createDetector, hostMemory, setSeed, setThreads, type Tensor } from '../../src/index.js';

setThreads(1);
setSeed(7);
const size = 512;
const images: Tensor[] = [0, 1].map((k) => {
  const data = new Float32Array(3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761 + k * 97) % 1000) / 1000;
  return { dtype: 'float32', shape: [3, size, size], data };
});
const targets = [0, 1].map((k) => ({ boxes: [[40 + k, 60, 200, 220], [300, 100, 420, 380 - k]], labels: [1, 2] }));
const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, minSize: size, maxSize: size, trainableLayers: 3 });
const opt = await det.createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9 });
const losses = await det.trainStep(opt, images, targets);
await det.eval();
const out = await det.run(images, null, { detections: true });
console.log(JSON.stringify({ losses, detections: out.detections, memory: hostMemory() }));
