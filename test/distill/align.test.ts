// The alignment of student and teacher maps (native/distill/align.h) with deliberately different
// resolutions, strides and aspect ratios in one batch (so images are padded differently):
// alignMap against a reference implementation of the per-image mapping, exact reproduction of
// maps whose content is a known function of image coordinates (test/distill/field.ts), zero loss
// of every loss type for a teacher that is an exact resized copy of the student's content (while
// the old whole-padded-map resize gives a clearly non-zero loss), and FGD's boxes on the same
// cells of both grids.
import t from 'tap';
import { alignMap } from '../../src/distill/align.js';
import { Distiller, type DistillerConfig, type MapLayout } from '../../src/distill/index.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { cells, coefs, fieldMap, type GridSpec, maxDiffOnValid, type Size } from './field.js';

/** The mapping of align.h written out: per image, bilinear at scale (h_t/s_t)/(h_s/s_s), clamped to the valid cells. */
function reference(x: Tensor, src: GridSpec, dst: GridSpec): Float32Array {
  const [n, c, Hs, Ws] = x.shape as [number, number, number, number];
  const [Ht, Wt] = dst.hw;
  const out = new Float32Array(n * c * Ht * Wt);
  const axis = (i: number, k: number, len: number): [number, number, number] => {
    const s = Math.max((i + 0.5) / k - 0.5, 0);
    const i0 = Math.min(Math.floor(s), len - 1);
    const i1 = i0 < len - 1 ? i0 + 1 : i0;
    const l = Math.min(Math.max(s - i0, 0), 1);
    return [i0, i1, l];
  };
  for (let b = 0; b < n; b++) {
    const [hs, ws] = cells(src.sizes[b] as Size, src.stride);
    const [ht, wt] = cells(dst.sizes[b] as Size, dst.stride);
    const ky = (dst.sizes[b]![0] / dst.stride) / (src.sizes[b]![0] / src.stride);
    const kx = (dst.sizes[b]![1] / dst.stride) / (src.sizes[b]![1] / src.stride);
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < ht; i++) {
        const [y0, y1, ly] = axis(i, ky, hs);
        for (let j = 0; j < wt; j++) {
          const [x0, x1, lx] = axis(j, kx, ws);
          const at = (y: number, xx: number) => x.data[((b * c + ch) * Hs + y) * Ws + xx] as number;
          const v = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
          out[((b * c + ch) * Ht + i) * Wt + j] = v;
        }
      }
  }
  return out;
}

function noise(shape: number[], seed: number): Tensor<'float32'> {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    d[i] = s / 2 ** 32 - 0.5;
  }
  return { dtype: 'float32', shape, data: d };
}

// A low-resolution student and a 1.6x teacher; two images of different aspect ratios in one
// batch, so each is padded differently on each side, and the padded ratio (12/8 = 1.5 at p3)
// is not the content scale (1.6): the whole-map resize drifts.
const STUDENT_SIZES: Size[] = [[45, 60], [60, 40]];
const TEACHER_SIZES: Size[] = [[72, 96], [96, 64]];
const grid = (sizes: Size[], stride: number, padded: Size): GridSpec => ({ sizes, stride, hw: [Math.ceil(padded[0] / stride), Math.ceil(padded[1] / stride)] });
const S_P3 = grid(STUDENT_SIZES, 8, [64, 64]);
const S_P4 = grid(STUDENT_SIZES, 16, [64, 64]);
const T_P3 = grid(TEACHER_SIZES, 8, [96, 96]);
const T_P4 = grid(TEACHER_SIZES, 16, [96, 96]);
const studentLayout: MapLayout = { imageSizes: STUDENT_SIZES, strides: { p3: 8, p4: 16 } };
const teacherLayout: MapLayout = { imageSizes: TEACHER_SIZES, strides: { p3: 8, p4: 16 } };

