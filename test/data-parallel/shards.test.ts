/**
 * Data-parallel work other than the gradients, 2 processes (Gloo on CPU) against 1 (worker.ts):
 *  - the cost matrix sharded over the ranks (each computes the features and moments of its
 *    batches, the closed-form fits are summed) equals the single-process matrix, and each rank
 *    computed about half of the feature batches;
 *  - the evaluation: each rank predicts its part, the detections are gathered (image order) and
 *    rank 0 scores them: the same stats and detections as one process;
 *  - SyncBatchNorm (student.syncBN): 2 processes x 2 images end with the weights and running
 *    statistics of 1 process x 4 images with plain BatchNorm; without it they do not.
 * Tiny models at 64 px, whose images fill their maps exactly (minSize = maxSize, square images).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSynthDataset } from '../../src/data/synth.js';
import { createDetector } from '../../src/detector.js';
import { packageRoot } from '../../src/native.js';
import { haveAddon, tempDir } from '../helpers.js';
import { port } from './common.js';

t.setTimeout(1_200_000);

const WORKER = join(packageRoot, 'test', 'data-parallel', 'worker.ts');

/** Runs the job in `nproc` processes (a job of its own when nproc > 1); every rank's output file. */
async function runJob(t: Test, job: { out: string } & Record<string, unknown>, nproc: number): Promise<Record<string, unknown>[]> {
  mkdirSync(job.out, { recursive: true });
  const p = port();
  const runs = Array.from({ length: nproc }, (_, rank) => {
    const env: NodeJS.ProcessEnv = { ...process.env, MTPD_TEST_JOB: JSON.stringify(job) };
    if (nproc > 1) Object.assign(env, { RANK: String(rank), WORLD_SIZE: String(nproc), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(p) });
    else for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT']) delete env[k];
    const child = spawn(process.execPath, [...process.execArgv, WORKER], { cwd: packageRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    return new Promise<{ code: number | null; text: string }>((resolve) => child.on('exit', (code) => resolve({ code, text })));
  });
  const done = await Promise.all(runs);
  done.forEach((r, rank) => t.equal(r.code, 0, `${nproc} process(es): rank ${rank} ran${r.code === 0 ? '' : `\n${r.text.slice(-3000)}`}`));
  if (done.some((r) => r.code !== 0)) return [];
  return Array.from({ length: nproc }, (_, r) => JSON.parse(readFileSync(join(job.out, `rank${r}.json`), 'utf8')) as Record<string, unknown>);
}

type Table = Record<string, Record<string, number>>;

function maxRel(a: Table, b: Table): number {
  let worst = 0;
  for (const [x, row] of Object.entries(b))
    for (const [y, v] of Object.entries(row)) {
      const w = a[x]?.[y];
      if (w === undefined) return Infinity;
      worst = Math.max(worst, Math.abs(w - v) / Math.max(Math.abs(v), 1e-12));
    }
  return worst;
}

t.test('cost matrix sharded over 2 ranks = 1 process; evaluation gathered to rank 0 = 1 process', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  await writeSynthDataset({ out: data, images: 12, valImages: 5, size: 64, seed: 4 });
  const models = [
    { name: 'student', widthMult: 0.125 },
    { name: 't1', widthMult: 0.125 },
    { name: 't2', widthMult: 0.25 },
  ];
  for (const m of models) {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: m.widthMult, minSize: 64, maxSize: 64 });
    await det.saveWeights(join(dir, `${m.name}.safetensors`));
    await det.dispose();
  }
  const config = (out: string) => ({
    output: out,
    threads: 1,
    seed: 3,
    data: { root: data, minSize: 64, maxSize: 64, batchSize: 2, workers: 0 },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, weights: join(dir, 'student.safetensors') },
    teachers: models.slice(1).map((m) => ({ name: m.name, arch: 'retinanet_resnet18_fpn', widthMult: m.widthMult, weights: join(dir, `${m.name}.safetensors`) })),
    // 6 training batches (every fourth held out to choose the ridge: a rank holds none), 3 validation batches (uneven over 2 ranks)
    order: { costs: { trainImages: 12, valImages: 5 } },
    evaluation: { batchSize: 2, scoreThresh: 0 },
  });
  const [one] = await runJob(t, { kind: 'costs', config: config(join(dir, 'one')), out: join(dir, 'one') }, 1);
  const two = await runJob(t, { kind: 'costs', config: config(join(dir, 'two')), out: join(dir, 'two') }, 2);
  if (!one || two.length !== 2) return;
  const [r0, r1] = two as [Record<string, unknown>, Record<string, unknown>];
  const c1 = one.costs as Table;
  t.equal(Object.keys(c1).length, 3, 'three models in the matrix');
  for (const [r, part] of [[0, r0], [1, r1]] as const) {
    const rel = maxRel(part.costs as Table, c1);
    t.ok(rel < 1e-6, `rank ${r}: the sharded matrix equals the single-process one (max relative difference ${rel.toExponential(2)})`);
  }
  // 3 models x (6 + 3) batches: rank 0 makes 3 x (3 + 2), rank 1 makes 3 x (3 + 1)
  t.equal(one.computed, 27, 'one process computes every feature batch');
  t.same([r0.computed, r1.computed], [15, 12], 'each rank computes the features of its own batches only');
  t.not(JSON.stringify(c1), JSON.stringify({}), 'costs are present');
  for (const [a, row] of Object.entries(c1)) for (const [b, v] of Object.entries(row)) t.ok(v > 0 && Number.isFinite(v), `d(${a} -> ${b}) = ${v.toExponential(3)} is a positive cost`);

  // Evaluation: the same stats on both ranks and as one process; the same detections, in image order.
  const s1 = one.stats as number[];
  t.equal(s1.length, 12, 'the 12 COCO stats');
  for (const [r, part] of [[0, r0], [1, r1]] as const) {
    const s = part.stats as number[];
    t.ok(s.every((v, i) => Math.abs(v - (s1[i] as number)) < 1e-6), `rank ${r}: the gathered evaluation scores as one process (${s[0]} vs ${s1[0]})`);
  }
  type Det = { image_id: number; score: number; bbox: number[]; category_id: number };
  const d1 = one.detections as Det[];
  const d2 = r0.detections as Det[];
  t.ok(d1.length > 0, `one process: ${d1.length} detections`);
  t.equal(d2.length, d1.length, 'rank 0 gathered as many detections as one process made');
  t.same(d2.map((d) => d.image_id), d1.map((d) => d.image_id), 'in image order');
  const worst = d1.reduce((m, d, i) => Math.max(m, Math.abs(d.score - ((d2[i] as Det).score ?? NaN)), ...d.bbox.map((v, k) => Math.abs(v - ((d2[i] as Det).bbox[k] ?? NaN)))), 0);
  t.ok(worst < 1e-3, `the same detections (max |diff| of scores and boxes ${worst.toExponential(2)})`);
  const ids = new Set(d1.map((d) => d.image_id));
  t.ok(ids.size >= 4, `detections on ${ids.size} of 5 validation images (both ranks' parts)`);
});

