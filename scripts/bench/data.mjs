// Input pipeline throughput (import from dist/: run `npm run build:ts` first, or `npm run bench data`).
//
// 1. Annotation reading: the streaming COCO reader against JSON.parse of the whole file (the
//    reference; it cannot read files beyond V8's ~512 MB string limit, the reader can).
// 2. Images per second decoded and transformed, per core, against sharp's bare decode of the
//    same files (the reference), for the demo dataset (224 px PNG) and COCO-like 640x480 JPEGs
//    resized as torchvision does (min 800, max 1333).
// 3. mtpd's own training and evaluation input paths on the COCO-like JPEGs (the loader's 'hwc'
//    layout: decode on libuv's threads, flip by sharp, batch and per-image cut by row copies; the
//    resize to 800 px and the normalization run on the detector's compute thread, inside the step)
//    in images per second per core, next to what one training step of a full-width R50 at 800 px
//    (batch 2, one thread, CPU seconds) consumes per core.
// 4. The DataLoader end to end with 0..N worker threads, against what a training step consumes
//    (batch / step time) for a range of step times.
// Environment: MTPD_BENCH_STEP_MS="120,400" (ms per step of your model), MTPD_BENCH_BATCH=8,
// MTPD_BENCH_R50=0 to skip the R50 step (about a minute on one core).
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { CocoDataset, DataLoader, prepareSample, writeSynthDataset, synthImage, deriveRng } from '../../dist/data/index.js';
import { batchImages } from '../../dist/data/transforms.js';
import { detectorInputs } from '../../dist/train/inputs.js';

const root = mkdtempSync(path.join(tmpdir(), 'mtpd-bench-data-'));
const cores = availableParallelism();
const now = () => Number(process.hrtime.bigint()) / 1e6;
const fmt = (v, d = 1) => v.toFixed(d).padStart(8);