t.test('alignMap: each image resampled at its own content scale onto its valid cells, zero on padding', async (t) => {
  const cases: [string, GridSpec, GridSpec][] = [
    ['student p3 -> teacher p3 (up 1.6x)', S_P3, T_P3],
    ['teacher p3 -> student p3 (down)', T_P3, S_P3],
    ['student p4 -> teacher p3 (another stride)', S_P4, T_P3],
    // P6/P7 are ceil-sized: a 200x330 batch padded to 224x352 has a 2x3 p7 (stride 128), a 4x6 p6.
    ['p7 (stride 128) -> p6 (stride 64)', grid([[200, 330], [120, 90]], 128, [224, 352]), grid([[200, 330], [120, 90]], 64, [224, 352])],
    ['same grid, other aspect ratios', grid([[45, 60], [60, 40]], 8, [64, 64]), grid([[45, 60], [60, 40]], 8, [64, 64])],
  ];
  for (const [name, src, dst] of cases) {
    const x = noise([2, 3, ...src.hw], name.length);
    const r = await alignMap(x, src.sizes, src.stride, dst.hw, dst.sizes, dst.stride);
    t.same(r.aligned.shape, [2, 3, ...dst.hw], `${name}: shape`);
    t.equal(r.whole, false, `${name}: images do not fill their maps: per-image path`);
    const want = reference(x, src, dst);
    const got = toNumbers(r.aligned);
    const worst = got.reduce((m, v, i) => Math.max(m, Math.abs(v - (want[i] as number))), 0);
    t.ok(worst < 1e-6, `${name}: matches the reference mapping (worst ${worst}), zero on padding`);
    const mask = toNumbers(r.mask);
    const [H, W] = dst.hw;
    let ok = true;
    for (let b = 0; b < 2; b++) {
      const [vh, vw] = cells(dst.sizes[b] as Size, dst.stride);
      for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) ok &&= mask[(b * H + i) * W + j] === (i < vh && j < vw ? 1 : 0);
    }
    t.ok(ok, `${name}: mask is 1 exactly on each image's ceil(h/s) x ceil(w/s) cells`);
  }
  // Images that fill both maps exactly with the whole-map ratio: the plain whole-map resize.
  const x = noise([2, 2, 4, 4], 3);
  const r = await alignMap(x, [[32, 32], [32, 32]], 8, [8, 8], [[64, 64], [64, 64]], 8);
  t.equal(r.whole, true, 'filled maps take the batched whole-map path');
  t.same(toNumbers(r.mask), new Array(2 * 64).fill(1));
  await t.rejects(alignMap(x, [[32, 32]], 8, [8, 8], [[64, 64], [64, 64]], 8), /1 image sizes for 2 images/);
  await t.rejects(alignMap(x, [[40, 32], [32, 32]], 8, [8, 8], [[64, 64], [64, 64]], 8), /covers 5x4 cells at stride 8, more than the 4x4 map/);
  await t.rejects(alignMap(x, [[32, 32], [32, 32]], 0, [8, 8], [[64, 64], [64, 64]], 8), /sourceStride must be a positive integer/);
});

t.test('alignMap nearest: the source cell whose centre is nearest each target cell centre', async (t) => {
  const x = noise([2, 2, ...S_P3.hw], 11);
  const r = await alignMap(x, S_P3.sizes, S_P3.stride, T_P3.hw, T_P3.sizes, T_P3.stride, 'nearest');
  const [Ht, Wt] = T_P3.hw;
  const [, , Hs, Ws] = x.shape as number[] as [number, number, number, number];
  let worst = 0;
  for (let b = 0; b < 2; b++) {
    const [hs, ws] = cells(S_P3.sizes[b] as Size, 8);
    const [ht, wt] = cells(T_P3.sizes[b] as Size, 8);
    const ky = T_P3.sizes[b]![0] / S_P3.sizes[b]![0], kx = T_P3.sizes[b]![1] / S_P3.sizes[b]![1];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < Ht; i++)
        for (let j = 0; j < Wt; j++) {
          const si = Math.min(Math.floor((i + 0.5) / ky), hs - 1), sj = Math.min(Math.floor((j + 0.5) / kx), ws - 1);
          const want = i < ht && j < wt ? (x.data[((b * 2 + c) * Hs + si) * Ws + sj] as number) : 0;
          worst = Math.max(worst, Math.abs((r.aligned.data[((b * 2 + c) * Ht + i) * Wt + j] as number) - want));
        }
  }
  t.equal(worst, 0, 'exact copies of the nearest source cells, zero on padding');
});

t.test('field maps: a map of the same images on another grid is reproduced exactly, borders included', async (t) => {
  const coef = coefs(1);
  for (const [name, src, dst] of [
    ['up', S_P3, T_P3],
    ['down', T_P3, S_P3],
    ['cross-stride', S_P4, T_P3],
  ] as const) {
    const x = fieldMap(4, src, src, coef, () => 1e3);
    const want = fieldMap(4, dst, src, coef, () => 0);
    const r = await alignMap(x, src.sizes, src.stride, dst.hw, dst.sizes, dst.stride);
    const d = maxDiffOnValid(r.aligned, want, dst);
    t.ok(d < 1e-5, `${name}: max |aligned - expected| on valid cells ${d}`);
    // The whole padded map resized (the old adapter) drifts (content scale 1.6, padded ratio 1.5)
    // and, going up, pulls padding in.
    const old = await alignMap(x, src.sizes.map(() => [src.hw[0], src.hw[1]] as Size), 1, dst.hw, dst.sizes.map(() => [dst.hw[0], dst.hw[1]] as Size), 1);
    const od = maxDiffOnValid(old.aligned, want, dst);
    t.ok(od > 0.05 && od > 1e4 * d, `${name}: the whole-map resize is off by ${od.toPrecision(3)}`);
  }
});

