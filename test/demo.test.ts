import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEMO_POOL, demoConfig, runDemo, shippedWeightsDir } from '../src/demo.js';
import { buildModel } from '../src/train/models.js';
import { runCli } from './cli-helper.js';
import { haveAddon, tempDir } from './helpers.js';

t.test('the demo config: a narrow ResNet student, teachers of rising capacity including a Swin', async (t) => {
  const c = demoConfig('/tmp/x', shippedWeightsDir());
  t.match(c.student.arch, /resnet/);
  t.ok(c.teachers.length >= 3, 'several teachers');
  t.ok(c.teachers.some((m) => /swin/.test(m.arch)), 'at least one Swin');
  t.ok(c.teachers.every((m) => m.widthMult > c.student.widthMult || /resnet34|swin/.test(m.arch)), 'every teacher is bigger than the student');
  t.same(c.baselines, ['longer', 'direct', 'ensemble']);
  t.equal(c.data.root, join('/tmp/x', 'data'));
  for (const m of [c.student, ...c.teachers]) t.equal(m.weights, join(shippedWeightsDir(), `${m.name}.safetensors`));
  t.ok([DEMO_POOL.student, ...DEMO_POOL.teachers].every((m) => m.iterations > 0), '--retrain schedules');
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
  t.match(r.stderr, /--retrain-only: no demo model "resnet9000" \(the pool: r18-w025, r18-w05, r34-w05, swin-t-w025\)/);
  const r2 = runCli(['demo', '--retrain-only', 'r18-w05', '--out', join(dir, 'demo3')]);
  t.match(r2.stderr, /--retrain-only needs --retrain/);
});
