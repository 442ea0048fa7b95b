import t from 'tap';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CocoDataset } from '../../src/data/coco.js';
import { DataLoader, type LoaderBatch, type LoaderOptions } from '../../src/data/loader.js';
import { prepareSample } from '../../src/data/pipeline.js';
import { writeSynthDataset } from '../../src/data/synth.js';
import { detectorInputs } from '../../src/train/inputs.js';

const root = mkdtempSync(path.join(tmpdir(), 'mtpd-loader-'));
const out = path.join(root, 'synth');
await writeSynthDataset({ out, images: 10, valImages: 1, size: 96, seed: 4, workers: 0 });
const load = (extra: Partial<Parameters<typeof CocoDataset.load>[0]> = {}) =>
  CocoDataset.load({ annotationFile: path.join(out, 'instances_train.json'), imageDir: path.join(out, 'train'), ...extra });
const ds = await load();

const base: LoaderOptions = { batchSize: 4, seed: 7, workers: 0, minSize: [64, 80, 96], maxSize: 128, masks: true };

function summary(b: LoaderBatch) {
  return {
    epoch: b.epoch,
    index: b.index,
    ids: b.imageIds,
    flipped: b.flipped,
    shape: b.images.shape,
    sizes: b.imageSizes,
    image: createHash('sha1').update(new Uint8Array(b.images.data.buffer, b.images.data.byteOffset, b.images.data.byteLength)).digest('hex'),
    boxes: b.targets.map((x) => Array.from(x.boxes.data)),
    labels: b.targets.map((x) => Array.from(x.labels.data, Number)),
    masks: b.targets.map((x) => (x.masks ? createHash('sha1').update(x.masks.data).digest('hex') : '')),
  };
}

async function take(loader: DataLoader, n: number): Promise<ReturnType<typeof summary>[]> {
  const got = [];
  for (let i = 0; i < n; i++) got.push(summary(await loader.next()));
  return got;
}

t.test('seeded shuffling: each epoch is a permutation, seeds differ, same seed repeats', async (t) => {
  const a = new DataLoader(ds, { ...base, batchSize: 10 });
  const e0 = (await a.next()).imageIds;
  const e1 = (await a.next()).imageIds;
  await a.close();
  t.same([...e0].sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i + 1));
  t.same([...e1].sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i + 1));
  t.notSame(e0, e1, 'a new order each epoch');
  const b = new DataLoader(ds, { ...base, batchSize: 10 });
  t.same((await b.next()).imageIds, e0);
  await b.close();
  const c = new DataLoader(ds, { ...base, batchSize: 10, seed: 8 });
  t.notSame((await c.next()).imageIds, e0);
  await c.close();
  const d = new DataLoader(ds, { ...base, batchSize: 10, shuffle: false });
  t.same((await d.next()).imageIds, Array.from({ length: 10 }, (_, i) => i + 1));
  await d.close();
});

