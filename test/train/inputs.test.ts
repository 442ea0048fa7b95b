// The training and evaluation input path (src/train/inputs.ts with the loader's 'hwc' layout):
// a detector given the decoder's (h, w, 3) bytes computes exactly what it computes from the
// planar (3, h, w) bytes of the same images: the same losses and the same features, bit for bit.
import t from 'tap';
import { join } from 'node:path';
import { CocoDataset } from '../../src/data/coco.js';
import { DataLoader } from '../../src/data/loader.js';
import { writeSynthDataset } from '../../src/data/synth.js';
import { createDetector } from '../../src/detector.js';
import { detectorInputs, imageHW } from '../../src/train/inputs.js';
import { haveAddon, tempDir } from '../helpers.js';

t.test("a detector on 'hwc' inputs: the same losses and maps as on 'chw'", async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  await writeSynthDataset({ out: dir, images: 4, valImages: 1, size: 80, seed: 2, workers: 0 });
  const ds = await CocoDataset.load({ annotationFile: join(dir, 'instances_train.json'), imageDir: join(dir, 'train') });
  const opts = { batchSize: 3, seed: 5, workers: 0, resize: 'none', output: 'uint8', flipProb: 0.5 } as const;
  const a = new DataLoader(ds, opts);
  const b = new DataLoader(ds, { ...opts, layout: 'hwc' });
  const ba = await a.next();
  const bb = await b.next();
  await a.close();
  await b.close();
  const chw = detectorInputs(ba);
  const hwc = detectorInputs(bb);
  t.same(hwc.images.map(imageHW), chw.images.map(imageHW), 'imageHW reads both layouts');
  const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: 0.125, minSize: 64, maxSize: 96 });
  await det.train();
  t.same(await det.losses(hwc.images, hwc.targets), await det.losses(chw.images, chw.targets), 'losses, exactly');
  await det.eval();
  const fa = await det.features(chw.images);
  const fb = await det.features(hwc.images);
  for (const k of Object.keys(fa)) t.ok(Buffer.from(fa[k]!.data.buffer).equals(Buffer.from(fb[k]!.data.buffer)), `${k}: the same bytes`);
  await det.dispose();
});
