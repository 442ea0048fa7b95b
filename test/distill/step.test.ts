// The distillation step on narrow real detectors (64-128 px images): frozen teachers pinned
// to eval, bit-identical teacher weights, one optimizer over student + distillers, decreasing
// distillation losses for every adapter case and for the heterogeneous pairs (Swin-T -> ResNet-18,
// ResNet-50 at twice the input size), ensemble reductions, the feature cache, and a student
// exported without the distiller modules.
import t from 'tap';
import { join } from 'node:path';
import { createDetector, type Detector, type Target } from '../../src/detector.js';
import { toBytes, toNumbers, type Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import {
  Distiller,
  DistillSession,
  distillSessionOf,
  distillStep,
  FeatureCache,
  padBatch,
  weightsHash,
  type DistillStepResult,
} from '../../src/distill/index.js';
import { tensor } from '../../src/tensor.js';
import { haveAddon, tempDir } from '../helpers.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function batch(n: number, size: number, seed: number): { images: Tensor<'float32'>[]; targets: Target[] } {
  const r = rng(seed);
  const images: Tensor<'float32'>[] = [];
  const targets: Target[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Float32Array(3 * size * size);
    for (let j = 0; j < data.length; j++) data[j] = 0.3 + 0.3 * r();
    const x = Math.floor(r() * size * 0.4), y = Math.floor(r() * size * 0.4);
    const w = Math.floor(size * 0.4), h = Math.floor(size * 0.35);
    for (let c = 0; c < 3; c++) for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) data[c * size * size + yy * size + xx] = c === i % 3 ? 0.95 : 0.1;
    images.push({ dtype: 'float32', shape: [3, size, size], data });
    targets.push({ boxes: [[x, y, x + w, y + h]], labels: [i % 2] });
  }
  return { images, targets };
}

const distillSum = (r: DistillStepResult, prefix = 'distill.'): number =>
  Object.entries(r.losses).filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);

async function stateBytes(d: Detector): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of await d.stateDict()) out.set(k, Buffer.from(toBytes(v)));
  return out;
}

const student = () => createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.25, minSize: 64, maxSize: 64 });

t.test('ResNet-50 teacher at twice the input size: frozen, eval pinned, bit-identical, decreasing loss, student exported alone', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const teacher = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 2, widthMult: 0.125, minSize: 128, maxSize: 128 });
  const before = await stateBytes(teacher);
  const session = await DistillSession.create(
    s,
    [{ name: 'r50', model: teacher, distiller: { taps: ['p3', 'p4', 'p5'], losses: [{ type: 'mse', weight: 0.01 }] } }],
    { optimizer: { type: 'sgd', lr: 0.05, momentum: 0, maxGradNorm: 1 } },
  );
  t.equal((await teacher.info()).trainableParameters, 0, 'every teacher parameter is frozen');
  const names = session.parameterNames();
  t.ok(names.includes('distill.r50.pairs.p3.adapter.conv.weight'), 'the optimizer covers the adapters');
  t.ok(names.some((n) => n.startsWith('student.backbone.')), 'and the student');
  const b = batch(2, 64, 1);
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    await teacher.train(true); // a training loop that flips every model to train mode...
    await s.train(true);
    const r = await session.step(b);
    t.same(r.teachersTraining, [false], `step ${i}: the teacher ran in eval mode`);
    t.equal(r.studentTraining, true);
    t.ok(Number.isFinite(r.loss) && Math.abs(r.loss - Object.values(r.losses).reduce((a, v) => a + v, 0)) < 1e-3 * Math.abs(r.loss), 'loss is the sum of the named losses');
    t.same(Object.keys(r.losses).filter((k) => k.startsWith('distill.')).sort(), ['distill.p3.mse', 'distill.p4.mse', 'distill.p5.mse']);
    t.equal(r.adapters['r50/p3'], 'conv1x1+resize', '64 -> 32 channels, 8x8 -> 16x16');
    seen.push(distillSum(r));
  }
  t.equal(teacher.info().training, false, 'the teacher is back in eval after the last step');
  // Small clipped SGD steps on one batch: the distillation loss goes down at every step.
  t.ok(seen.every((v, i) => i === 0 || v < (seen[i - 1] as number)), `distillation loss decreases: ${seen.map((v) => v.toFixed(4)).join(' ')}`);
  const after = await stateBytes(teacher);
  t.same([...after.keys()], [...before.keys()]);
  t.ok([...before].every(([k, v]) => after.get(k)!.equals(v)), 'teacher weights and buffers are bit-identical');
  // Export: the student alone, no adapter or loss-side module.
  const dir = tempDir(t);
  await session.exportStudent(join(dir, 'student.safetensors'));
  const saved = await loadSafetensors(join(dir, 'student.safetensors'));
  t.same([...saved.tensors.keys()].sort(), [...(await s.stateDict()).keys()].sort(), 'exported keys are the student state dict');
  t.notOk([...saved.tensors.keys()].some((k) => k.includes('pairs.') || k.includes('adapter')), 'no distiller keys');
});

