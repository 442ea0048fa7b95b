// The distiller module: configuration (shorthand and pairs, resolved defaults, errors that
// name the key), FGD's GC-block initialization, and shape errors at compute time.
import t from 'tap';
import { Distiller } from '../../src/distill/index.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

const randn = (shape: number[], seed: number): Tensor => {
  let s = seed;
  const n = shape.reduce((a, b) => a * b, 1);
  const v: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v.push(s / 2 ** 32 - 0.5);
  }
  return tensor('float32', shape, v);
};

t.test('config errors name the key', async (t) => {
  if (!haveAddon(t)) return;
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], losses: [{ type: 'mse', options: { reduce: 'sum' } }] }), /losses\[0\].*unknown option "reduce"/);
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], losses: [{ type: 'mse', options: { reduction: 'avg' } }] }), /"reduction" must be/);
  await t.rejects(Distiller.create({ student_channels: 4, taps: ['p3'], losses: [{ type: 'mse' }] }), /"teacher_channels" is required/);
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], losses: [{ type: 'cwd', options: { tau: 0 } }] }), /"tau" must be positive/);
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], losses: [{ type: 'mgd', options: { lambda_mgd: 1.5 } }] }), /lambda_mgd/);
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], losses: [{ type: 'mse' }, { type: 'mse' }] }), /used twice/);
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'] }), { code: 'ERR_MTPD_CONFIG' });
  await t.rejects(Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], losses: [{ type: 'mse' }], resize: 'cubic' as 'bilinear' }), {
    code: 'ERR_MTPD_CONFIG',
  });
});

t.test('FGD: kaiming fan_in conv_mask with zero bias, zero last channel_add conv; defaults resolved', async (t) => {
  if (!haveAddon(t)) return;
  const c = 256;
  const d = await Distiller.create({ student_channels: c, teacher_channels: c, seed: 3, taps: ['p3'], losses: [{ type: 'fgd' }] });
  const sd = await d.stateDict();
  const get = (k: string) => {
    const i = sd.names.indexOf(k);
    t.ok(i >= 0, `${k} exists`);
    return toNumbers(sd.tensors[i] as Tensor);
  };
  for (const side of ['s', 't']) {
    const w = get(`pairs.p3.fgd.conv_mask_${side}.weight`);
    const std = Math.sqrt(w.reduce((a, v) => a + v * v, 0) / w.length);
    t.ok(Math.abs(std - Math.sqrt(2 / c)) < 0.25 * Math.sqrt(2 / c), `conv_mask_${side} std ${std} ~ sqrt(2/fan_in) ${Math.sqrt(2 / c)}`);
    t.ok(get(`pairs.p3.fgd.conv_mask_${side}.bias`).every((v) => v === 0), 'conv_mask bias 0');
    t.ok(get(`pairs.p3.fgd.channel_add_conv_${side}.3.weight`).every((v) => v === 0), 'last conv weight 0');
    t.ok(get(`pairs.p3.fgd.channel_add_conv_${side}.3.bias`).every((v) => v === 0), 'last conv bias 0');
    t.ok(get(`pairs.p3.fgd.channel_add_conv_${side}.0.weight`).some((v) => v !== 0), 'first conv keeps its default init');
  }
  t.same(sd.names.filter((n) => n.includes('adapter')), [], 'identity adapter: no parameters');
  // With R = identity at init, the global term is sum((S - T)^2) / N * lambda.
  const s = randn([2, c, 3, 4], 1), te = randn([2, c, 3, 4], 2);
  const ctx = { boxes: [tensor('float32', [1, 4], [0, 0, 10, 10]), tensor('float32', [0, 4], [])], imageSizes: [[24, 32], [24, 32]] as [number, number][] };
  const r = await d.compute({ p3: s }, { p3: te }, ctx);
  const a = toNumbers(s), b = toNumbers(te);
  const sq = a.reduce((acc, v, i) => acc + (v - (b[i] as number)) ** 2, 0);
  const gl = r.losses['distill.p3.fgd.gl'] as number;
  t.ok(Math.abs(gl - (sq / 2) * 5e-6) < 1e-6 * Math.abs(gl) + 1e-12, `gl at init = lambda * sum((S-T)^2)/N: ${gl} vs ${(sq / 2) * 5e-6}`);
  await t.rejects(d.compute({ p3: s }, { p3: te }), /boxes for each of the 2 images/);
});

