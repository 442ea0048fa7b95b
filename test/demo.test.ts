import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEMO_POOL, demoConfig, runDemo, shippedWeightsDir } from '../src/demo.js';
import { buildModel } from '../src/train/models.js';
import { runCli } from './cli-helper.js';
import { haveAddon, tempDir } from './helpers.js';

t.test("the demo config: a low-resolution student, its own architecture at rising resolutions (the paper's Student IV)", async (t) => {
  const c = demoConfig('/tmp/x', shippedWeightsDir());
  t.match(c.student.arch, /resnet/);
  t.ok(c.teachers.length >= 3, 'several pool entries');
  const sizes = c.teachers.map((m) => m.minSize as number);
  t.same(sizes, [...sizes].sort((a, b) => a - b), 'teachers in rising resolution');
  t.ok(sizes.every((r) => r > (c.student.minSize as number)), 'every teacher sees the images at a higher resolution than the student');
  t.ok(c.teachers.every((m) => m.arch === c.student.arch && m.widthMult === c.student.widthMult), "the student's own architecture, as the paper's Student IV");
  t.same(c.baselines, ['longer', 'direct', 'ensemble']);
  t.equal(c.data.root, join('/tmp/x', 'data'));
  t.equal(c.data.synth?.difficulty, 'clear');
  t.equal(c.student.weights, join(shippedWeightsDir(), `${c.student.name}.safetensors`));
  for (const m of c.teachers) t.equal(m.weights, join(shippedWeightsDir(), `${DEMO_POOL.teachers[0].name}.safetensors`), `${m.name}: the shared teacher weights`);
  t.ok([DEMO_POOL.student, ...DEMO_POOL.teachers].every((m) => m.iterations > 0), '--retrain schedules');
  const retrain = demoConfig('/tmp/x', null);
  t.same(retrain.teachers.map((m) => m.name), DEMO_POOL.teachers.map((m) => m.name), '--retrain trains each teacher once');
  t.same(retrain.teachers[0]?.options.min_size, DEMO_POOL.teachers[0].minSizes, 'multi-scale over the pool resolutions');
});

t.test('the shipped pool loads strictly into the demo models', async (t) => {
  if (!haveAddon(t)) return;
  const c = demoConfig(tempDir(t), shippedWeightsDir());
  for (const m of [c.student, ...c.teachers]) {
    t.ok(existsSync(m.weights as string), `${m.name}: shipped`);
    const det = await buildModel(m, c, 8);
    t.same(det.featureNames, ['p3', 'p4', 'p5', 'p6', 'p7'], `${m.name} loads (strict) and has P3-P7`);
  }
});

t.test('demo errors come before any work and name what is wrong', async (t) => {
  const dir = tempDir(t);
  const empty = join(dir, 'no-weights');
  mkdirSync(empty);
  await t.rejects(runDemo({ out: join(dir, 'demo'), weightsDir: empty, log: () => undefined }), {
    code: 'ERR_MTPD_CONFIG',
    message: /the pool's weights are missing: .*r18-w025\.safetensors.*mtpd demo --retrain/,
  });
  t.notOk(existsSync(join(dir, 'demo', 'data')), 'no dataset was made');
  const r = runCli(['demo', '--retrain', '--retrain-only', 'resnet9000', '--out', join(dir, 'demo2')]);
  t.equal(r.status, 1);
  t.match(r.stderr, /--retrain-only: no demo model "resnet9000" \(the pool: r18-w025, r18-w025-hr\)/);
  const r2 = runCli(['demo', '--retrain-only', 'r18-w025-hr', '--out', join(dir, 'demo3')]);
  t.match(r2.stderr, /--retrain-only needs --retrain/);
});