t.test('every adapter case runs steps with a decreasing distillation loss', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const mk = (widthMult: number, size: number) => createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult, minSize: size, maxSize: size });
  const teachers = [
    { name: 'identity', model: await mk(0.25, 64) },
    { name: 'conv', model: await mk(0.125, 64) },
    { name: 'resize', model: await mk(0.25, 128) },
    { name: 'both', model: await mk(0.125, 128) },
  ];
  const session = await DistillSession.create(
    s,
    teachers.map((x) => ({ ...x, distiller: { taps: ['p3', 'p4'], losses: [{ type: 'mse' }] } })),
    { optimizer: { type: 'sgd', lr: 0.05, momentum: 0, maxGradNorm: 1 } },
  );
  const b = batch(2, 64, 2);
  const first: Record<string, number> = {};
  let last: DistillStepResult | null = null;
  for (let i = 0; i < 5; i++) {
    last = await session.step(b);
    if (i === 0) for (const x of teachers) first[x.name] = distillSum(last, `distill.${x.name}.`);
  }
  t.same(
    Object.fromEntries(teachers.map((x) => [x.name, last!.adapters[`${x.name}/p3`]])),
    { identity: 'identity', conv: 'conv1x1', resize: 'resize', both: 'conv1x1+resize' },
  );
  for (const x of teachers) {
    const end = distillSum(last!, `distill.${x.name}.`);
    t.ok(end < (first[x.name] as number), `${x.name}: ${first[x.name]} -> ${end}`);
  }
});

t.test('Swin-T teacher into a ResNet-18 student; ensemble mean is half the sum; FGD and MGD in one step', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const swin = await createDetector({ arch: 'retinanet_swin_t_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 });
  const r50 = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 2, widthMult: 0.125, minSize: 128, maxSize: 128 });
  const b = batch(2, 64, 3);
  // Direct single-teacher distillation, Swin-T -> ResNet-18, a few steps.
  const seen: number[] = [];
  const sessionsSeen = new Set<DistillSession>();
  for (let i = 0; i < 5; i++) {
    await swin.train(true);
    const r = await distillStep(s, [{ name: 'swin', model: swin, distiller: { taps: ['p3', 'p4', 'p5'], losses: [{ type: 'mse' }, { type: 'cwd', weight: 0.5 }] } }], b, {
      optimizer: { type: 'sgd', lr: 0.05, momentum: 0, maxGradNorm: 1 },
    });
    t.same(r.teachersTraining, [false]);
    seen.push(distillSum(r));
    sessionsSeen.add(distillSessionOf(s)!);
  }
  t.equal(sessionsSeen.size, 1, 'distillStep keeps one session (one optimizer) across calls with equal configs');
  // Swin's drop path is stochastic in train mode; a session pins eval, so the maps repeat exactly.
  const swinSession = await DistillSession.create(s, [{ name: 'swin', model: swin, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }]);
  await swin.train(true);
  const f1 = await swinSession.teacherFeatures(0, b.images);
  await swin.train(true);
  const f2 = await swinSession.teacherFeatures(0, b.images);
  t.same(toNumbers(f1.p3!), toNumbers(f2.p3!), 'Swin teacher features are deterministic (eval pinned, no drop path)');
  await swin.train(true);
  const fTrain = await swin.features(b.images);
  t.notSame(toNumbers(fTrain.p3!), toNumbers(f1.p3!), 'while in train mode its drop path would change them');
  t.ok((seen.at(-1) as number) < (seen[0] as number), `Swin-T -> R18 distillation loss decreases: ${seen.map((v) => v.toFixed(4)).join(' ')}`);
  // Ensemble: the same distillers under "sum" and "mean" with lr 0 (nothing moves).
  const fgd = await Distiller.create({ student_channels: 64, teacher_channels: 32, taps: ['p3', 'p4'], losses: [{ type: 'fgd', options: { alpha_fgd: 0.01 } }] });
  const mse = await Distiller.create({ student_channels: 64, teacher_channels: 32, taps: ['p3'], losses: [{ type: 'mse' }] });
  const teachers = [
    { name: 'swin', model: swin, distiller: fgd },
    { name: 'r50', model: r50, distiller: mse },
  ];
  const sum = await DistillSession.create(s, teachers, { ensemble: 'sum', optimizer: { lr: 0 } });
  const mean = await DistillSession.create(s, teachers, { ensemble: 'mean', optimizer: { lr: 0 } });
  const rs = await sum.step(b);
  const rm = await mean.step(b);
  t.ok('distill.swin.p3.fgd.fg' in rs.losses && 'distill.r50.p3.mse' in rs.losses, 'keys name the teacher');
  for (const [k, v] of Object.entries(rs.losses)) {
    const want = k.startsWith('distill.') ? v / 2 : v;
    t.ok(Math.abs((rm.losses[k] as number) - want) <= 1e-5 * Math.abs(want) + 1e-9, `${k}: mean ${rm.losses[k]} vs sum/2 ${want}`);
  }
  // MGD joins the same step.
  const withMgd = await DistillSession.create(s, [{ name: 'r50', model: r50, distiller: { taps: ['p3'], losses: [{ type: 'mgd', options: { alpha_mgd: 2e-3 } }] } }]);
  const rg = await withMgd.step(b);
  t.ok((rg.losses['distill.p3.mgd'] as number) > 0, 'mgd term present');
});

