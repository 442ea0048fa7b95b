import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { CheckpointManager } from '../../src/train/checkpoint.js';
import { formatRunSummary, type PipelineEvent, train } from '../../src/train/pipeline.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { parse as parseYaml } from 'yaml';
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

/** Every tensor of a weights file, as raw bytes. */
async function tensorsOf(file: string): Promise<Map<string, Buffer>> {
  const { tensors } = await loadSafetensors(file);
  return new Map([...tensors].map(([k, v]) => [k, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength)]));
}

/**
 * What a stage did to the student's backbone, from its weights before and after: which
 * parameters moved (the trainable stages) and whether BatchNorm statistics moved (trainable BN).
 */
async function moved(before: string | Map<string, Buffer>, after: string): Promise<(name: string) => boolean> {
  const a = typeof before === 'string' ? await tensorsOf(before) : before;
  const b = await tensorsOf(after);
  return (name: string) => {
    const x = a.get(name);
    const y = b.get(name);
    if (!x || !y) throw new Error(`${name} missing in ${after}`);
    return !x.equals(y);
  };
}

t.test('the whole pipeline on tiny models: run folder, report, order, named baselines, one student setup in every stage', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  // An explicit setup that is neither 'auto' choice: trainable BN, the two top stages.
  const config = tinyConfig(dir, { student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, norm: 'bn', trainableLayers: 2 }, baselines: ['longer', 'direct'] });
  const events: PipelineEvent['type'][] = [];
  const lines: string[] = [];
  const report = await train(config, { quiet: true, log: (l) => lines.push(l), onEvent: (e) => events.push(e.type) });
  const names = report.results.map((r) => r.name);
  t.ok(names.includes('student') && names.includes('r18') && names.includes('r34'));
  t.ok(report.order.length >= 1 && report.order.length <= 2, `order ${report.order.join(' -> ')}`);
  const k = report.order.length;
  const strongest = report.order[k - 1] as string;
  for (const [i, teacher] of report.order.entries()) t.ok(names.includes(`mtpd${i + 1}-${teacher}`), `stage ${i + 1} evaluated`);
  t.ok(names.includes(`longer-${k}x`), `longer-${k}x`);
  t.ok(names.includes(`direct-${strongest}`), `direct-${strongest}`);
  t.same(report.budget, { stages: k, stageIterations: 3 });
  t.same(report.student, { name: 'student', norm: 'bn', trainableLayers: 2 });
  for (const r of report.results) t.ok(r.stats.length === 12 && r.stats.every((s) => s >= -1 && s <= 1), `${r.name} has COCO stats`);
  for (const f of ['config.yaml', 'metrics.jsonl', 'costs.json', 'costs.png', 'order.json', 'report.json', 'report.md', 'loss.png', 'loss.svg', 'ap.png', 'models/student.safetensors']) {
    t.ok(existsSync(join(config.output, f)), f);
  }
  const metrics = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(metrics.some((m) => String(m.stage).startsWith('mtpd1-') && typeof m['distill.p3.pkd'] === 'number'), 'distillation losses are logged by name (pkd by default)');
  t.equal(metrics.filter((m) => m.stage === `longer-${k}x`).length, 3 * k, 'longer: one schedule of k x the stage iterations');
  t.equal(metrics.filter((m) => m.stage === `direct-${strongest}`).length, 3 * k, 'direct: the same budget in one schedule');
  t.ok(events.includes('stage-start') && events.includes('step') && events.includes('evaluated'));
  t.ok(lines.some((l) => /^mtpd1-\S+: distillation\/detection loss ratio \d+\.\d+ over the first 3 steps \(\d+\.\d+ at the first; pkd, weight 1\)$/.test(l)), 'the ratio is logged when a distillation stage starts');
  t.ok(lines.some((l) => /^student student: trainable BatchNorm, 2 of 5 backbone stages trainable in every stage$/.test(l)), 'the setup is logged');

  // The resolved setup is in the run's config.yaml and report.
  const written = parseYaml(readFileSync(join(config.output, 'config.yaml'), 'utf8')) as { student: { norm: string; trainableLayers: number } };
  t.match(written.student, { norm: 'bn', trainableLayers: 2 });
  t.match(readFileSync(join(config.output, 'report.md'), 'utf8'), /student student: trainable BatchNorm, 2 of 5 backbone stages trainable in every stage/);
  const summary = formatRunSummary(report);
  for (const n of [`longer-${k}x`, `direct-${strongest}`, `mtpd${k}-${strongest}`, 'student, off-the-shelf']) t.match(summary, n, `summary row ${n}`);

  // Every stage kind trained the student with this setup: stem, layer1 and layer2 never move,
  // layer4 and BatchNorm (parameters and statistics) do.
  const model = (n: string) => join(config.output, 'models', `${n}.safetensors`);
  const { buildModel } = await import('../../src/train/models.js');
  const { stageSeed } = await import('../../src/train/stage-seed.js');
  const init = await buildModel(config.student, config, 8, { loadWeights: false, seed: stageSeed(config.seed, 'train:student') });
  const initWeights = new Map([...(await init.stateDict())].map(([key, v]) => [key, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength)]));
  const stages: [string, string | Map<string, Buffer>][] = [['student (off-the-shelf, from scratch)', initWeights]];
  let prev = model('student');
  for (const [i, teacher] of report.order.entries()) {
    stages.push([`mtpd${i + 1}-${teacher}`, prev]);
    prev = model(`mtpd${i + 1}-${teacher}`);
  }
  stages.push([`longer-${k}x`, model('student')], [`direct-${strongest}`, model('student')]);
  for (const [stage, from] of stages) {
    const out = model(stage.startsWith('student') ? 'student' : stage);
    const m = await moved(from, out);
    t.notOk(m('backbone.body.conv1.weight') || m('backbone.body.layer1.0.conv1.weight') || m('backbone.body.layer2.0.conv1.weight'), `${stage}: frozen stages stay`);
    t.ok(m('backbone.body.layer4.0.conv1.weight') && m('backbone.body.layer3.0.conv1.weight'), `${stage}: the two top stages train`);
    t.ok(m('backbone.body.layer4.0.bn1.weight') && m('backbone.body.bn1.running_mean'), `${stage}: BatchNorm trains (affine and statistics)`);
  }

  // A second run finds every result and does no work, and still reports every stage.
  const again: PipelineEvent['type'][] = [];
  const second = await train(config, { quiet: true, log: () => undefined, onEvent: (e) => again.push(e.type) });
  t.notOk(again.includes('step'), 'nothing is trained twice');
  t.same(second.results.map((r) => r.name), names, 'the report of a rerun lists every stage');
});