t.test('batches: padded to 32, targets in resized pixels, masks inside boxes, epoch boundaries', async (t) => {
  const loader = new DataLoader(ds, base);
  t.equal(loader.batchesPerEpoch, 3);
  const batches = [await loader.next(), await loader.next(), await loader.next(), await loader.next()];
  await loader.close();
  t.same(batches.map((b) => [b.epoch, b.index, b.imageIds.length]), [[0, 0, 4], [0, 4, 4], [0, 8, 2], [1, 0, 4]]);
  t.same([batches[2]!.next.epoch, batches[2]!.next.index], [1, 0], 'after the last batch of epoch 0 the position is the start of epoch 1');
  t.notSame(batches[2]!.next.rngState, batches[1]!.next.rngState, 'epoch 1 starts from a new RNG state');
  for (const b of batches) {
    const [N, C, Hp, Wp] = b.images.shape as [number, number, number, number];
    t.equal(C, 3);
    t.equal(N, b.imageIds.length);
    t.equal(Hp % 32, 0);
    t.equal(Wp % 32, 0);
    b.targets.forEach((tg, i) => {
      const [h, w] = b.imageSizes[i]!;
      // torchvision floors h * scale with a float32 scale, so a side can come out one pixel short
      const m = Math.min(h, w);
      t.ok([64, 80, 96].some((s) => m === s || m === s - 1) || Math.max(h, w) >= 127, `min side ${m} is one of the training sizes`);
      t.equal(tg.labels.dtype, 'int64');
      const K = tg.labels.shape[0]!;
      t.same(tg.boxes.shape, [K, 4]);
      t.same(tg.masks!.shape, [K, h, w]);
      for (let k = 0; k < K; k++) {
        const bx = Array.from(tg.boxes.data.subarray(4 * k, 4 * k + 4));
        t.ok(bx[0]! >= 0 && bx[1]! >= 0 && bx[2]! <= w + 1e-3 && bx[3]! <= h + 1e-3 && bx[0]! < bx[2]! && bx[1]! < bx[3]!, `box ${bx} inside ${w}x${h}`);
        const lab = Number(tg.labels.data[k]);
        t.ok(lab >= 0 && lab < 8);
        // mask pixels lie inside the box (one pixel of slack for rounding)
        const m = tg.masks!.data.subarray(k * h * w, (k + 1) * h * w);
        let outside = 0;
        let inside = 0;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (m[y * w + x]) { if (x + 0.5 < bx[0]! - 1 || x + 0.5 > bx[2]! + 1 || y + 0.5 < bx[1]! - 1 || y + 0.5 > bx[3]! + 1) outside++; else inside++; }
        t.equal(outside, 0, `mask ${k} of image ${b.imageIds[i]} inside its box (flipped: ${b.flipped[i]})`);
        t.ok(inside > 0);
      }
    });
  }
  t.ok(batches.some((b) => b.flipped.some(Boolean)) && batches.some((b) => b.flipped.some((f) => !f)), 'some samples flipped, some not');
});

t.test('evaluation mode: no flips, the last min size, uint8 output without normalization', async (t) => {
  const loader = new DataLoader(ds, { ...base, train: false, shuffle: false, output: 'uint8', masks: false });
  const b = await loader.next();
  await loader.close();
  t.same(b.flipped, [false, false, false, false]);
  t.equal(b.images.dtype, 'uint8');
  for (const [h, w] of b.imageSizes) t.ok(Math.min(h, w) >= 95 || Math.max(h, w) >= 127, `${h}x${w}`);
  t.equal(b.targets[0]!.masks, undefined);
});

t.test("layout 'hwc': the decoder's bytes as they are, the same pixels, flips, boxes and masks as 'chw'", async (t) => {
  const opts: LoaderOptions = { ...base, resize: 'none', output: 'uint8', flipProb: 0.5 };
  const chw = new DataLoader(ds, opts);
  const hwc = new DataLoader(ds, { ...opts, layout: 'hwc' });
  let flips = 0;
  for (let k = 0; k < 3; k++) {
    const a = await chw.next();
    const b = await hwc.next();
    t.equal(a.layout, 'chw');
    t.equal(b.layout, 'hwc');
    t.same(b.imageIds, a.imageIds);
    t.same(b.flipped, a.flipped);
    flips += b.flipped.filter(Boolean).length;
    t.same(b.imageSizes, a.imageSizes);
    const [n, c, hp, wp] = a.images.shape as number[];
    t.same(b.images.shape, [n, hp, wp, c], '(N, Hp, Wp, C)');
    // (N, C, Hp, Wp)[n, ch, y, x] == (N, Hp, Wp, C)[n, y, x, ch], padding included
    const x = a.images.data as Uint8Array;
    const y = b.images.data as Uint8Array;
    let diff = 0;
    for (let i = 0; i < n!; i++)
      for (let ch = 0; ch < c!; ch++)
        for (let r = 0; r < hp!; r++)
          for (let q = 0; q < wp!; q++) if (x[((i * c! + ch) * hp! + r) * wp! + q] !== y[((i * hp! + r) * wp! + q) * c! + ch]) diff++;
    t.equal(diff, 0, `batch ${k}: the same bytes, transposed`);
    t.same(b.targets.map((q) => Array.from(q.boxes.data)), a.targets.map((q) => Array.from(q.boxes.data)), 'boxes');
    t.same(b.targets.map((q) => Array.from(q.masks!.data)), a.targets.map((q) => Array.from(q.masks!.data)), 'masks (flipped rows reversed)');
    // cut per image as the detectors take them: (h, w, 3) against (3, h, w)
    const ia = detectorInputs(a).images;
    const ib = detectorInputs(b).images;
    for (const [i, im] of ib.entries()) {
      const [h, w] = a.imageSizes[i]!;
      t.same(im.shape, [h, w, 3]);
      const p = ia[i]!.data as Uint8Array;
      const q = im.data as Uint8Array;
      let bad = 0;
      for (let ch = 0; ch < 3; ch++) for (let r = 0; r < h; r++) for (let u = 0; u < w; u++) if (p[(ch * h + r) * w + u] !== q[(r * w + u) * 3 + ch]) bad++;
      t.equal(bad, 0, `image ${i}: the same pixels`);
    }
  }
  t.ok(flips > 0, 'some images flipped');
  await chw.close();
  await hwc.close();
  t.throws(() => new DataLoader(ds, { ...base, output: 'float32', layout: 'hwc' }), /layout 'hwc' needs output 'uint8' and resize 'none'/);
  t.throws(() => new DataLoader(ds, { ...base, output: 'uint8', resize: 'torchvision', layout: 'hwc' }), /layout 'hwc'/);
});