t.test('compute: missing taps and wrong shapes are named', async (t) => {
  if (!haveAddon(t)) return;
  const d = await Distiller.create({
    student_channels: 3,
    teacher_channels: 4,
    pairs: [{ student: 'p4', teacher: 'p3', losses: [{ type: 'pkd', weight: 2 }] }],
  });
  const s = randn([2, 3, 3, 3], 3), te = randn([2, 4, 6, 5], 4);
  await t.rejects(d.compute({ p3: s }, { p3: te }), /the student has no tap "p4" \(has: p3\)/);
  await t.rejects(d.compute({ p4: s }, { p4: te }), /the teacher has no tap "p3"/);
  await t.rejects(d.compute({ p4: randn([2, 5, 3, 3], 5) }, { p3: te }), /must be \(N, 3, H, W\)/);
  await t.rejects(d.compute({ p4: s }, { p3: randn([1, 4, 6, 5], 6) }), /student batch 2 differs from teacher batch 1/);
  const r = await d.compute({ p4: s }, { p3: te }, undefined, { grad: true });
  t.same(Object.keys(r.losses), ['distill.p4-p3.pkd']);
  t.equal(r.adapters['p4-p3'], 'conv1x1+resize');
  t.same(r.grads!.teacherReceived, { p3: false });
  t.ok((r.grads!.params['pairs.p4-p3.adapter.conv.weight'] as number) > 0);
  const none = await Distiller.create({ student_channels: 4, teacher_channels: 4, taps: ['p3'], resize: 'none', losses: [{ type: 'mse' }] });
  await t.rejects(none.compute({ p3: randn([1, 4, 3, 3], 7) }, { p3: randn([1, 4, 6, 6], 8) }), /resize is "none"/);
});

t.test('hostile arguments to the distill bindings are errors, never aborts', async (t) => {
  if (!haveAddon(t)) return;
  const { native } = await import('../../src/native.js');
  const b = native().distill;
  const d = await Distiller.create({ student_channels: 2, teacher_channels: 2, taps: ['p3'], losses: [{ type: 'mse' }] });
  t.throws(() => b.compute({} as never, {}, {}, undefined, {}), /distiller to be a native module handle/);
  t.throws(() => b.compute(d.handle, [] as never, {}, undefined, {}), /student to be \{tap: tensor\}/);
  t.throws(() => b.compute(d.handle, { p3: 5 as never }, {}, undefined, {}), /student\.p3/);
  t.throws(() => b.compute(d.handle, {}, {}, { imageSizes: [[0, 3]] }, {}), /imageSizes\[0\]\[0\] must be a positive integer/);
  t.throws(() => b.compute(d.handle, {}, {}, undefined, { grad: 1 as never }), /options.grad/);
  await t.rejects(b.compute(d.handle, {}, {}, undefined, {}), /no tap "p3"/);
  t.throws(() => b.fgdMasks({}, 1e6, 1e6, 1e6), /at most 1e8/);
  t.throws(() => b.fgdMasks({}, -1, 2, 2), /n must be a positive integer/);
  await t.rejects(b.fgdMasks({ boxes: [tensor('float32', [3], [1, 2, 3])], imageSizes: [[4, 4]] }, 1, 2, 2), /boxes\[0\] must be \(K, 4\)/);
  t.throws(() => b.createStep({}, [], '{}'), /student to be a detector/);
});
