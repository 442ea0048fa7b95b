// Peak resident memory of the adaptation-cost matrix against the number of images (import from
// dist/: run `npm run build:ts` first, or `npm run bench cost-memory`).
//
// Two models with RetinaNet-R50-FPN-sized maps of an 800x1333 input (256 channels; p3 100x167 ...
// p7 7x11, about 23 MB per image and model in float32), made up deterministically (the memory
// behaviour does not depend on where the maps come from), batches of 2 images, the closed-form
// fitter over every level. Each image count runs in a child process under /usr/bin/time -v and its
// "Maximum resident set size" is printed. The maps stream through the on-disk feature cache, so
// the peak should not grow with the images.
//
// MTPD_BENCH_COST_IMAGES="8,32" (image counts), MTPD_BENCH_COST_INPUT="800x1333" (the input size
// the maps are made for), MTPD_BENCH_COST_DIST=path/to/dist (another build to compare, e.g. one
// that kept every map in memory).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(import.meta.url);
const [INPUT_H, INPUT_W] = (process.env.MTPD_BENCH_COST_INPUT ?? '800x1333').split('x').map(Number);
// tap -> [H, W, stride] of the FPN maps of one input image.
const LEVELS = Object.fromEntries([8, 16, 32, 64, 128].map((s, i) => [`p${i + 3}`, [Math.ceil(INPUT_H / s), Math.ceil(INPUT_W / s), s]]));

if (process.argv[2] === '--child') {
  const [, , , dist, imagesArg] = process.argv;
  const { computeCostMatrix } = await import(pathToFileURL(path.join(dist, 'order', 'cost-matrix.js')).href);
  const images = Number(imagesArg);
  const batch = 2;
  const source = (name, seed) => ({
    name,
    ap: seed,
    async features(imgs) {
      const id = imgs[0].data[0];
      const maps = {};
      for (const [tap, [h, w, stride]] of Object.entries(LEVELS)) {
        const data = new Float32Array(imgs.length * 256 * h * w);
        // Correlated across the models (so the fit means something), cheap to make.
        let a = (id * 7919 + h) >>> 0;
        for (let i = 0; i < data.length; i++) {
          a = (a * 1664525 + 1013904223) >>> 0;
          data[i] = ((a >>> 8) / 16777216 - 0.5) * (1 + seed * 0.1) + (i % 97) * 0.01 * seed;
        }
        maps[tap] = { dtype: 'float32', shape: [imgs.length, 256, h, w], data };
      }
      return { maps, imageSizes: imgs.map(() => [INPUT_H, INPUT_W]), strides: Object.fromEntries(Object.entries(LEVELS).map(([k, v]) => [k, v[2]])) };
    },
  });
  // Tiny placeholder images: the models above only read an id from them.
  const batches = (offset, n) => Array.from({ length: Math.ceil(n / batch) }, (_, b) => Array.from({ length: batch }, (_, i) => ({ dtype: 'float32', shape: [3, 1, 1], data: new Float32Array([offset + b * batch + i, 0, 0]) })));
  const t0 = Date.now();
  // The largest resident, JS-heap and external (ArrayBuffer) memory seen at each progress event, per phase.
  const seen = {};
  const trace = process.env.MTPD_BENCH_COST_TRACE === '1';
  const onProgress = (e) => {
    const u = process.memoryUsage();
    const s = (seen[e.phase] ??= { rss: 0, heap: 0, external: 0 });
    s.rss = Math.max(s.rss, u.rss);
    s.heap = Math.max(s.heap, u.heapUsed);
    s.external = Math.max(s.external, u.external);
    if (trace) console.error(`${e.phase} ${e.done}/${e.total} ${e.label}: rss ${(u.rss / 2 ** 20).toFixed(0)} heap ${(u.heapUsed / 2 ** 20).toFixed(0)} external ${(u.external / 2 ** 20).toFixed(0)} MB`);
  };
  const m = await computeCostMatrix([source('a', 1), source('b', 2)], batches(0, images), batches(100000, Math.max(2, images / 4)), { pairs: 'all', ridge: 0.001, onProgress });
  const mb = (x) => (x / 2 ** 20).toFixed(0);
  const phases = Object.entries(seen).map(([p, s]) => `${p}: rss ${mb(s.rss)} heap ${mb(s.heap)} external ${mb(s.external)} MB`).join('; ');
  console.log(`images ${images}: d(a->b) ${m.costs.a.b.toFixed(6)}, ${((Date.now() - t0) / 1000).toFixed(1)} s (largest seen between steps: ${phases})`);
  process.exit(0);
}

const counts = (process.env.MTPD_BENCH_COST_IMAGES ?? '8,32').split(',').map(Number);
const dists = [path.join(path.dirname(here), '..', '..', 'dist'), ...(process.env.MTPD_BENCH_COST_DIST ? [process.env.MTPD_BENCH_COST_DIST] : [])];
for (const dist of dists) {
  for (const n of counts) {
    const r = spawnSync('/usr/bin/time', ['-v', process.execPath, here, '--child', dist, String(n)], { encoding: 'utf8' });
    const peak = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1];
    if (r.status !== 0 || !peak) {
      console.error(r.stdout, r.stderr);
      process.exit(1);
    }
    console.log(`${path.relative(process.cwd(), dist) || dist}: ${r.stdout.trim()}; peak RSS ${(Number(peak) / 1024).toFixed(0)} MB`);
  }
}