t.test('SyncBatchNorm: 2 processes x 2 images = 1 process x 4 images with BatchNorm', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  const weights = join(dir, 'bn.safetensors');
  const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: 0.125, minSize: 64, maxSize: 64, normLayer: 'bn' });
  await det.saveWeights(weights);
  await det.dispose();
  const steps = 3;
  const [one] = await runJob(t, { kind: 'syncbn', weights, steps, sync: true, out: join(dir, 'one') }, 1);
  const sync = await runJob(t, { kind: 'syncbn', weights, steps, sync: true, out: join(dir, 'sync') }, 2);
  const plain = await runJob(t, { kind: 'syncbn', weights, steps, sync: false, out: join(dir, 'plain') }, 2);
  if (!one || sync.length !== 2 || plain.length !== 2) return;
  type State = Record<string, number[]>;
  const ref = one.state as State;
  const diff = (a: State, filter: (k: string) => boolean) => {
    let worst = 0;
    let at = '';
    for (const [k, v] of Object.entries(ref)) {
      if (!filter(k)) continue;
      const w = a[k];
      if (!w || w.length !== v.length) return { worst: Infinity, at: k };
      v.forEach((x, i) => {
        const d = Math.abs(x - (w[i] as number));
        if (d > worst) [worst, at] = [d, k];
      });
    }
    return { worst, at };
  };
  const stats = (k: string) => /running_(mean|var)$/.test(k);
  const params = (k: string) => !stats(k) && !k.endsWith('num_batches_tracked');
  t.ok(Object.keys(ref).some(stats), 'the model has BatchNorm running statistics');
  // the weights moved: the comparison is not between untouched copies
  const start = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: 0.125, minSize: 64, maxSize: 64, normLayer: 'bn' });
  await start.loadWeights(weights);
  const init = Object.fromEntries([...(await start.stateDict())].map(([k, v]) => [k, Array.from(v.data as Float32Array, Number)]));
  await start.dispose();
  t.ok(diff(init, params).worst > 1e-3, `training moved the weights (${diff(init, params).worst.toExponential(2)})`);
  for (const [r, part] of sync.entries()) {
    const p = diff(part.state as State, params);
    const s = diff(part.state as State, stats);
    t.ok(p.worst < 2e-4, `SyncBN rank ${r}: weights match 1 x 4 (max |diff| ${p.worst.toExponential(2)} at ${p.at})`);
    t.ok(s.worst < 2e-4, `SyncBN rank ${r}: running statistics match 1 x 4 (max |diff| ${s.worst.toExponential(2)} at ${s.at})`);
    t.same((part.state as State)['backbone.body.bn1.num_batches_tracked'], ref['backbone.body.bn1.num_batches_tracked'], `SyncBN rank ${r}: the step counter`);
  }
  // Without SyncBN each rank normalizes over its own 2 images: the statistics differ.
  const s0 = diff(plain[0]?.state as State, stats);
  t.ok(s0.worst > 1e-3, `plain BatchNorm over 2 x 2 does not match 1 x 4 (running statistics differ by ${s0.worst.toExponential(2)} at ${s0.at})`);
});