t.test('teacher features cached on disk give the same maps and drive a step', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const teacher = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 2, widthMult: 0.125, minSize: 128, maxSize: 128 });
  const session = await DistillSession.create(s, [{ name: 'r50', model: teacher, distiller: { taps: ['p3', 'p4'], losses: [{ type: 'mse' }] } }]);
  const cache = new FeatureCache(tempDir(t));
  const hash = await weightsHash(teacher);
  t.match(hash, /^[0-9a-f]{64}$/);
  const b = batch(2, 64, 4);
  const keys = [0, 1].map((i) => ({ model: 'retinanet_resnet50_fpn@128', weights: hash, image: `img${i}`, transform: 'min128-max128' }));
  const compute = (images: Tensor[]) => session.teacherFeatures(0, images);
  const cached = await cache.batch(keys, b.images, compute);
  t.equal(cache.misses, 2);
  const again = await cache.batch(keys, b.images, compute);
  t.equal(cache.hits, 2, 'second pass reads the files');
  const live = await session.teacherFeatures(0, b.images);
  for (const tap of ['p3', 'p4']) {
    t.same(cached[tap]!.shape, live[tap]!.shape, `${tap} shape`);
    const a = toNumbers(again[tap]!), l = toNumbers(live[tap]!);
    const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - (l[i] as number))), 0);
    const scale = l.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    // Batch of one vs batch of two: the same maps up to float32 summation order.
    t.ok(worst <= 1e-5 * scale, `${tap}: cached vs batched teacher run differ by ${worst} (max |value| ${scale})`);
  }
  const r = await session.step({ ...b, teacherFeatures: [cached] });
  t.ok('distill.p3.mse' in r.losses && r.teachersTraining[0] === false);
  // A teacher known only by its cached features (no model in memory): its strides and the image
  // sizes the features were computed at come with it.
  const spec = { name: 'r50', model: null, channels: 32, distiller: { taps: ['p3', 'p4'], losses: [{ type: 'mse' as const }] } };
  await t.rejects(DistillSession.create(s, [spec]), /has no model, so it needs the strides of its taps/);
  const offline = await DistillSession.create(s, [{ ...spec, strides: teacher.featureStrides }]);
  const sizes = teacher.evalImageSizes(b.images.map((im) => [im.shape[1], im.shape[2]] as [number, number]));
  t.same(sizes, [[128, 128], [128, 128]], "the teacher's own resize rule");
  const ro = await offline.step({ ...b, teacherFeatures: [cached], teacherImageSizes: [sizes] });
  t.equal(ro.adapters['r50/p3'], 'conv1x1+resize');
  await t.rejects(offline.step({ ...b, teacherFeatures: [cached] }), /cached features need the image sizes they were computed at/);
  await t.rejects(offline.step(b), /no model and no cached features/);
  t.not(await weightsHash(s), hash, 'different models hash differently');
});