/** Identity 3x3 generation block for MGD (positive maps pass the ReLU unchanged). */
async function identityGeneration(d: Distiller, c: number): Promise<void> {
  const { names, tensors } = await d.stateDict();
  const eye = new Float32Array(c * c * 9);
  for (let o = 0; o < c; o++) eye[(o * c + o) * 9 + 4] = 1;
  const out = names.map((n, i) => {
    if (/generation\.[02]\.weight$/.test(n)) return tensor('float32', [c, c, 3, 3], eye);
    if (/generation\.[02]\.bias$/.test(n)) return tensor('float32', [c], new Float32Array(c));
    return tensors[i] as Tensor;
  });
  await d.loadStateDict(names, out, true);
}

t.test('every loss is zero for a teacher that is an exact resized copy of the student; the whole-padded-map resize is not', async (t) => {
  const C = 6;
  // Positive content (MGD's identity generation block passes it through its ReLU unchanged).
  const coef = coefs(2, -0.4, 0.4);
  const positive = (n: number, c: number): [number, number, number, number] => {
    const [a, b, d, e] = coef(n, c);
    return [2.5 + a, b, d, e];
  };
  const student = { p3: fieldMap(C, S_P3, S_P3, positive, (n, c, i, j) => 40 + ((i * 7 + j * 3 + c) % 5)), p4: fieldMap(C, S_P4, S_P4, positive, () => -30) };
  const teacher = { p3: fieldMap(C, T_P3, S_P3, positive, () => -20), p4: fieldMap(C, T_P4, S_P4, positive, (n, c, i, j) => 60 - i) };
  const boxes = [tensor('float32', [1, 4], [5, 6, 30, 25]), tensor('float32', [2, 4], [10, 12, 35, 50, 2, 2, 20, 20])];
  const base = { student_channels: C, teacher_channels: C, seed: 5, taps: ['p3', 'p4'] };
  const configs: [string, DistillerConfig][] = [
    ['mse', { ...base, losses: [{ type: 'mse' }] }],
    ['cwd', { ...base, losses: [{ type: 'cwd' }] }],
    ['fgd', { ...base, losses: [{ type: 'fgd' }] }],
    ['mgd', { ...base, losses: [{ type: 'mgd', options: { lambda_mgd: 0, alpha_mgd: 1 } }] }],
    ['pkd', { ...base, losses: [{ type: 'pkd' }] }],
  ];
  for (const [type, config] of configs) {
    const d = await Distiller.create(config);
    if (type === 'mgd') await identityGeneration(d, C);
    const aligned = await d.compute(student, teacher, { boxes, imageSizes: STUDENT_SIZES, studentLayout, teacherLayout });
    const old = await d.compute(student, teacher, { boxes, imageSizes: STUDENT_SIZES });
    t.same(Object.keys(aligned.losses).sort(), Object.keys(old.losses).sort(), `${type}: same terms`);
    t.equal(aligned.adapters.p3, 'resize', `${type}: the student is resampled onto the teacher's grid`);
    for (const [k, v] of Object.entries(aligned.losses)) t.ok(Math.abs(v) < 1e-6, `${type}: aligned ${k} = ${v} ~ 0`);
    t.ok(old.total > 1e3 * Math.max(Math.abs(aligned.total), 1e-9), `${type}: the whole-padded-map resize gives ${old.total} (aligned ${aligned.total})`);
  }
  // A 1x1 conv adapter (channels differ): a teacher that is the conv of the student's content.
  const cs = 3, ct = 4;
  const d = await Distiller.create({ student_channels: cs, teacher_channels: ct, taps: ['p3'], losses: [{ type: 'mse' }, { type: 'pkd' }] });
  const w = Array.from({ length: ct * cs }, (_, i) => Math.sin(i + 1));
  const bias = [0.3, -0.2, 0.1, 0.5];
  await d.loadStateDict(['pairs.p3.adapter.conv.weight', 'pairs.p3.adapter.conv.bias'], [tensor('float32', [ct, cs, 1, 1], w), tensor('float32', [ct], bias)], true);
  const mixed = (n: number, o: number): [number, number, number, number] => {
    const r: [number, number, number, number] = [bias[o] as number, 0, 0, 0];
    for (let c = 0; c < cs; c++) {
      const k = coef(n, c);
      for (let q = 0; q < 4; q++) r[q] = (r[q] as number) + (w[o * cs + c] as number) * (k[q] as number);
    }
    return r;
  };
  const r = await d.compute({ p3: fieldMap(cs, S_P3, S_P3, coef, () => 9) }, { p3: fieldMap(ct, T_P3, S_P3, mixed, () => -9) }, { studentLayout, teacherLayout });
  t.equal(r.adapters.p3, 'conv1x1+resize');
  t.ok(Math.abs(r.total) < 1e-6, `conv then alignment: mse + pkd ${r.total} ~ 0`);
  // Layouts must come in pairs and name every tap's stride.
  const sp3 = fieldMap(cs, S_P3, S_P3, coef, () => 0);
  const tp3 = fieldMap(ct, T_P3, S_P3, mixed, () => 0);
  await t.rejects(d.compute({ p3: sp3 }, { p3: tp3 }, { studentLayout }), /both studentLayout and teacherLayout/);
  await t.rejects(d.compute({ p3: sp3 }, { p3: tp3 }, { studentLayout: { imageSizes: STUDENT_SIZES, strides: { p4: 16 } }, teacherLayout }), /no stride for tap "p3"/);
  await t.rejects(d.compute({ p3: sp3 }, { p3: tp3 }, { studentLayout, teacherLayout: { imageSizes: [[72, 96]], strides: { p3: 8 } } }), /layout has 2 image sizes, the teacher's 1/);
  await t.rejects(d.compute({ p3: sp3 }, { p3: tp3 }, { studentLayout, teacherLayout: { imageSizes: [[200, 96], [96, 64]], strides: { p3: 8 } } }), /covers 25x12 cells at stride 8, more than the 12x12 map/);
});

t.test('FGD: boxes land on the same cells of both grids', async (t) => {
  // Student at stride 8; the teacher at exactly twice the resolution and stride 16: both grids
  // have the same valid cells (5x8 and 8x6), but the images are padded differently.
  const sSizes: Size[] = [[40, 64], [64, 48]];
  const tSizes: Size[] = [[80, 128], [128, 96]];
  const sg: GridSpec = { sizes: sSizes, stride: 8, hw: [8, 8] };
  const tg: GridSpec = { sizes: tSizes, stride: 16, hw: [8, 8] };
  const boxes = [[8, 6, 30, 25], [9, 20, 30, 44]];
  // FGD's rule on the student's valid crop: rows floor(y1 hc / h)..ceil(y2 hc / h), inclusive.
  const fgCells = (b: number): Set<string> => {
    const [h, w] = sSizes[b] as Size;
    const [hc, wc] = cells([h, w], 8);
    const [x1, y1, x2, y2] = boxes[b] as number[];
    const out = new Set<string>();
    for (let i = Math.floor((y1! * hc) / h); i <= Math.min(Math.ceil((y2! * hc) / h), hc - 1); i++)
      for (let j = Math.floor((x1! * wc) / w); j <= Math.min(Math.ceil((x2! * wc) / w), wc - 1); j++) out.add(`${b},${i},${j}`);
    return out;
  };
  const fg = new Set([...fgCells(0), ...fgCells(1)]);
  const C = 4;
  const coef = coefs(3);
  const s = fieldMap(C, sg, sg, coef, () => 0.25);
  const te = fieldMap(C, tg, sg, coef, () => 0.25); // same content and the same padding values
  // The teacher differs from the student exactly on the box cells.
  for (const key of fg) {
    const [b, i, j] = key.split(',').map(Number) as [number, number, number];
    for (let c = 0; c < C; c++) te.data[((b * C + c) * 8 + i) * 8 + j] = (te.data[((b * C + c) * 8 + i) * 8 + j] as number) + 1;
  }
  const d = await Distiller.create({ student_channels: C, teacher_channels: C, taps: ['p3'], losses: [{ type: 'fgd' }] });
  const ctx = { boxes: boxes.map((b) => tensor('float32', [1, 4], b)), imageSizes: sSizes };
  const r = await d.compute({ p3: s }, { p3: te }, { ...ctx, studentLayout: { imageSizes: sSizes, strides: { p3: 8 } }, teacherLayout: { imageSizes: tSizes, strides: { p3: 16 } } });
  t.equal(r.adapters.p3, 'identity', 'same cells, scale 1: a plain copy');
  t.ok((r.losses['distill.p3.fgd.fg'] as number) > 0, `the differing cells are foreground: fg ${r.losses['distill.p3.fgd.fg']}`);
  t.equal(r.losses['distill.p3.fgd.bg'], 0, 'and none of them is background: the mapped boxes cover exactly the student box cells');
  // Boxes scaled against the whole padded map (the old way) miss rows of image 0.
  const old = await d.compute({ p3: s }, { p3: te }, ctx);
  t.ok((old.losses['distill.p3.fgd.bg'] as number) > 0, `old mapping: some box cells count as background (bg ${old.losses['distill.p3.fgd.bg']})`);
});
