#!/usr/bin/env node
// The paired bootstrap over validation images (dist/eval/bootstrap): its time on N images x
// M models x B resamples, against re-running COCOeval from scratch on each resample (the naive
// way, timed on a few resamples and scaled), and a check that both give the same stats.
//
//   npm run bench bootstrap                  (builds dist/ first)
//   node scripts/bench/bootstrap.mjs [--images 200] [--models 6] [--resamples 1000] [--dets 100]
//
// Data (seeded): the demo's shape, 8 categories, 1-8 objects per image of 8-120 px, and per
// model `--dets` detections per image: noisy boxes on the objects it finds, the rest false
// positives with lower scores.
import { join, dirname } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32 } from './lib/rng.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: opt } = parseArgs({
  options: {
    images: { type: 'string', default: '200' },
    models: { type: 'string', default: '6' },
    resamples: { type: 'string', default: '1000' },
    dets: { type: 'string', default: '100' },
  },
});
const N = Number(opt.images);
const NM = Number(opt.models);
const B = Number(opt.resamples);
const D = Number(opt.dets);
const dist = join(root, 'dist', 'eval', 'bootstrap.js');
if (!existsSync(dist)) {
  console.error('dist/eval/bootstrap.js is missing: run `npm run build:ts` first (npm run bench does).');
  process.exit(1);
}
const { bootstrap, resampleWeights } = await import(dist);
const { evaluate } = await import(join(root, 'dist', 'eval', 'index.js'));

const rand = mulberry32(7);
const K = 8;
const gt = { images: [], categories: [], annotations: [] };
for (let k = 1; k <= K; k++) gt.categories.push({ id: k, name: `c${k}` });
for (let i = 1; i <= N; i++) {
  gt.images.push({ id: i, width: 192, height: 192 });
  const n = 1 + Math.floor(rand() * 8);
  for (let j = 0; j < n; j++) {
    const s = 8 + rand() * 112;
    const w = s * (0.7 + 0.6 * rand());
    const h = s * (0.7 + 0.6 * rand());
    const x = rand() * (192 - Math.min(w, 190));
    const y = rand() * (192 - Math.min(h, 190));
    gt.annotations.push({ id: gt.annotations.length + 1, image_id: i, category_id: 1 + Math.floor(rand() * K), bbox: [x, y, w, h], area: w * h, iscrowd: 0 });
  }
}
const byImage = new Map();
for (const a of gt.annotations) byImage.set(a.image_id, [...(byImage.get(a.image_id) ?? []), a]);
const models = [];
for (let m = 0; m < NM; m++) {
  const quality = 0.3 + (0.5 * m) / Math.max(1, NM - 1);
  const dets = [];
  for (const im of gt.images) {
    let left = D;
    for (const a of byImage.get(im.id) ?? []) {
      if (left === 0 || rand() > quality + 0.15) continue;
      const [x, y, w, h] = a.bbox;
      const j = (1 - quality) * 0.3;
      const cat = rand() < 0.1 ? 1 + Math.floor(rand() * K) : a.category_id;
      dets.push({ image_id: im.id, category_id: cat, score: 0.3 + 0.7 * rand() * quality, bbox: [x + j * w * (rand() - 0.5), y + j * h * (rand() - 0.5), w * (1 + j * (rand() - 0.5)), h * (1 + j * (rand() - 0.5))] });
      left--;
    }
    for (; left > 0; left--) {
      const w = 8 + rand() * 100;
      const h = 8 + rand() * 100;
      dets.push({ image_id: im.id, category_id: 1 + Math.floor(rand() * K), score: 0.05 + 0.4 * rand(), bbox: [rand() * 150, rand() * 150, w, h] });
    }
  }
  models.push({ name: `m${m}`, detections: dets });
}

// the one-off part (matching every model once, the point estimates) from a run with 1 resample
const t1 = process.hrtime.bigint();
bootstrap(gt, models, { resamples: 1, seed: 1 });
const setupMs = Number(process.hrtime.bigint() - t1) / 1e6;
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
const res = bootstrap(gt, models, { resamples: B, seed: 1 });
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
const cpu = process.cpuUsage(c0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const perMs = (ms - setupMs) / Math.max(1, B - 1) / NM;

// naive: physically resample the dataset (new ids) and run COCOeval, on a few resamples
const naiveReps = 5;
let naiveMs = 0;
let maxErr = 0;
let r = 0;
for (const w of resampleWeights(N, naiveReps, 1)) {
  const ids = gt.images.map((im) => im.id);
  const copies = new Map();
  const dsImages = [];
  ids.forEach((id, i) => {
    for (let c = 0; c < w[i]; c++) {
      const nid = id * 64 + c;
      dsImages.push({ ...gt.images[i], id: nid });
      copies.set(id, [...(copies.get(id) ?? []), nid]);
    }
  });
  const anns = [];
  for (const a of gt.annotations) for (const nid of copies.get(a.image_id) ?? []) anns.push({ ...a, id: anns.length + 1, image_id: nid });
  const dgt = { images: dsImages, categories: gt.categories, annotations: anns };
  for (const [mi, m] of models.entries()) {
    const dd = [];
    for (const d of m.detections) for (const nid of copies.get(d.image_id) ?? []) dd.push({ ...d, image_id: nid });
    const s0 = process.hrtime.bigint();
    const st = evaluate(dgt, dd).stats;
    naiveMs += Number(process.hrtime.bigint() - s0) / 1e6;
    // the bootstrap's r-th resample of model mi is not kept; compare through a rerun instead
    if (r === 0) {
      const one = bootstrap(gt, [m], { resamples: 1, seed: 1 });
      // one resample: its interval is that resample's value
      for (let s = 0; s < 12; s++) if (st[s] > -1) maxErr = Math.max(maxErr, Math.abs(st[s] - one.models[0].lo[s]));
    }
    void mi;
  }
  r++;
}
const naiveTotal = (naiveMs / naiveReps) * B;
const detsPerModel = models[0].detections.length;
console.log(`${N} images x ${NM} models (${detsPerModel} detections each) x ${B} resamples`);
console.log(`bootstrap (match once, re-accumulate per resample): ${(ms / 1000).toFixed(2)} s wall (${(cpuMs / 1000).toFixed(2)} s CPU): ${(setupMs / 1000).toFixed(2)} s once, ${perMs.toFixed(3)} ms per model and resample`);
console.log(`naive (COCOeval per resample, from ${naiveReps} resamples): ${(naiveTotal / 1000).toFixed(1)} s estimated  ratio ${(naiveTotal / ms).toFixed(1)}x`);
console.log(`naive vs bootstrap stats on the first resample: max |diff| ${maxErr.toExponential(2)}`);
console.log(`AP of ${res.models.map((m) => `${m.name} ${(100 * m.stats[0]).toFixed(1)} [${(100 * m.lo[0]).toFixed(1)}, ${(100 * m.hi[0]).toFixed(1)}]`).join(', ')}`);
