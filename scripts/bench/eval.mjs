#!/usr/bin/env node
// COCO evaluation speed: mtpd (dist/eval) against pycocotools' COCOeval on the same files, bbox
// and segm, in the same run; checks that the 12 stats are identical (<= 1e-12).
//
//   npm run bench eval                       (builds dist/ first)
//   node scripts/bench/eval.mjs [--images 5000] [--iou-type bbox|segm|both] [--no-pycocotools]
//
// Data (seeded, deterministic): N images (default 5000) with ~7 gt objects each (polygons, 1% crowd
// as uncompressed RLE) over 80 categories, and exactly 100 detections per image (boxes; masks as
// compressed RLE for segm). Files are cached under .bench/eval-<N>/ and reused.
// pycocotools: /usr/bin/python3 (or $PYTHON) must import it; $PYCOCOTOOLS_PATH is prepended to
// PYTHONPATH when set. Without it the run prints a message and times mtpd alone.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32 } from './lib/rng.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: opt } = parseArgs({
  options: {
    images: { type: 'string', default: process.env.MTPD_BENCH_EVAL_IMAGES ?? '5000' },
    'iou-type': { type: 'string', default: 'both' },
    'no-pycocotools': { type: 'boolean', default: false },
  },
});
const N = Number(opt.images);
const types = opt['iou-type'] === 'both' ? ['bbox', 'segm'] : [opt['iou-type']];

const distEval = join(root, 'dist', 'eval', 'index.js');
if (!existsSync(distEval)) {
  console.error('dist/eval/index.js is missing: run `npm run build:ts` first (npm run bench does).');
  process.exit(1);
}
const { evaluateFiles } = await import(distEval);
const mask = await import(join(root, 'dist', 'coco', 'mask.js'));

// ---- deterministic data -------------------------------------------------------------------
const COCO_IDS = [];
for (let i = 1; i <= 90; i++) if (![12, 26, 29, 30, 45, 66, 68, 69, 71, 83].includes(i)) COCO_IDS.push(i);
const r2 = (x) => Math.round(x * 100) / 100;

function ellipse(rand, x, y, w, h, n, jitter) {
  const pts = [];
  for (let j = 0; j < n; j++) {
    const a = (2 * Math.PI * (j + rand() * 0.5)) / n;
    const s = 1 - jitter * rand();
    pts.push(r2(x + w / 2 + (w / 2) * s * Math.cos(a)), r2(y + h / 2 + (h / 2) * s * Math.sin(a)));
  }
  return pts;
}

function generate(dir) {
  const rand = mulberry32(20230723);
  const images = [];
  const anns = [];
  const detsBbox = [];
  const detsSegm = [];
  const catWeight = COCO_IDS.map((_, k) => 1 / (k + 2)); // skewed like COCO (person first)
  const wsum = catWeight.reduce((a, b) => a + b, 0);
  const pickCat = () => {
    let u = rand() * wsum;
    for (let k = 0; k < COCO_IDS.length; k++) if ((u -= catWeight[k]) <= 0) return COCO_IDS[k];
    return COCO_IDS[COCO_IDS.length - 1];
  };
  const logU = (lo, hi) => Math.exp(Math.log(lo) + rand() * (Math.log(hi) - Math.log(lo)));
  let annId = 1;
  for (let i = 0; i < N; i++) {
    const W = 320 + Math.floor(rand() * 321);
    const H = 240 + Math.floor(rand() * 401);
    const imgId = i + 1;
    images.push({ id: imgId, width: W, height: H, file_name: `${imgId}.jpg` });
    const objs = [];
    const nGt = 1 + Math.floor(rand() * 13);
    for (let g = 0; g < nGt; g++) {
      const bw = Math.min(W - 1, logU(4, W * 0.8));
      const bh = Math.min(H - 1, bw * logU(0.4, 2.5));
      const x = rand() * (W - bw);
      const y = rand() * Math.max(1, H - bh);
      const cat = pickCat();
      const crowd = rand() < 0.01 ? 1 : 0;
      const poly = ellipse(rand, x, y, bw, Math.min(bh, H - y), 12 + Math.floor(rand() * 12), 0.2);
      const rle = mask.frPoly(poly, H, W);
      const area = mask.area(rle);
      const bb = mask.toBbox(rle);
      const segmentation = crowd ? { size: [H, W], counts: Array.from(rle.counts) } : [poly];
      anns.push({ id: annId++, image_id: imgId, category_id: cat, iscrowd: crowd, area, bbox: Array.from(bb), segmentation });
      objs.push({ x, y, bw, bh: Math.min(bh, H - y), cat });
    }
    // exactly 100 detections: near-misses of the objects, then background
    for (let d = 0; d < 100; d++) {
      let x, y, bw, bh, cat;
      const o = objs[d % objs.length];
      if (d < objs.length * 3) {
        const s = 0.02 + rand() * 0.3;
        bw = Math.max(1, o.bw * (1 + s * (rand() * 2 - 1)));
        bh = Math.max(1, o.bh * (1 + s * (rand() * 2 - 1)));
        x = Math.min(W - bw, Math.max(0, o.x + s * o.bw * (rand() * 2 - 1)));
        y = Math.min(H - bh, Math.max(0, o.y + s * o.bh * (rand() * 2 - 1)));
        cat = rand() < 0.85 ? o.cat : pickCat();
      } else {
        bw = logU(4, W * 0.6);
        bh = Math.min(H - 1, bw * logU(0.4, 2.5));
        x = rand() * (W - bw);
        y = rand() * (H - bh);
        cat = rand() < 0.5 ? o.cat : pickCat();
      }
      const score = Math.round(rand() * 1000) / 1000; // 3 decimals: ties happen
      const bbox = [r2(x), r2(y), r2(bw), r2(bh)];
      detsBbox.push({ image_id: imgId, category_id: cat, bbox, score });
      if (types.includes('segm')) {
        const poly = ellipse(rand, x, y, bw, bh, 10 + Math.floor(rand() * 10), 0.15);
        const r = mask.frPoly(poly, H, W);
        detsSegm.push({ image_id: imgId, category_id: cat, bbox, score, segmentation: mask.toCompressed(r) });
      }
    }
  }
  const categories = COCO_IDS.map((id) => ({ id, name: `class${id}`, supercategory: 'thing' }));
  const write = (name, obj) => {
    const tmp = join(dir, `${name}.tmp`);
    writeFileSync(tmp, JSON.stringify(obj));
    renameSync(tmp, join(dir, name));
  };
  write('dets_bbox.json', detsBbox);
  if (types.includes('segm')) write('dets_segm.json', detsSegm);
  write('instances.json', { images, annotations: anns, categories }); // last: marks a complete cache
  return { nGt: anns.length, nDet: detsBbox.length };
}

