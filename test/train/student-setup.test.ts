import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { buildModel } from '../../src/train/models.js';
import { formatStudentSetup, resolveStudentSetup } from '../../src/train/student-setup.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon, tempDir } from '../helpers.js';

const cfg = (student: Record<string, unknown>) =>
  parseConfig({ data: { root: 'x', minSize: 64, maxSize: 80 }, student: { name: 's', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, ...student }, teachers: [{ name: 't', arch: 'retinanet_resnet18_fpn' }] });

t.test("auto: trainable BatchNorm and every stage for a student trained here, torchvision's frozen BN and 3 stages for given weights", async (t) => {
  const scratch = cfg({});
  t.equal(scratch.student.norm, 'auto');
  t.equal(scratch.student.trainableLayers, 'auto');
  t.same(resolveStudentSetup(scratch.student), { norm: 'bn', trainableLayers: 5 });
  t.same(resolveStudentSetup(cfg({ weights: 'ots.safetensors' }).student), { norm: 'frozen_bn', trainableLayers: 3 });
  t.same(resolveStudentSetup(cfg({ backbone: 'resnet50-0676ba61.pth' }).student), { norm: 'frozen_bn', trainableLayers: 3 }, 'a pretrained backbone is given weights too');
  t.same(resolveStudentSetup(cfg({ norm: 'frozen_bn' }).student), { norm: 'frozen_bn', trainableLayers: 5 }, 'each half on its own');
  t.same(resolveStudentSetup(cfg({ weights: 'w', norm: 'bn', trainableLayers: 0 }).student), { norm: 'bn', trainableLayers: 0 });
  t.same(resolveStudentSetup({ ...cfg({ weights: 'ots.safetensors' }).student, arch: 'maskrcnn_resnet50_fpn_v2' }), { norm: 'bn', trainableLayers: 3 }, "_v2: torchvision's BatchNorm rule");
  t.equal(formatStudentSetup({ norm: 'bn', trainableLayers: 5 }), 'trainable BatchNorm, 5 of 5 backbone stages trainable');
  t.throws(() => cfg({ trainableLayers: 6 }), { code: 'ERR_MTPD_CONFIG', message: /student\.trainableLayers/ });
  t.throws(() => cfg({ norm: 'gn' }), { message: /student\.norm/ });
  t.throws(
    () => parseConfig({ data: { root: 'x' }, student: { name: 's', arch: 'a' }, teachers: [{ name: 't', arch: 'a', norm: 'bn' }] }),
    { message: /unknown key "norm" in teachers\[0\]/ },
    'the setup is the student\'s: teachers have none',
  );
});

t.test('the student is built with its setup: norm layer and trainable parameters', async (t) => {
  if (!haveAddon(t)) return;
  const counts: Record<string, number> = {};
  for (const [norm, layers] of [
    ['bn', 5],
    ['frozen_bn', 5],
    ['bn', 3],
    ['frozen_bn', 3],
    ['bn', 0],
  ] as const) {
    const c = cfg({ norm, trainableLayers: layers });
    const det = await buildModel(c.student, c, 3, { loadWeights: false });
    const opts = JSON.parse(det.info().config) as { norm_layer: string; trainable_layers: number };
    t.equal(opts.norm_layer, norm);
    t.equal(opts.trainable_layers, layers);
    counts[`${norm}/${layers}`] = det.info().trainableParameters;
  }
  t.ok((counts['bn/5'] as number) > (counts['frozen_bn/5'] as number), 'trainable BN adds its affine parameters');
  t.ok((counts['frozen_bn/5'] as number) > (counts['frozen_bn/3'] as number), 'fewer stages, fewer trainable parameters');
  t.ok((counts['bn/3'] as number) > (counts['bn/0'] as number));
  // A teacher trained here (no weights, loadWeights false) trains everything; with weights it keeps torchvision's default.
  const c = cfg({});
  const teacher = await buildModel(c.teachers[0] as never, c, 3, { loadWeights: false });
  t.match(JSON.parse(teacher.info().config), { norm_layer: 'bn', trainable_layers: 5 });
});

t.test('a pretrained (frozen-BatchNorm) checkpoint loads into a student with trainable BatchNorm, and back', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const frozen = cfg({ norm: 'frozen_bn', trainableLayers: 3 });
  const a = await buildModel(frozen.student, frozen, 3, { loadWeights: false, seed: 1 });
  const file = join(dir, 'pretrained.safetensors');
  await a.saveWeights(file);
  const names = [...(await loadSafetensors(file)).tensors.keys()];
  t.notOk(names.some((n) => n.endsWith('num_batches_tracked')), 'a FrozenBatchNorm checkpoint has no step counters');
  const bn = cfg({ weights: file, norm: 'bn', trainableLayers: 5 });
  const b = await buildModel(bn.student, bn, 3);
  const sd = await b.stateDict();
  t.equal(Number((sd.get('backbone.body.bn1.num_batches_tracked')?.data as BigInt64Array)[0]), 0, 'the counter starts at 0');
  t.same(Array.from(sd.get('backbone.body.bn1.running_var')?.data as Float32Array), Array.from((await a.stateDict()).get('backbone.body.bn1.running_var')?.data as Float32Array), 'statistics loaded');
  const back = join(dir, 'bn.safetensors');
  await b.saveWeights(back);
  const c = await buildModel({ ...frozen.student, weights: back }, frozen, 3);
  t.ok(c, 'a BatchNorm checkpoint (with counters) loads into FrozenBatchNorm');
});
