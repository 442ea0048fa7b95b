/**
 * The pipeline with Mask R-CNN students and teachers (tiny models, 64 px, a few steps): a
 * RetinaNet teaches a Mask R-CNN and back, distillation touches only the FPN levels of equal
 * stride (two-stage: p2..p5), the cost matrix is measured on those levels, every baseline and
 * `mtpd orders` run, and every table carries mask AP for the mask models.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { formatOrders, runOrders } from '../../src/train/orders.js';
import { formatResults, formatRunSummary, formatRunSummaryWithSpreads, train } from '../../src/train/pipeline.js';
import { haveAddon, tempDir } from '../helpers.js';

// Several tiny pipeline runs with Mask R-CNNs: longer than the suite's 600 s per file on a busy 2-core machine.
t.setTimeout(1_800_000);

const MRCNN = { arch: 'maskrcnn_resnet18_fpn', widthMult: 0.125 };
const RETINA = { arch: 'retinanet_resnet18_fpn', widthMult: 0.125 };

function tinyConfig(dir: string, over: Record<string, unknown> = {}): Config {
  return parseConfig({
    output: join(dir, 'run'),
    threads: 1,
    seed: 4,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 8, size: 64, seed: 3 } },
    student: { name: 'student', ...MRCNN },
    teachers: [
      { name: 'retina', ...RETINA, widthMult: 0.25, minSize: 80, maxSize: 96 },
      { name: 'mrcnn', ...MRCNN, widthMult: 0.25 },
    ],
    schedule: { iterations: 3, lr: 0.005, warmupIterations: 1 },
    distill: { loss: 'fgd' },
    order: { method: 'bgs', k: 2, costs: { trainImages: 4, valImages: 2 } },
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
    ...over,
  });
}

type Rec = { stage?: string } & Record<string, unknown>;

/** The FPN levels a stage's logged distillation terms name ("distill.p3.fgd.fg" -> p3). */
function distilledLevels(output: string, stage: string): string[] {
  const recs = readFileSync(join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
  const levels = new Set<string>();
  for (const r of recs) if (r.stage === stage) for (const k of Object.keys(r)) {
    const m = /^distill\.(p\d)\./.exec(k);
    if (m) levels.add(m[1] as string);
  }
  return [...levels].sort();
}

t.test('a Mask R-CNN student through the whole pipeline, taught by a RetinaNet and a Mask R-CNN', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = tinyConfig(dir);
  const lines: string[] = [];
  const report = await train(config, { quiet: true, log: (l) => lines.push(l) });
  t.notOk(report.aborted);
  const byName = new Map(report.results.map((r) => [r.name, r]));
  // Every model of the run was evaluated; the mask models carry the 12 segm stats.
  for (const name of ['student', 'mrcnn', ...report.results.filter((r) => r.role === 'stage' || r.role === 'baseline').map((r) => r.name)]) {
    t.equal(byName.get(name)?.segm?.length, 12, `${name} has mask stats`);
  }
  t.equal(byName.get('retina')?.segm, undefined, 'the RetinaNet teacher has none');
  // The cost matrix is measured on the levels every teacher pairs with the student by stride.
  const costs = JSON.parse(readFileSync(join(config.output, 'costs.json'), 'utf8')) as { levels: string[] };
  t.same(costs.levels, ['p3', 'p4', 'p5'], 'costs over p3..p5: Mask R-CNN p2..p5 meets RetinaNet p3..p7 at strides 8, 16, 32');
  t.equal(report.order.length > 0, true, 'BGS gave an order');
  // Each stage distils the levels of its own pair: p2..p5 from the Mask R-CNN, p3..p5 from the RetinaNet.
  const stages = report.results.filter((r) => r.role === 'stage');
  for (const s of stages) {
    const teacher = s.teachers?.[0];
    const want = teacher === 'mrcnn' ? ['p2', 'p3', 'p4', 'p5'] : ['p3', 'p4', 'p5'];
    t.same(distilledLevels(config.output, s.name), want, `${s.name} distils ${want.join(', ')}`);
  }
  // The baselines ran for the same budget; ensemble mixes a RetinaNet's and a Mask R-CNN's maps when both are in the order.
  for (const m of ['longer', 'direct', ...(report.order.length > 1 ? ['ensemble'] : [])]) t.ok(report.results.some((r) => r.method === m), `baseline ${m} ran`);
  // Mask AP in every table: the stage table, the summary, the bootstrap summary, report.md.
  t.match(formatResults(report.results), /mAP\s+mAP50\s+mAP75/);
  t.match(formatRunSummary(report), /mask vs OTS/);
  t.ok(report.maskSpreads, 'a segm bootstrap of the student rows');
  const spread = formatRunSummaryWithSpreads(report, report.spreads ?? null);
  t.match(spread, /mask AP/);
  t.match(spread, /progressive vs longer, mask: [+-]?\d+\.\d AP \[/);
  const md = readFileSync(join(config.output, 'report.md'), 'utf8');
  t.match(md, /\| mask AP \| mask vs OTS \|/);
  t.ok(lines.some((l) => /^student: AP \d+\.\d, mask AP \d+\.\d$/.test(l)), 'evaluations log mask AP');

  // mtpd orders on the same run folder: every order has mask AP.
  const orders = await runOrders(config, { iterations: 2, k: 1, quiet: true, log: () => undefined });
  t.equal(orders.orders.length, 2);
  for (const o of orders.orders) t.equal(o.segm?.length, 12, `order ${o.order.join('>')} has mask stats`);
  t.match(formatOrders(orders), /mAP\s+mask vs OTS/);
});

t.test('a RetinaNet student taught by a Mask R-CNN teacher, the ensemble of a Mask R-CNN and a RetinaNet (and the levels named wrong)', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = tinyConfig(dir, {
    student: { name: 'student', ...RETINA },
    teachers: [
      { name: 'mrcnn', ...MRCNN, widthMult: 0.25 },
      { name: 'retina', ...RETINA, widthMult: 0.25 },
    ],
    order: { method: 'given', given: ['mrcnn', 'retina'], k: 2 },
    distill: { loss: 'mgd' },
    baselines: ['ensemble'],
  });
  const report = await train(config, { quiet: true, log: () => undefined });
  const stage = report.results.find((r) => r.name === 'mtpd1-mrcnn');
  t.ok(stage, 'the stage ran');
  t.equal(stage?.segm, undefined, 'a box student has no mask stats');
  t.same(distilledLevels(config.output, 'mtpd1-mrcnn'), ['p3', 'p4', 'p5'], 'RetinaNet p3..p7 meets Mask R-CNN p2..p5 at p3..p5 (the two-stage p6 is the RPN-only pool level)');
  t.notMatch(formatResults(report.results.filter((r) => r.name !== 'mrcnn')), /mAP/, 'no mask columns without a mask model among the results');
  // The ensemble of maps reads both teachers' maps through the first (Mask R-CNN) teacher's distiller: the levels both pair with the student.
  const ens = report.results.find((r) => r.method === 'ensemble');
  t.ok(ens, 'the ensemble baseline ran');
  t.same(distilledLevels(config.output, ens?.name ?? ''), ['p3', 'p4', 'p5']);

  const bad = tinyConfig(join(dir, 'bad'), { student: { name: 'student', ...RETINA }, teachers: [{ name: 'mrcnn', ...MRCNN }], order: { method: 'given', given: ['mrcnn'], k: 1 }, distill: { levels: ['p3', 'p6'] }, baselines: [] });
  await t.rejects(train(bad, { quiet: true, log: () => undefined }), /teacher mrcnn cannot be distilled into student student: distill\.levels names p6, which student and teacher do not share \(shared by stride: p3, p4, p5/);
});
