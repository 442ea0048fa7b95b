/**
 * `mtpd demo --task instance`: the config (a Mask R-CNN student at the demo's low resolution,
 * the RetinaNet pool at rising resolutions, distilled on the levels of equal stride) and its
 * errors. The run itself is the demo's (test/demo.test.ts covers the pipeline it calls).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEMO_INSTANCE, DEMO_POOL, demoConfig, demoModelNames, runDemo, shippedWeightsDir } from '../src/demo.js';
import { pairedLevels } from '../src/train/levels.js';
import { runHasMasks } from '../src/train/detection.js';
import { buildModel } from '../src/train/models.js';
import { runCli } from './cli-helper.js';
import { haveAddon, tempDir } from './helpers.js';

t.test('the instance demo config: a Mask R-CNN student at 96 px, the RetinaNet pool at 128-192 px (Student IV)', async (t) => {
  const c = demoConfig('/tmp/x', shippedWeightsDir(), 1, 'instance');
  t.equal(c.student.arch, DEMO_INSTANCE.student.arch);
  t.match(c.student.arch, /^maskrcnn_/);
  t.equal(c.student.weights, join(shippedWeightsDir(), `${DEMO_INSTANCE.student.name}.safetensors`));
  t.equal(c.output, join('/tmp/x', 'run-instance'), 'its own run folder beside the detection demo');
  t.equal(c.data.root, join('/tmp/x', 'data'), 'the same demo data');
  t.ok(runHasMasks(c), 'the loader makes instance masks');
  const sizes = c.teachers.map((m) => m.minSize as number);
  t.ok(sizes.every((r) => r > (c.student.minSize as number)), 'every teacher at a higher resolution than the student');
  t.ok(c.teachers.every((m) => m.arch === DEMO_POOL.teachers[0].arch), 'the RetinaNet pool teaches it');
  t.same(c.baselines, [...DEMO_INSTANCE.baselines]);
  t.ok(c.baselines.includes('direct') && c.baselines.includes('longer'), 'progressive against direct distillation and longer training');
  t.equal(c.schedule.iterations, DEMO_INSTANCE.iterations);
  t.match(c.student.options, DEMO_INSTANCE.runOptions, 'the run samples proposals and RoIs for 96 px images');
  t.same(demoModelNames('instance'), [DEMO_INSTANCE.student.name, ...DEMO_POOL.teachers.map((m) => m.name)]);
  const retrain = demoConfig('/tmp/x', null, 1, 'instance');
  t.equal(retrain.student.train?.iterations, DEMO_INSTANCE.student.iterations, '--retrain schedule of the student');
  for (const k of Object.keys(DEMO_INSTANCE.runOptions)) t.notOk(k in retrain.student.options, `--retrain keeps torchvision's ${k} (the recipe of the shipped student)`);
  const detection = demoConfig('/tmp/x', shippedWeightsDir(), 1);
  t.same(detection.baselines, ['longer', 'direct', 'ensemble'], 'the detection demo keeps its three baselines');
  t.equal(detection.schedule.iterations, 300);
});

t.test('the instance student pairs with the RetinaNet pool at p3..p5', async (t) => {
  if (!haveAddon(t)) return;
  const c = demoConfig(tempDir(t), null, 1, 'instance');
  const student = await buildModel(c.student, c, 8, { loadWeights: false });
  const teacher = await buildModel(c.teachers[0]!, c, 8, { loadWeights: false });
  t.same(student.featureNames, ['p2', 'p3', 'p4', 'p5', 'p6']);
  t.same(pairedLevels(student, teacher), ['p3', 'p4', 'p5']);
  await student.dispose();
  await teacher.dispose();
});

t.test('the shipped instance student loads strictly into the demo model', async (t) => {
  if (!haveAddon(t)) return;
  const c = demoConfig(tempDir(t), shippedWeightsDir(), 1, 'instance');
  t.ok(existsSync(c.student.weights as string), `${c.student.name}: shipped in demo/weights`);
  const det = await buildModel(c.student, c, 8);
  t.same(det.featureNames, ['p2', 'p3', 'p4', 'p5', 'p6'], `${c.student.name} loads (strict) and has P2-P6`);
  await det.dispose();
});

t.test('instance demo errors name the missing weights and the task', async (t) => {
  const dir = tempDir(t);
  const empty = join(dir, 'no-weights');
  mkdirSync(empty);
  await t.rejects(runDemo({ out: join(dir, 'demo'), weightsDir: empty, task: 'instance', log: () => undefined }), {
    code: 'ERR_MTPD_CONFIG',
    message: /the pool's weights are missing: .*mrcnn-r18-w025\.safetensors.*mtpd demo --retrain/,
  });
  t.notOk(existsSync(join(dir, 'demo', 'data')), 'no dataset was made');
  await t.rejects(runDemo({ out: join(dir, 'demo'), task: 'panoptic' as never, log: () => undefined }), { code: 'ERR_MTPD_ARGUMENT', message: /--task must be detection or instance/ });
  const r = runCli(['demo', '--task', 'instance', '--retrain', '--retrain-only', 'r18-w025', '--out', join(dir, 'demo2')]);
  t.equal(r.status, 1);
  t.match(r.stderr, /--retrain-only: no demo model "r18-w025" \(the pool: mrcnn-r18-w025, r18-w025-hr\)/);
});