t.test('bad teacher setups are clear errors', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const teacher = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 });
  await t.rejects(DistillSession.create(s, [{ name: 'x', model: teacher, distiller: { taps: ['p9'], losses: [{ type: 'mse' }] } }]), /student tap "p9"/);
  await t.rejects(
    DistillSession.create(s, [{ name: 'x', model: teacher, distiller: { taps: ['p3'], teacher_channels: 48, losses: [{ type: 'mse' }] } }]),
    /expects 48 teacher channels, the teacher has 32/,
  );
  await t.rejects(DistillSession.create(s, [{ name: 'x', model: s, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }]), /student itself/);
  await t.rejects(DistillSession.create(s, [{ name: 'x', model: teacher, distiller: { taps: ['p3'], losses: [{ type: 'kd' }] } }]), /unknown distillation loss "kd"/);
  await t.rejects(DistillSession.create(s, []), /at least one teacher/);
});

t.test('padBatch zero-pads per-image maps bottom/right', async (t) => {
  const a = tensor('float32', [1, 1, 1, 2], [1, 2]);
  const b2 = tensor('float32', [1, 1, 2, 1], [3, 4]);
  const out = padBatch([{ p3: a }, { p3: b2 }]);
  t.same(out.p3!.shape, [2, 1, 2, 2]);
  t.same(toNumbers(out.p3!), [1, 2, 0, 0, 3, 0, 4, 0]);
  t.throws(() => padBatch([{ p3: a }, { p3: tensor('float32', [1, 2, 1, 1], [1, 2]) }]), /2 channels, expected 1/);
  t.throws(() => padBatch([]), /at least one image/);
});

t.test('with detection_weight 0 the distillation loss alone moves the student (through its FPN into the backbone)', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const teacher = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 64, maxSize: 64 });
  const session = await DistillSession.create(s, [{ name: 't', model: teacher, distiller: { taps: ['p3'], losses: [{ type: 'mse' }] } }], {
    detectionWeight: 0,
    optimizer: { type: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 },
  });
  const before = await s.stateDict();
  const r = await session.step(batch(2, 64, 5));
  t.equal(r.losses.classification, 0, 'detection losses are reported as weighted (0)');
  const after = await s.stateDict();
  const moved = (k: string) => !Buffer.from(toBytes(before.get(k)!)).equals(Buffer.from(toBytes(after.get(k)!)));
  const keys = [...before.keys()];
  t.ok(keys.filter((k) => k.startsWith('backbone.fpn.')).some(moved), 'FPN weights move');
  t.ok(keys.filter((k) => k.startsWith('backbone.body.layer4.')).some(moved), 'backbone weights move');
  t.notOk(keys.filter((k) => k.startsWith('head.')).some(moved), 'the head (not on the p3 path) does not');
});

/** Images of the given (h, w) with one box each (different aspect ratios in one batch). */
function sizedBatch(sizes: [number, number][], seed: number): { images: Tensor<'float32'>[]; targets: Target[] } {
  const r = rng(seed);
  const images: Tensor<'float32'>[] = [];
  const targets: Target[] = [];
  for (const [i, [h, w]] of sizes.entries()) {
    const data = new Float32Array(3 * h * w);
    for (let j = 0; j < data.length; j++) data[j] = 0.3 + 0.3 * r();
    const bw = Math.floor(w * 0.4), bh = Math.floor(h * 0.35);
    const x = Math.floor(r() * (w - bw)), y = Math.floor(r() * (h - bh));
    for (let c = 0; c < 3; c++) for (let yy = y; yy < y + bh; yy++) for (let xx = x; xx < x + bw; xx++) data[(c * h + yy) * w + xx] = c === i % 3 ? 0.95 : 0.1;
    images.push({ dtype: 'float32', shape: [3, h, w], data });
    targets.push({ boxes: [[x, y, x + bw, y + bh]], labels: [i % 2] });
  }
  return { images, targets };
}