t.test('the same batches for any worker count', async (t) => {
  const a = new DataLoader(ds, { ...base, workers: 0 });
  const b = new DataLoader(ds, { ...base, workers: 2, prefetch: 3 });
  t.same(await take(b, 4), await take(a, 4));
  await a.close();
  await b.close();
});

t.test('a loader resumed from a saved position continues exactly', async (t) => {
  const full = new DataLoader(ds, base);
  const all = await take(full, 7);
  await full.close();
  for (const after of [1, 2, 3, 5]) {
    const first = new DataLoader(ds, base);
    let pos;
    for (let i = 0; i < after; i++) pos = (await first.next()).next;
    t.same(first.position(), pos);
    await first.close();
    const saved = JSON.parse(JSON.stringify(pos));
    const resumed = new DataLoader(ds, { ...base, position: saved });
    t.same(await take(resumed, 7 - after), all.slice(after), `resumed after ${after} batches at ${JSON.stringify(saved)}`);
    await resumed.close();
  }
  t.throws(() => new DataLoader(ds, { ...base, position: { epoch: 0, index: 99, rngState: [1, 2, 3, 4] } }), /position\.index 99 is past the 10 images/);
  t.throws(() => new DataLoader(ds, { ...base, position: { epoch: 0, index: 0, rngState: [1, 2] as never } }), /rng state must be four uint32 values/);
});

t.test('bad options name the option', async (t) => {
  t.throws(() => new DataLoader(ds, { ...base, batchSize: 0 }), /loader: batchSize must be an integer >= 1/);
  t.throws(() => new DataLoader(ds, { ...base, minSize: [] }), /minSize needs at least one value/);
  t.throws(() => new DataLoader(ds, { ...base, flipProb: 2 }), /flipProb must be in \[0, 1\]/);
  t.throws(() => new DataLoader(ds, { ...base, resize: 'x' as never }), /resize must be/);
  t.throws(() => new DataLoader(ds, { ...base, batchSize: 11, dropLast: true }), /leaves no batch/);
});