try {
  // ---- 1. annotations
  const big = path.join(root, 'big.json');
  const nImages = 5000;
  const nAnn = 300_000;
  await new Promise((resolve, reject) => {
    const out = createWriteStream(big);
    out.on('error', reject);
    out.write('{"info": {}, "images": [');
    for (let i = 0; i < nImages; i++) out.write(`${i ? ',' : ''}{"id": ${i + 1}, "file_name": "${String(i + 1).padStart(12, '0')}.jpg", "width": 640, "height": 480}`);
    out.write('], "annotations": [');
    let s = '';
    for (let a = 0; a < nAnn; a++) {
      const x = (a * 13) % 600;
      const y = (a * 7) % 440;
      const poly = [];
      for (let k = 0; k < 12; k++) poly.push((x + 20 + 15 * Math.cos(k / 2)).toFixed(2), (y + 20 + 15 * Math.sin(k / 2)).toFixed(2));
      s += `${a ? ',' : ''}{"segmentation": [[${poly.join(',')}]], "area": 700.5, "iscrowd": 0, "image_id": ${(a % nImages) + 1}, "bbox": [${x}, ${y}, 35.5, 35.5], "category_id": ${1 + (a % 80)}, "id": ${a + 1}}`;
      if (s.length > 1 << 16) {
        out.write(s);
        s = '';
      }
    }
    out.write(s);
    out.write('], "categories": [');
    for (let c = 1; c <= 80; c++) out.write(`${c > 1 ? ',' : ''}{"id": ${c}, "name": "c${c}"}`);
    out.end(']}', resolve);
  });
  const mb = statSync(big).size / 2 ** 20;
  let t0 = now();
  const parsed = JSON.parse(readFileSync(big, 'utf8'));
  const refMs = now() - t0;
  const refHeap = process.memoryUsage().heapUsed;
  void parsed.annotations.length;
  t0 = now();
  const ds = await CocoDataset.load({ annotationFile: big, imageDir: root });
  const ms = now() - t0;
  console.log(`annotations (${mb.toFixed(0)} MB, ${nAnn} annotations): streaming reader ${fmt(ms, 0)} ms (${(mb / (ms / 1000)).toFixed(0)} MB/s), JSON.parse of the whole file ${fmt(refMs, 0)} ms -> ${(ms / refMs).toFixed(2)}x the time`);
  console.log(`  held: ${(ds.byteSize / 2 ** 20).toFixed(1)} MB of typed arrays vs ~${(refHeap / 2 ** 20).toFixed(0)} MB of heap after JSON.parse`);

  // ---- 2. per-core decode + transform
  const synth = path.join(root, 'synth');
  t0 = now();
  const sum = await writeSynthDataset({ out: synth, images: 160, valImages: 1, size: 224, seed: 1 });
  const genMs = now() - t0;
  console.log(`\nmtpd data synth: ${fmt((161 / genMs) * 1000)} images/s (${sum.splits[0].annotations} annotations, ${Math.min(4, cores)} workers)`);
  t0 = now();
  for (let i = 0; i < 40; i++) synthImage(deriveRng(1, 0, i), 224);
  console.log(`  drawing alone (one thread): ${fmt((40 / (now() - t0)) * 1000)} images/s`);

  const train = await CocoDataset.load({ annotationFile: path.join(synth, 'instances_train.json'), imageDir: path.join(synth, 'train') });
  // COCO-like JPEGs: 640x480 renders of the same generator
  const coco = path.join(root, 'coco');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(coco);
  const jpgs = [];
  for (let i = 0; i < 24; i++) {
    const im = synthImage(deriveRng(9, 0, i), 640);
    const f = path.join(coco, `${i}.jpg`);
    writeFileSync(f, await sharp(im.rgb, { raw: { width: im.width, height: im.height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
    jpgs.push({ path: f, width: im.width, height: im.height, anns: im.annotations.filter((a) => !a.iscrowd) });
  }

  const job = (p, w, h, anns, i, opts) => ({
    position: i, index: i, imageId: i + 1, path: p, width: w, height: h,
    boxes: Float32Array.from(anns.flatMap((a) => [a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]])),
    labels: Int32Array.from(anns.map((a) => a.category_id - 1)),
    segmentations: opts.masks ? anns.map((a) => a.segmentation) : null,
    flip: i % 2 === 0, resize: 'torchvision', minSize: opts.minSize, maxSize: opts.maxSize, output: 'float32',
  });
  const cases = [
    { name: 'demo 224px PNG -> min 224', files: Array.from({ length: 60 }, (_, i) => { const im = train.image(i); const tg = train.targets(i); return { path: im.path, width: im.width, height: im.height, anns: Array.from(tg.labels, (l, k) => ({ category_id: l + 1, bbox: [tg.boxes[4 * k], tg.boxes[4 * k + 1], tg.boxes[4 * k + 2] - tg.boxes[4 * k], tg.boxes[4 * k + 3] - tg.boxes[4 * k + 1]], segmentation: tg.segmentations[k] })) }; }), minSize: 224, maxSize: 400 },
    { name: 'COCO-like 640x480 JPEG -> min 800', files: jpgs, minSize: 800, maxSize: 1333 },
  ];
  console.log('\nper core (one thread)                images/s   sharp decode only   ratio (pipeline / decode)');
  for (const c of cases) {
    t0 = now();
    for (const f of c.files) await sharp(f.path).removeAlpha().toColourspace('srgb').raw().toBuffer();
    const decode = (c.files.length / (now() - t0)) * 1000;
    for (const masks of [false, true]) {
      t0 = now();
      for (let i = 0; i < c.files.length; i++) {
        const f = c.files[i];
        await prepareSample(job(f.path, f.width, f.height, f.anns, i, { masks, minSize: c.minSize, maxSize: c.maxSize }));
      }
      const ips = (c.files.length / (now() - t0)) * 1000;
      console.log(`  ${(c.name + (masks ? ' + masks' : '')).padEnd(38)} ${fmt(ips)}   ${fmt(decode)}            ${(ips / decode).toFixed(2)}x`);
    }
  }

  // ---- 3. mtpd's training / evaluation input paths, and what an R50 step at 800 px consumes
  const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e3; };
  console.log('\nmtpd input paths, COCO-like 640x480 JPEG (for 800 px: the detector resizes on its compute thread), one core');
  const pathRates = {};
  for (const [name, flip] of [['training (flip 1 in 2)', true], ['evaluation', false]]) {
    const reps = 3;
    t0 = now();
    const c0 = cpu();
    let pixelsJs = 0;
    for (let r = 0; r < reps; r++) {
      for (let i = 0; i < jpgs.length; i += 2) {
        const pair = jpgs.slice(i, i + 2);
        const samples = await Promise.all(pair.map((f, k) => prepareSample({ ...job(f.path, f.width, f.height, f.anns, i + k, { masks: false, minSize: 800, maxSize: 1333 }), flip: flip && (i + k) % 2 === 0, resize: 'none', output: 'uint8', layout: 'hwc' })));
        const b = batchImages(samples.map((x) => x.image), 32, 'hwc');
        const { images } = detectorInputs({ images: b.images, imageSizes: b.imageSizes, targets: [], layout: 'hwc' });
        pixelsJs += images.length;
      }
    }
    const n = reps * jpgs.length;
    const wall = now() - t0;
    const used = cpu() - c0;
    // one core's worth: images per CPU second (main thread and libuv's decode threads together)
    pathRates[name] = (n / used) * 1000;
    console.log(`  ${name.padEnd(24)} ${fmt(pathRates[name])} images/s per core (CPU ${(used / n).toFixed(1)} ms/image, wall ${(wall / n).toFixed(1)} ms/image; ${pixelsJs} images cut, 0 JS loops over pixels)`);
  }
  if (process.env.MTPD_BENCH_R50 !== '0') {
    const { createDetector, setThreads } = await import('../../dist/index.js');
    setThreads(1);
    const det = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 80, minSize: 800, maxSize: 1333, normLayer: 'frozen_bn', trainableLayers: 3 });
    await det.train();
    const opt = await det.createOptimizer({ type: 'sgd', lr: 0.001, momentum: 0.9, weightDecay: 1e-4, maxGradNorm: 35 });
    const pair = jpgs.slice(0, 2);
    const samples = await Promise.all(pair.map((f, k) => prepareSample({ ...job(f.path, f.width, f.height, f.anns, k, { masks: false, minSize: 800, maxSize: 1333 }), resize: 'none', output: 'uint8', layout: 'hwc' })));
    const b = batchImages(samples.map((x) => x.image), 32, 'hwc');
    const targets = samples.map((x) => ({ boxes: { dtype: 'float32', shape: [x.labels.length, 4], data: x.boxes }, labels: { dtype: 'int64', shape: [x.labels.length], data: BigInt64Array.from(x.labels, BigInt) } }));
    const { images } = detectorInputs({ images: b.images, imageSizes: b.imageSizes, targets, layout: 'hwc' });
    await det.trainStep(opt, images, targets); // warm-up
    const steps = [];
    for (let r = 0; r < 2; r++) {
      const c0 = cpu();
      await det.trainStep(opt, images, targets);
      steps.push(cpu() - c0);
    }
    const stepMs = Math.min(...steps);
    const consumed = (2 / stepMs) * 1000;
    console.log(`  R50 train step at 800 px (batch 2 -> 800x1066, full width, frozen BN, 1 thread): ${(stepMs / 1000).toFixed(1)} CPU s/step -> consumes ${consumed.toFixed(2)} images/s per core`);
    for (const [name, rate] of Object.entries(pathRates)) console.log(`    ${name}: one core of input feeds ${(rate / consumed).toFixed(0)} cores of R50 training at 800 px`);
    await det.dispose();
  }

  // ---- 4. loader end to end
  const batch = Number(process.env.MTPD_BENCH_BATCH ?? 8);
  const stepMs = (process.env.MTPD_BENCH_STEP_MS ?? '100,250,500,1000').split(',').map(Number);
  console.log(`\nDataLoader, demo dataset, batch ${batch}, min size 224 (${cores} cores here)`);
  console.log('  workers   images/s   keeps up with a training step of (ms/step): ' + stepMs.join(', '));
  for (const workers of [...new Set([0, 1, Math.min(2, cores), Math.min(4, cores)])]) {
    const loader = new DataLoader(train, { batchSize: batch, seed: 1, workers, prefetch: 4, minSize: 224, maxSize: 400 });
    await loader.next(); // warm up workers
    t0 = now();
    let n = 0;
    for (let i = 0; i < 12; i++) n += (await loader.next()).imageIds.length;
    const ips = (n / (now() - t0)) * 1000;
    await loader.close();
    const verdict = stepMs.map((s) => `${s}: ${(ips / ((batch / s) * 1000)).toFixed(1)}x`).join('  ');
    console.log(`  ${String(workers).padStart(7)}   ${fmt(ips)}   ${verdict}   (loader rate / step consumption)`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
