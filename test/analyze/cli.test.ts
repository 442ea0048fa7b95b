/**
 * `mtpd analyze` on a tiny finished run folder (made with the training pipeline on tiny models):
 * the report, analysis.json and the plots are written, the observations are decided from the
 * numbers in analysis.json, and a rerun is served from the cache.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { AnalysisResult } from '../../src/analyze/report.js';
import { parseConfig } from '../../src/config/load.js';
import { train } from '../../src/train/pipeline.js';
import { runCli } from '../cli-helper.js';
import { haveAddon, tempDir } from '../helpers.js';

t.test('mtpd analyze on a tiny run folder', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const config = parseConfig({
    output: join(dir, 'run'),
    threads: 1,
    seed: 2,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 64, batchSize: 2, workers: 0, synth: { images: 6, valImages: 4, size: 64, seed: 1 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, norm: 'bn', trainableLayers: 5 },
    teachers: [{ name: 'r18', arch: 'retinanet_resnet18_fpn', widthMult: 0.125 }],
    schedule: { iterations: 2, lr: 0.005, warmupIterations: 1 },
    order: { method: 'given', given: ['r18'] },
    evaluation: { batchSize: 4 },
    baselines: ['longer'],
  });
  await train(config, { quiet: true, log: () => undefined });
  const run = config.output;
  const args = ['analyze', run, '--subset', '3', '--grid', '3', '--directions', '2', '--iterations', '2', '--threads', '1', '--quiet'];
  const r = runCli(args, { timeout: 600_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /# mtpd analysis/);
  t.match(r.stdout, /mtpd1-r18.*longer-1x/s, 'the progressive student against the longer one');
  const out = join(run, 'analysis');
  for (const f of ['report.md', 'analysis.json', 'generalization.png', 'generalization.svg', 'detection-loss.png', 'landscape-1d.png', 'landscape-1d.svg', 'landscape-2d.png', 'landscape-2d.svg', 'sharpness.png', 'sharpness.svg']) t.ok(existsSync(join(out, f)), f);
  const a = JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8')) as AnalysisResult;
  t.same(a.pair, { progressive: 'mtpd1-r18', longer: 'longer-1x' });
  t.equal(a.subset.size, 3);
  t.same(a.stages.map((s) => s.name).sort(), ['longer-1x', 'mtpd1-r18', 'student']);
  const p = a.stages.find((s) => s.name === 'mtpd1-r18')!, l = a.stages.find((s) => s.name === 'longer-1x')!;
  t.same(a.observations.map((o) => o.id), ['higher-train-loss', 'higher-val-ap', 'flatter-landscape']);
  t.equal(a.observations[0]!.holds, p.trainLoss > l.trainLoss, 'observation 1 from the numbers');
  t.equal(a.observations[1]!.holds, p.ap > l.ap, 'observation 2 from the numbers');
  const sp = a.sharpness!['mtpd1-r18']!, sl = a.sharpness!['longer-1x']!;
  const e = sp.eigenvalue < sl.eigenvalue, rr = sp.radius.mean < sl.radius.mean;
  t.equal(a.observations[2]!.holds, e && rr ? true : !e && !rr ? false : 'mixed', 'observation 3 from the numbers');
  // The landscape at the origin is the model's training loss from the per-stage table.
  for (const s of [p, l]) {
    t.equal(a.landscape!.line[s.name]!.losses[2], s.trainLoss, `${s.name}: 1-D slice at 0`);
    t.equal(a.landscape!.plane[s.name]!.losses[1]![1], s.trainLoss, `${s.name}: 2-D slice at the centre`);
    t.equal(a.sharpness![s.name]!.radius.base, s.trainLoss);
  }
  t.equal(a.landscape!.line[p.name]!.seed, a.landscape!.line[l.name]!.seed, 'same direction seed for both');
  // A rerun is served from the cache: nothing in it is rewritten.
  const cache = join(out, 'cache');
  const times = new Map(readdirSync(cache).map((f) => [f, statSync(join(cache, f)).mtimeMs]));
  t.ok(times.size >= 2 * 4 + 3, `${times.size} cached measurements`);
  const again = runCli(args, { timeout: 600_000 });
  t.equal(again.status, 0, again.stderr);
  for (const [f, m] of times) t.equal(statSync(join(cache, f)).mtimeMs, m, `${f} reused`);
  t.same((JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8')) as AnalysisResult).observations, a.observations);
  const bad = runCli(['analyze', join(dir, 'nope')]);
  t.not(bad.status, 0);
  t.match(bad.stderr, /nope.*config\.yaml: missing/);
});
