import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { CheckpointManager } from '../../src/train/checkpoint.js';
import { type PipelineEvent, train } from '../../src/train/pipeline.js';
import { haveAddon, tempDir } from '../helpers.js';

function tinyConfig(dir: string, over: Record<string, unknown> = {}): Config {
  return parseConfig({
    output: join(dir, 'run'),
    threads: 0,
    seed: 3,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 8, size: 64, seed: 1 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 },
    teachers: [
      { name: 'r18', arch: 'retinanet_resnet18_fpn', widthMult: 0.25 },
      { name: 'r34', arch: 'retinanet_resnet34_fpn', widthMult: 0.25, minSize: 96, maxSize: 112 },
    ],
    schedule: { iterations: 3, lr: 0.005, warmupIterations: 1 },
    order: { method: 'bgs', k: 2, costs: { trainImages: 4, valImages: 2 } },
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
    ...over,
  });
}

t.test('the whole pipeline on tiny models: run folder, report, order, baselines', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = tinyConfig(dir);
  const events: PipelineEvent['type'][] = [];
  const report = await train(config, { quiet: true, log: () => undefined, onEvent: (e) => events.push(e.type) });
  const names = report.results.map((r) => r.name);
  t.ok(names.includes('student') && names.includes('r18') && names.includes('r34'));
  t.ok(report.order.length >= 1 && report.order.length <= 2, `order ${report.order.join(' -> ')}`);
  for (const [i, teacher] of report.order.entries()) t.ok(names.includes(`mtpd${i + 1}-${teacher}`), `stage ${i + 1} evaluated`);
  for (const b of ['longer', 'direct', 'ensemble']) t.ok(names.includes(`${b}1`), `${b} baseline`);
  for (const r of report.results) t.ok(r.stats.length === 12 && r.stats.every((s) => s >= -1 && s <= 1), `${r.name} has COCO stats`);
  for (const f of ['config.yaml', 'metrics.jsonl', 'costs.json', 'costs.png', 'order.json', 'report.json', 'report.md', 'loss.png', 'loss.svg', 'ap.png', 'models/student.safetensors']) {
    t.ok(existsSync(join(config.output, f)), f);
  }
  const metrics = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(metrics.some((m) => String(m.stage).startsWith('mtpd1-') && typeof m['distill.p3.mse'] === 'number'), 'distillation losses are logged by name');
  t.ok(events.includes('stage-start') && events.includes('step') && events.includes('evaluated'));

  // A second run finds every result and does no work.
  const again: PipelineEvent['type'][] = [];
  await train(config, { quiet: true, log: () => undefined, onEvent: (e) => again.push(e.type) });
  t.notOk(again.includes('step'), 'nothing is trained twice');
});

t.test('an AbortSignal stops with a checkpoint, and --resume continues the stage', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = tinyConfig(dir, { baselines: [], schedule: { iterations: 6, lr: 0.005, warmupIterations: 1 } });
  const ac = new AbortController();
  let steps = 0;
  await t.rejects(
    train(config, {
      quiet: true,
      log: () => undefined,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'step' && ++steps === 3) ac.abort();
      },
    }),
    { code: 'ERR_MTPD_ABORTED', message: /train:student: stopped at step 3/ },
  );
  const last = await new CheckpointManager(config.output).loadLast();
  t.same((last?.state as { stage: string; iter: number }).iter, 3);
  const seen: number[] = [];
  await train(config, { quiet: true, log: () => undefined, resume: true, onEvent: (e) => e.type === 'step' && e.stage === 'train:student' && seen.push(e.iter) });
  t.same(seen, [4, 5, 6], 'the interrupted stage continued at step 4');
});

t.test('what can be known before training is an error before training: device, unmatched FPNs', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const { systemInfo } = await import('../../src/runtime.js');
  if (!systemInfo().cuda.available) {
    await t.rejects(train(tinyConfig(dir, { device: 'cuda' }), { quiet: true, log: () => undefined }), { message: /cuda/i });
    t.notOk(existsSync(join(dir, 'data')), 'nothing was written (no dataset made, no training)');
  }
  // A teacher whose FPN has only p3 cannot be matched to a student with p4..p5.
  const events: string[] = [];
  const bad = tinyConfig(dir, {
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, options: { returned_layers: [3, 4], extra_blocks: 'none', anchor_sizes: [32, 64] } },
    teachers: [{ name: 'p3only', arch: 'retinanet_resnet18_fpn', widthMult: 0.25, options: { returned_layers: [2], extra_blocks: 'none', anchor_sizes: [32] } }],
  });
  await t.rejects(train(bad, { quiet: true, log: () => undefined, onEvent: (e) => events.push(e.type) }), {
    code: 'ERR_MTPD_CONFIG',
    message: /teacher p3only cannot be distilled into student student: .*share no level/,
  });
  t.notOk(events.includes('step'), 'no training step ran');
  const levels = tinyConfig(dir, { distill: { loss: 'mse', levels: ['p3', 'p9'] } });
  await t.rejects(train(levels, { quiet: true, log: () => undefined }), { message: /teacher r18 cannot be distilled .*distill\.levels names p9/ });
});