const dir = join(root, '.bench', `eval-${N}`);
const needSegm = types.includes('segm');
if (!existsSync(join(dir, 'instances.json')) || (needSegm && !existsSync(join(dir, 'dets_segm.json')))) {
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const { nGt, nDet } = generate(dir);
  console.log(`generated ${N} images, ${nGt} gt, ${nDet} detections in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${dir}`);
} else {
  console.log(`using cached data in ${dir}`);
}

// ---- pycocotools reference ----------------------------------------------------------------
const python = process.env.PYTHON ?? '/usr/bin/python3';
const pyEnv = { ...process.env };
if (process.env.PYCOCOTOOLS_PATH) pyEnv.PYTHONPATH = [process.env.PYCOCOTOOLS_PATH, process.env.PYTHONPATH].filter(Boolean).join(':');
let havePy = false;
if (!opt['no-pycocotools']) {
  const probe = spawnSync(python, ['-c', 'import pycocotools.cocoeval'], { env: pyEnv, encoding: 'utf8' });
  havePy = probe.status === 0;
  if (!havePy) {
    console.log(`pycocotools not available via ${python} (set PYCOCOTOOLS_PATH to a built cocoapi/PythonAPI): timing mtpd alone`);
  }
}

const fmt = (s) => `${s.toFixed(2)} s`;
for (const iouType of types) {
  const gtPath = join(dir, 'instances.json');
  const detsPath = join(dir, `dets_${iouType}.json`);
  const t0 = performance.now();
  const res = evaluateFiles(gtPath, detsPath, { iouType });
  const ours = (performance.now() - t0) / 1000;
  let line = `${iouType.padEnd(4)}  mtpd ${fmt(ours)}  AP ${res.stats[0].toFixed(4)}`;
  if (havePy) {
    const r = spawnSync(python, [join(root, 'scripts', 'bench', 'eval_pycocotools.py'), gtPath, detsPath, iouType], {
      env: pyEnv,
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (r.status !== 0) {
      line += `  pycocotools failed: ${r.stderr.trim().split('\n').pop()}`;
    } else {
      const py = JSON.parse(r.stdout.trim().split('\n').pop());
      let diff = 0;
      py.stats.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - res.stats[i]))));
      line += `  pycocotools ${fmt(py.total_s)} (load ${fmt(py.load_s)}, evaluate ${fmt(py.evaluate_s)}, accumulate ${fmt(py.accumulate_s)})`;
      line += `  speedup x${(py.total_s / ours).toFixed(1)}  max |stats diff| ${diff.toExponential(1)} ${diff <= 1e-12 ? 'identical' : 'MISMATCH'}`;
    }
  }
  console.log(line);
}