t.test('images of different sizes: cached teachers get the live run\'s image sizes and the same aligned losses', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const teacher = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 2, widthMult: 0.125, minSize: 128, maxSize: 128 });
  const distiller = { taps: ['p3', 'p4', 'p5', 'p6', 'p7'], losses: [{ type: 'mse' as const }, { type: 'fgd' as const }] };
  const session = await DistillSession.create(s, [{ name: 'r50', model: teacher, distiller }], { optimizer: { lr: 0 } });
  // The second image is shorter (teacher: 120x128 in a 128x128 batch), so its valid cells are not
  // the whole map; both pad to 128 on their own, so the cached maps equal the batched ones.
  const b = sizedBatch([[64, 64], [60, 64]], 6);
  const live = await session.step(b);
  t.equal(live.adapters['r50/p3'], 'conv1x1+resize');
  t.same(teacher.evalImageSizes([[64, 64], [60, 64]]), [[128, 128], [120, 128]], "the teacher's resize rule, as its run reports");
  t.same((await teacher.run(b.images, null, { features: true })).imageSizes, [[128, 128], [120, 128]]);
  // Features cached one image at a time, zero-padded into a batch: the step derives their image
  // sizes from the teacher's resize rule, the same sizes the live run reports.
  const per = [];
  for (const im of b.images) per.push(await session.teacherFeatures(0, [im]));
  const cached = padBatch(per);
  t.same(cached.p3!.shape, [2, 32, 16, 16]);
  const fromCache = await session.step({ ...b, teacherFeatures: [cached] });
  for (const [k, v] of Object.entries(live.losses)) {
    if (!k.startsWith('distill.')) continue;
    t.ok(Math.abs((fromCache.losses[k] as number) - v) <= 1e-4 * Math.abs(v) + 1e-7, `${k}: cached ${fromCache.losses[k]} = live ${v} (padding is never read)`);
  }
});

t.test('ensemble "maps": two identical teachers are one teacher; one distiller, one teacher\'s weight', async (t) => {
  if (!haveAddon(t)) return;
  const s = await student();
  const mk = () => createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.25, minSize: 96, maxSize: 96 });
  const a = await mk();
  const twin = await mk();
  const sd = await a.stateDict();
  await twin.loadStateDict(sd);
  const other = await mk();
  const distiller = { seed: 3, taps: ['p3', 'p4'], losses: [{ type: 'mse' as const }, { type: 'pkd' as const, weight: 0.5 }] };
  const b = sizedBatch([[64, 64], [48, 64]], 7);
  const one = await (await DistillSession.create(s, [{ name: 'a', model: a, distiller }], { optimizer: { lr: 0 } })).step(b);
  const mapsSession = await DistillSession.create(
    s,
    [
      { name: 'a', model: a, distiller },
      { name: 'twin', model: twin, distiller },
    ],
    { ensemble: 'maps', optimizer: { lr: 0 } },
  );
  t.notOk(mapsSession.parameterNames().some((n) => n.startsWith('distill.twin.')), 'one distiller: the first teacher\'s');
  t.equal(mapsSession.teachers[1]!.distiller, null);
  const maps = await mapsSession.step(b);
  t.same(Object.keys(maps.losses).sort(), Object.keys(one.losses).sort(), 'the names of one teacher: distill.<pair>.<term>');
  for (const [k, v] of Object.entries(one.losses)) {
    t.ok(Math.abs((maps.losses[k] as number) - v) <= 1e-5 * Math.abs(v) + 1e-8, `${k}: maps of two identical teachers ${maps.losses[k]} = one teacher ${v}`);
  }
  // Another teacher changes the averaged map; "sum" would double the weight, "maps" does not.
  const mixed = await (
    await DistillSession.create(
      s,
      [
        { name: 'a', model: a, distiller },
        { name: 'other', model: other, distiller },
      ],
      { ensemble: 'maps', optimizer: { lr: 0 } },
    )
  ).step(b);
  t.not(mixed.losses['distill.p3.mse'], one.losses['distill.p3.mse'], 'a different second teacher moves the averaged map');
  const sum = await (
    await DistillSession.create(
      s,
      [
        { name: 'a', model: a, distiller },
        { name: 'twin', model: twin, distiller },
      ],
      { ensemble: 'sum', optimizer: { lr: 0 } },
    )
  ).step(b);
  t.ok(Math.abs((sum.losses['distill.a.p3.mse'] as number) + (sum.losses['distill.twin.p3.mse'] as number) - 2 * (one.losses['distill.p3.mse'] as number)) < 1e-4 * (one.losses['distill.p3.mse'] as number), '"sum" of two identical teachers is twice one teacher');
  // Every teacher needs the first one's channels.
  const narrow = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.125, minSize: 96, maxSize: 96 });
  await t.rejects(
    DistillSession.create(s, [{ name: 'a', model: a, distiller }, { name: 'n', model: narrow, distiller }], { ensemble: 'maps' }),
    /teachers\[1\] \("n"\): pair "p3" expects 64 teacher channels, the teacher has 32/,
  );
});