t.test("a student with given weights: auto is frozen BatchNorm and 3 trainable stages, in every stage", async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  // The off-the-shelf student of a first tiny run is the "pretrained" student of the second.
  const first = tinyConfig(dir, { baselines: [], order: { method: 'given', given: ['r18'], k: 1 } });
  await train(first, { quiet: true, log: () => undefined });
  const pretrained = join(first.output, 'models', 'student.safetensors');
  const config = tinyConfig(dir, {
    output: join(dir, 'run2'),
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, weights: pretrained },
    teachers: [{ name: 'r18', arch: 'retinanet_resnet18_fpn', widthMult: 0.25, weights: join(first.output, 'models', 'r18.safetensors') }],
    order: { method: 'given', given: ['r18'], k: 1 },
    baselines: ['longer', 'direct', 'ensemble'],
    distill: { loss: 'mse', weight: 1000 },
  });
  const lines: string[] = [];
  const report = await train(config, { quiet: true, log: (l) => lines.push(l) });
  t.same(report.student, { name: 'student', norm: 'frozen_bn', trainableLayers: 3 });
  t.same(report.results.map((r) => r.name), ['student', 'r18', 'mtpd1-r18', 'longer-1x', 'direct-r18'], 'a one-teacher order has no ensemble');
  t.ok(lines.some((l) => /^ensemble: skipped/.test(l)));
  t.ok(lines.some((l) => /^warning: mtpd1-r18: the distillation loss is \d+\.\dx the detection loss; .*Lower distill\.weight \(e\.g\. distill\.weight \S+ makes them equal\)/.test(l)), 'a swamping distillation loss is a warning');
  t.ok(lines.some((l) => /student: frozen BatchNorm, 3 of 5 backbone stages trainable in every stage \(auto: starts from given weights\)/.test(l)));
  const written = parseYaml(readFileSync(join(config.output, 'config.yaml'), 'utf8')) as { student: { norm: string; trainableLayers: number } };
  t.match(written.student, { norm: 'frozen_bn', trainableLayers: 3 });
  for (const stage of ['mtpd1-r18', 'longer-1x', 'direct-r18']) {
    const m = await moved(pretrained, join(config.output, 'models', `${stage}.safetensors`));
    t.notOk(m('backbone.body.conv1.weight') || m('backbone.body.layer1.0.conv1.weight'), `${stage}: stem and layer1 stay`);
    t.ok(m('backbone.body.layer2.0.conv1.weight'), `${stage}: layer2..4 train`);
    t.notOk(m('backbone.body.bn1.running_mean') || m('backbone.body.layer4.0.bn1.running_var') || m('backbone.body.layer4.0.bn1.weight'), `${stage}: BatchNorm is frozen`);
  }
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
    message: /teacher p3only cannot be distilled into student student: .*share no stride/,
  });
  t.notOk(events.includes('step'), 'no training step ran');
  const levels = tinyConfig(dir, { distill: { loss: 'mse', levels: ['p3', 'p9'] } });
  await t.rejects(train(levels, { quiet: true, log: () => undefined }), { message: /teacher r18 cannot be distilled .*distill\.levels names p9/ });
});
