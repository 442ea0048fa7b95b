import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { orderSchedule, orderStageName, orderStages, runOrders, type OrdersReport } from '../../src/train/orders.js';
import { fileNameOf, type PipelineEvent } from '../../src/train/pipeline.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { runCli } from '../cli-helper.js';
import { haveAddon, tempDir } from '../helpers.js';

function raw(dir: string): Record<string, unknown> {
  return {
    output: join(dir, 'run'),
    threads: 0,
    seed: 4,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 8, size: 64, seed: 1 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 },
    teachers: [
      { name: 'r18', arch: 'retinanet_resnet18_fpn', widthMult: 0.25 },
      { name: 'r34', arch: 'retinanet_resnet34_fpn', widthMult: 0.25, minSize: 96, maxSize: 112 },
    ],
    schedule: { iterations: 8, lr: 0.005, warmupIterations: 4 },
    order: { method: 'bgs', k: 2, costs: { trainImages: 4, valImages: 2 } },
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
  };
}

t.test('the prefix tree: every order of 1..k teachers, each prefix before its extensions, a short linear schedule', async (t) => {
  const schedule = parseConfig(raw('/x')).schedule;
  const nodes = orderStages(['b', 'a', 'c'], 2, schedule, 5);
  t.equal(nodes.length, 3 + 6);
  const seen = new Set<string>();
  for (const { order, plan } of nodes) {
    t.ok(order.length === 1 || seen.has(order.slice(0, -1).join('>')), `${order.join('>')} comes after its prefix`);
    seen.add(order.join('>'));
    t.same(plan.teachers, [order.at(-1)], 'a node distils from its last teacher');
    t.equal(plan.name, orderStageName(order, 5));
    t.match(plan, { kind: 'distill', role: 'order', method: 'orders', step: order.length, schedule: { iterations: 5, policy: 'linear', warmupIterations: 1 } });
  }
  t.equal(orderStageName(['a', 'b'], 5), 'orders@5:a>b');
  t.equal(orderSchedule(schedule, 100).warmupIterations, 4, 'warmup at most a fifth of the budget');
  t.equal(orderStages(['a', 'b', 'c'], 5, schedule, 5).length, 3 + 6 + 6, 'k is capped at the pool');
});

t.test('mtpd orders on tiny models: every order evaluated, best first, the BGS order ranked, prefixes shared, rerun-safe', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = parseConfig(raw(dir));
  const starts: string[] = [];
  const onEvent = (e: PipelineEvent) => e.type === 'stage-start' && starts.push(e.stage);
  const report = await runOrders(config, { iterations: 2, quiet: true, log: () => undefined, onEvent });
  t.equal(report.iterations, 2);
  t.equal(report.k, 2);
  t.match(report.schedule, { iterations: 2, policy: 'linear' });
  const got = report.orders.map((o) => o.order.join('>')).sort();
  t.same(got, ['r18', 'r18>r34', 'r34', 'r34>r18']);
  t.same(report.orders.map((o) => o.rank), [1, 2, 3, 4]);
  for (let i = 1; i < report.orders.length; i++) t.ok((report.orders[i - 1]?.ap as number) >= (report.orders[i]?.ap as number), 'best first');
  const bgsRows = report.orders.filter((o) => o.bgs);
  t.equal(bgsRows.length, 1, 'the BGS order is one of them');
  t.same(bgsRows[0]?.order, report.bgs);
  t.equal(report.bgsRank, bgsRows[0]?.rank);
  t.same(JSON.parse(readFileSync(join(config.output, 'order.json'), 'utf8')), { order: report.bgs }, 'the same BGS order as mtpd train');
  t.equal(report.stages, 4);
  t.same(starts.filter((s) => s.startsWith('orders@')).sort(), ['orders@2:r18', 'orders@2:r18>r34', 'orders@2:r34', 'orders@2:r34>r18'], 'one stage per tree node');
  const metrics = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { stage: string; lr?: number });
  const lrs = metrics.filter((m) => m.stage === 'orders@2:r18').map((m) => m.lr as number);
  t.equal(lrs.length, 2);
  t.ok((lrs[0] as number) > (lrs[1] as number), 'linear decay');
  // A -> B continues from A's student.
  const files = JSON.parse(readFileSync(join(config.output, 'orders.json'), 'utf8')) as OrdersReport;
  t.same(files.orders.map((o) => o.order), report.orders.map((o) => o.order), 'orders.json');
  const md = readFileSync(join(config.output, 'orders.md'), 'utf8');
  t.match(md, new RegExp(`${report.bgs.join(' -> ')}\\s+\\*`), 'orders.md marks the BGS order');
  t.match(md, new RegExp(`BGS order ${report.bgs.join(' -> ')}: rank ${report.bgsRank} of 4`));
  for (const [a, b] of [['r18', 'r34'], ['r34', 'r18']]) {
    const child = report.orders.find((o) => o.order.join('>') === `${a}>${b}`);
    const parent = report.orders.find((o) => o.order.join('>') === a);
    const evalOf = (name: string) => JSON.parse(readFileSync(join(config.output, 'eval', `${fileNameOf(name)}.json`), 'utf8')) as { weights: string };
    const childWeights = evalOf(child?.name as string).weights;
    const meta = (await loadSafetensors(childWeights)).metadata;
    t.equal(meta['mtpd.from'], basename(evalOf(parent?.name as string).weights), `${a} -> ${b} started from ${a}'s student`);
    t.equal(meta['mtpd.teachers'], b);
  }

  // The CLI on the same run folder: nothing is trained again, the same table.
  const cfgFile = join(dir, 'config.yaml');
  writeFileSync(cfgFile, stringify(raw(dir)));
  const cli = runCli(['orders', '--config', cfgFile, '--iterations', '2', '--quiet'], { timeout: 300_000 });
  t.equal(cli.status, 0, cli.stderr);
  t.notMatch(cli.stderr, /orders@2:\S+ \d+\/2/, 'no stage ran');
  t.match(cli.stdout, /rank\s+order\s+BGS\s+AP/);
  for (const o of report.orders) t.match(cli.stdout, new RegExp(`\\n\\s+${o.rank}\\s+${o.order.join(' -> ')}\\s`), `row ${o.rank}`);
  t.match(cli.stdout, /orders\.json, orders\.md/);
  t.ok(existsSync(join(config.output, 'report.json')) === false, 'orders alone writes no train report');
});

t.test('mtpd orders --help and bad arguments', async (t) => {
  const help = runCli(['orders', '--help']);
  t.equal(help.status, 0);
  for (const o of ['--config', '--iterations', /\s-k\s/, '--resume', '--set']) t.match(help.stdout, o);
  const top = runCli(['--help']);
  t.match(top.stdout, /mtpd orders/);
  const bad = runCli(['orders', '--config', 'x.yaml', '--k', '0']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--k must be a positive integer, got 0/);
});