t.test('bad images: missing and truncated files, wrong size; error names the file, or counted skip', async (t) => {
  const dir = path.join(root, 'bad');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const j = JSON.parse(readFileSync(path.join(out, 'instances_train.json'), 'utf8')) as { images: { id: number; file_name: string; width: number }[] };
  for (const im of j.images) copyFileSync(path.join(out, 'train', im.file_name), path.join(dir, im.file_name));
  rmSync(path.join(dir, j.images[1]!.file_name)); // missing
  const png = readFileSync(path.join(out, 'train', j.images[2]!.file_name));
  writeFileSync(path.join(dir, j.images[2]!.file_name), png.subarray(0, Math.floor(png.length / 2))); // truncated
  j.images[3]!.width += 1; // size differs from the file
  const ann = path.join(root, 'bad.json');
  writeFileSync(ann, JSON.stringify(j));
  const opts = { ...base, shuffle: false };

  const strict = await CocoDataset.load({ annotationFile: ann, imageDir: dir });
  const l1 = new DataLoader(strict, opts);
  await t.rejects(l1.next(), { code: 'ERR_MTPD_DATA', message: new RegExp(`${j.images[1]!.file_name} \\(image id 2\\): image file not found \\[missing-image-file`) });
  await l1.close();

  const skip = await CocoDataset.load({ annotationFile: ann, imageDir: dir, badData: 'skip' });
  const l2 = new DataLoader(skip, opts);
  const b = await l2.next();
  await l2.close();
  t.same(b.imageIds, [1]);
  t.equal(b.skipped, 3);
  t.same(skip.bad.toJSON(), { 'missing-image-file': 1, 'unreadable-image': 1, 'image-size-mismatch': 1 });
  t.match(skip.bad.summary(), /unreadable-image: 1 \(e\.g\. .*000000000003\.png \(image id 3\): cannot decode image/);
  t.match(skip.bad.summary(), /image-size-mismatch: 1 \(e\.g\. .*decoded size \d+x\d+ differs from the annotation file's/);

  const direct = await prepareSample({ position: 0, index: 0, imageId: 3, path: path.join(dir, j.images[2]!.file_name), width: 1, height: 1, boxes: new Float32Array(0), labels: new Int32Array(0), segmentations: null, flip: false, resize: 'none', minSize: 1, maxSize: 1, output: 'uint8' });
  t.equal(direct.bad?.kind, 'unreadable-image');
});

t.test('datasets load with the loader defaults from dist-like paths', async (t) => {
  const v = await load({ annotationFile: path.join(out, 'instances_val.json'), imageDir: path.join(out, 'val') });
  const l = new DataLoader(v, { batchSize: 2, workers: 0, minSize: 96, maxSize: 128 });
  const b = await l.next();
  await l.close();
  t.equal(b.imageIds.length, 1);
  t.equal(b.images.dtype, 'float32');
});

t.test('worker threads keep the process alive only while they work (no hang without close())', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const script = new URL('../fixtures/data/loader_exit.ts', import.meta.url).pathname;
  for (const mode of ['no-close']) {
    const r = spawnSync(process.execPath, [...process.execArgv, script, path.join(out, 'instances_train.json'), path.join(out, 'train'), mode], { encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, `${mode}: exit code 0 (stderr: ${r.stderr.slice(0, 300)})`);
    t.equal(r.stdout.trim(), 'batch 2', mode);
  }
});

t.test('closing a worker pool while its workers decode keeps the process alive until they exit', async (t) => {
  // Node 20 does not always hold the event loop open while terminate() of a worker that is still
  // answering is pending: the process ended inside `await close()` (exit code 13, a top-level
  // await never settled) within the first few of these pools, before close() kept a timer of its
  // own until every worker had exited. A loader closed with batches in flight did the same.
  const { spawnSync } = await import('node:child_process');
  const script = new URL('../fixtures/data/pool_close.ts', import.meta.url).pathname;
  // The child gets the TypeScript loader but not tap's process-info hooks, whose own handles would
  // keep its event loop open and hide the failure.
  const execArgv = process.execArgv.filter((a) => !/@tapjs\/(processinfo|mock)/.test(a));
  const r = spawnSync(process.execPath, [...execArgv, script, path.join(out, 'train'), '30'], { encoding: 'utf8', timeout: 300_000 });
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr.slice(0, 300)})`);
  t.equal(r.stdout.trim(), 'closed 30 pools');
});

t.test('epoch() yields the rest of the current epoch', async (t) => {
  const loader = new DataLoader(ds, { ...base, masks: false });
  await loader.next();
  const rest = [];
  for await (const b of loader.epoch()) rest.push([b.epoch, b.index, b.imageIds.length, b.waitMs >= 0]);
  t.same(rest, [[0, 4, 4, true], [0, 8, 2, true]]);
  t.same([loader.position().epoch, loader.position().index], [1, 0]);
  const next = [];
  for await (const b of loader.epoch()) next.push(b.index);
  t.same(next, [0, 4, 8]);
  await loader.close();
  await t.rejects(loader.next(), /loader is closed/);
});
