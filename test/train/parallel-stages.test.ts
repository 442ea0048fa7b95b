/**
 * config jobs: the curriculum and the baselines trained side by side in their own processes give
 * the very weights and table of the run that trains them one after the other (one thread per part
 * in both); stopped in the middle, --resume continues every part where it was and ends the same.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { formatResults, train } from '../../src/train/pipeline.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon, tempDir } from '../helpers.js';

function raw(dir: string, dataDir: string, jobs: number, pool?: string): Record<string, unknown> {
  const weights = (m: string) => (pool ? { weights: join(pool, 'models', `${m}.safetensors`) } : {});
  return {
    output: join(dir, 'run'),
    // One intra-op thread per part either way: float sums depend on the thread count.
    threads: jobs,
    jobs,
    seed: 3,
    data: { root: join(dataDir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 8, size: 64, seed: 1 } },
    // The same student setup whether it is trained here or given (the pool run trains them once).
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, norm: 'bn', trainableLayers: 5, ...weights('student') },
    teachers: [
      { name: 'a', arch: 'retinanet_resnet18_fpn', widthMult: 0.25, ...weights('a') },
      { name: 'b', arch: 'retinanet_resnet34_fpn', widthMult: 0.25, minSize: 96, maxSize: 112, ...weights('b') },
    ],
    schedule: { iterations: 4, lr: 0.005, warmupIterations: 1 },
    order: { method: 'given', given: ['a', 'b'], k: 2 },
    baselines: ['longer', 'direct', 'ensemble'],
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
  };
}

const STAGES = ['mtpd1-a', 'mtpd2-b', 'longer-2x', 'direct-b', 'ensemble-a+b'];

async function weightsOf(config: Config): Promise<Map<string, Buffer[]>> {
  const out = new Map<string, Buffer[]>();
  for (const m of STAGES) {
    const { tensors } = await loadSafetensors(join(config.output, 'models', `${m}.safetensors`));
    out.set(m, [...tensors.keys()].sort().map((k) => { const v = tensors.get(k)!; return Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength); }));
  }
  return out;
}

const quiet = { quiet: true, log: () => undefined };

t.test('two jobs give the sequential run, bit for bit; a stop and --resume too', async (t) => {
  if (!haveAddon(t)) return;
  const dir = tempDir(t);
  // The student and the teachers, trained once (one thread) for both runs.
  const poolRun = parseConfig({ ...raw(join(dir, 'pool'), dir, 1), baselines: [], order: { method: 'given', given: ['a'], k: 1 }, schedule: { iterations: 1, lr: 0.005, warmupIterations: 1 } });
  await train(poolRun, quiet);
  const pool = poolRun.output;
  const seq = parseConfig(raw(join(dir, 'seq'), dir, 1, pool));
  const one = await train(seq, quiet);
  const want = await weightsOf(seq);

  const par = parseConfig(raw(join(dir, 'par'), dir, 2, pool));
  const lines: string[] = [];
  const events: string[] = [];
  const two = await train(par, { quiet: true, log: (s) => lines.push(s), onEvent: (e) => { if (e.type === 'phase') events.push(e.phase); } });
  t.notOk(two.aborted);
  t.match(lines.find((l) => l.startsWith('jobs:')), /jobs: ensemble, curriculum, direct, longer in 2 processes at once, 1 thread each/, 'the longest first');
  for (const s of STAGES) t.ok(events.includes(s), `${s}: its phase event reached the parent`);
  const got = await weightsOf(par);
  for (const s of STAGES) t.ok(got.get(s)!.every((b, i) => b.equals(want.get(s)![i]!)), `${s}: the same weights as one after the other`);
  t.equal(formatResults(two.results), formatResults(one.results), 'the same table');
  const timings = JSON.parse(readFileSync(join(par.output, 'timings.json'), 'utf8')) as { processes: { phase: string; cpuS: number }[] };
  t.same(timings.processes.map((p) => p.phase).sort(), ['curriculum', 'direct', 'ensemble', 'longer'].map((p) => `${p} (its own process)`), 'each part process is in timings.json');

  // Stopped when the first part reaches step 3, then resumed: every part ends as uninterrupted.
  const res = parseConfig(raw(join(dir, 'res'), dir, 2, pool));
  const ac = new AbortController();
  const stopped = await train(res, { ...quiet, signal: ac.signal, onEvent: (e) => { if (e.type === 'step' && e.iter === 3) ac.abort(); } });
  t.ok(stopped.aborted, 'stopped');
  t.ok(readdirSync(join(res.output, 'parts')).length > 0, `the stopped parts left their checkpoints in parts/ (${readdirSync(join(res.output, 'parts')).join(', ')})`);
  const again = await train(res, { ...quiet, resume: true });
  t.notOk(again.aborted);
  const resumed = await weightsOf(res);
  for (const s of STAGES) t.ok(resumed.get(s)!.every((b, i) => b.equals(want.get(s)![i]!)), `${s}: stopped and resumed, the same weights`);
});

t.test('jobs must be a positive integer', async (t) => {
  t.throws(() => parseConfig({ ...raw('x', 'x', 1), jobs: 0 }), /jobs/);
  t.throws(() => parseConfig({ ...raw('x', 'x', 1), jobs: 1.5 }), /jobs/);
});
