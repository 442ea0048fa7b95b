import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { baselineStage, budgetSchedule, runBaseline } from '../../src/train/baselines.js';
import type { StagePlan } from '../../src/train/curriculum.js';
import { formatRunSummary, train } from '../../src/train/pipeline.js';
import { lrAt, totalIterations } from '../../src/train/schedule.js';
import { haveAddon, tempDir } from '../helpers.js';

const base = { data: { root: 'x' }, student: { name: 's', arch: 'retinanet_resnet18_fpn' }, teachers: [{ name: 't', arch: 'retinanet_resnet18_fpn' }] };
const stepSchedule = parseConfig({ ...base, schedule: { epochs: 12, warmupIterations: 5 } }).schedule;

t.test('the budget: one schedule of k x the stage iterations, its policy stretched over it', async (t) => {
  const stageIters = totalIterations(stepSchedule, 400, 4);
  t.equal(stageIters, 1200);
  const two = budgetSchedule(stepSchedule, stageIters, 2);
  t.equal(two.iterations, 2400);
  t.equal(two.epochs, undefined, 'given in steps, so it is exactly k stages whatever the rounding of epochs');
  t.equal(totalIterations(two, 400, 4), 2400);
  t.equal(two.warmupIterations, 5, 'warmup stays the same number of steps');
  // Step milestones are fractions: the 2x schedule drops at 2/3 and 11/12 of 2400 steps.
  t.equal(lrAt(two, 1599, 2400), stepSchedule.lr);
  t.equal(lrAt(two, 1600, 2400), stepSchedule.lr * 0.1);
  t.ok(Math.abs(lrAt(two, 2200, 2400) - stepSchedule.lr * 0.01) < 1e-12, 'and again at 11/12');
});

t.test("the paper's baselines: longer, direct from the strongest teacher, the ensemble of the order's maps", async (t) => {
  const order = ['r18', 'r34'];
  const longer = baselineStage('longer', order, stepSchedule, 100) as StagePlan;
  t.match(longer, { name: 'longer-2x', kind: 'detect', teachers: [], method: 'longer', role: 'baseline', step: 2, schedule: { iterations: 200 } });
  t.equal(longer.ensemble, undefined);
  const direct = baselineStage('direct', order, stepSchedule, 100) as StagePlan;
  t.match(direct, { name: 'direct-r34', kind: 'distill', teachers: ['r34'], method: 'direct', step: 2, schedule: { iterations: 200 } });
  t.equal(direct.ensemble, undefined, 'one teacher, one adapter set');
  const ens = baselineStage('ensemble', ['a', 'b', 'c'], stepSchedule, 100) as StagePlan;
  t.match(ens, { name: 'ensemble-a+b+c', kind: 'distill', ensemble: 'maps', method: 'ensemble', step: 3, schedule: { iterations: 300 } });
  t.same(ens.teachers, ['c', 'a', 'b'], 'the strongest first: the mean is taken on its grid, through its distiller');
  t.equal(baselineStage('ensemble', ['a'], stepSchedule, 100), null, 'a one-teacher ensemble would be direct distillation');
  t.match(baselineStage('longer', ['a'], stepSchedule, 100), { name: 'longer-1x', schedule: { iterations: 100 } });
  t.throws(() => baselineStage('direct', [], stepSchedule, 100), { code: 'ERR_MTPD_CONFIG', message: /baseline direct: the teacher order is empty/ });
  t.throws(() => baselineStage('bogus' as 'longer', ['a'], stepSchedule, 100), { message: /unknown baseline "bogus"/ });
});

t.test('every baseline starts from the off-the-shelf student, in one stage', async (t) => {
  const calls: [string, string][] = [];
  const runner = async (plan: StagePlan, from: string) => {
    calls.push([plan.name, from]);
    return { weights: `${plan.name}.safetensors` };
  };
  for (const b of ['longer', 'direct', 'ensemble'] as const) t.equal(await runBaseline(b, ['a', 'b'], 'ots', stepSchedule, 10, runner), `${calls.at(-1)?.[0]}.safetensors`);
  t.same(calls, [
    ['longer-2x', 'ots'],
    ['direct-b', 'ots'],
    ['ensemble-a+b', 'ots'],
  ]);
  t.equal(await runBaseline('ensemble', ['a'], 'ots', stepSchedule, 10, runner), 'skipped');
  t.equal(await runBaseline('longer', ['a'], 'ots', stepSchedule, 10, async () => null), null, 'stopped');
});

// Needs the native ensemble "maps" of the distillation step (the aligned-maps work).
t.test('the ensemble baseline on tiny models: one distiller over the mean of the teachers\' maps, the whole budget', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = parseConfig({
    output: join(dir, 'run'),
    threads: 0,
    seed: 2,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 8, size: 64, seed: 1 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 },
    teachers: [
      { name: 'a', arch: 'retinanet_resnet18_fpn', widthMult: 0.25 },
      { name: 'b', arch: 'retinanet_resnet34_fpn', widthMult: 0.25, minSize: 96, maxSize: 112 },
    ],
    schedule: { iterations: 2, lr: 0.005, warmupIterations: 1 },
    order: { method: 'given', given: ['a', 'b'], k: 2 },
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
  });
  const report = await train(config, { quiet: true, log: () => undefined, only: 'ensemble' });
  const r = report.results.find((x) => x.name === 'ensemble-a+b');
  t.ok(r, 'ensemble-a+b evaluated');
  t.match(r, { role: 'baseline', method: 'ensemble', step: 2, teachers: ['b', 'a'] });
  const recs = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((m) => m.stage === 'ensemble-a+b');
  t.equal(recs.length, 4, 'one schedule of 2 x 2 steps');
  const keys = Object.keys(recs[0] ?? {}).filter((k) => k.startsWith('distill.'));
  t.ok(keys.length > 0 && keys.every((k) => /^distill\.p\d\.pkd$/.test(k)), `one distiller's terms, named as for one teacher: ${keys.join(', ')}`);
  t.match(formatRunSummary(report), /ensemble-a\+b\s+mean of a \+ b maps, one 2x schedule/);
});
