/**
 * Resume equality: a run interrupted (AbortSignal, or kill -9 of the process) and continued with
 * --resume ends with exactly the weights of an uninterrupted run, on CPU. This needs everything a
 * step depends on in the checkpoint: weights, optimizer state (momentum, AdamW moments), the
 * loader position, the default generators (Swin's stochastic depth) and MGD's mask generator.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { packageRoot } from '../../src/native.js';
import { CheckpointManager } from '../../src/train/checkpoint.js';
import { train } from '../../src/train/pipeline.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon, tempDir } from '../helpers.js';

function raw(dir: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    output: join(dir, 'run'),
    threads: 2,
    seed: 5,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 8, size: 64, seed: 2 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, train: { iterations: 5, lr: 0.01, warmupIterations: 2 } },
    teachers: [{ name: 'swin', arch: 'retinanet_swin_t_fpn', widthMult: 0.125, train: { iterations: 5, optimizer: 'adamw', lr: 0.001, warmupIterations: 1 } }],
    schedule: { iterations: 7, lr: 0.01, warmupIterations: 2 },
    distill: { loss: 'mgd', weight: 1, options: { alpha_mgd: 2e-3 } },
    order: { method: 'given', given: ['swin'], k: 1 },
    baselines: [],
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
    ...over,
  };
}

const MODELS = ['student', 'swin', 'mtpd1-swin'];

/** The trained weights of a run, file by file, as raw bytes of every tensor. */
async function weightsOf(config: Config): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  for (const m of MODELS) {
    const { tensors } = await loadSafetensors(join(config.output, 'models', `${m}.safetensors`));
    out.set(m, new Map([...tensors].map(([k, v]) => [k, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength)])));
  }
  return out;
}

function sameWeights(t: Test, got: Map<string, Map<string, Buffer>>, want: Map<string, Map<string, Buffer>>, what: string): void {
  for (const m of MODELS) {
    const a = got.get(m) as Map<string, Buffer>;
    const b = want.get(m) as Map<string, Buffer>;
    const differ = [...b.keys()].filter((k) => !a.has(k) || !(a.get(k) as Buffer).equals(b.get(k) as Buffer));
    t.same(differ, [], `${what}: ${m} is bit-identical to the uninterrupted run (${b.size} tensors)`);
  }
}

const quiet = { quiet: true, log: () => undefined };

t.test('resume after AbortSignal gives the uninterrupted result, bit for bit', async (t) => {
  if (!haveAddon(t)) return;
  const dirA = tempDir(t);
  const a = parseConfig(raw(dirA));
  await train(a, quiet);
  const want = await weightsOf(a);

  const dirB = tempDir(t);
  const b = parseConfig(raw(dirB, { data: { ...(raw(dirA).data as object), root: join(dirA, 'data') } }));
  // Stop in the middle of every training stage (after 3 steps: one step past a checkpoint).
  const stops: string[] = [];
  for (let round = 0; round < 6; round++) {
    const ac = new AbortController();
    const report = await train(b, {
      ...quiet,
      resume: round > 0,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'step' && e.iter === 3 && !stops.some((s) => s.startsWith(`${e.stage}@`))) {
          stops.push(`${e.stage}@${e.iter}`);
          ac.abort();
        }
      },
    }).catch((err: Error & { code?: string }) => {
      if (err.code !== 'ERR_MTPD_ABORTED') throw err;
      return null;
    });
    if (report && !report.aborted) break;
  }
  t.same(stops, ['train:student@3', 'train:swin@3', 'mtpd1-swin@3'], 'every stage was interrupted and resumed');
  sameWeights(t, await weightsOf(b), want, 'abort + resume');
  const last = await new CheckpointManager(b.output).loadLast();
  t.ok(last?.sets.includes('optimizer') && last.sets.includes('rng'), 'checkpoints carry the optimizer state and the generators');
});

t.test('kill -9 in the middle of training loses at most one interval; --resume ends bit-identical', async (t) => {
  if (!haveAddon(t)) return;
  const dirA = tempDir(t);
  const a = parseConfig(raw(dirA, { schedule: { iterations: 12, lr: 0.01, warmupIterations: 2 } }));
  await train(a, quiet);
  const want = await weightsOf(a);

  const dirB = tempDir(t);
  const cfgFile = join(dirB, 'config.yaml');
  writeFileSync(cfgFile, stringify(raw(dirB, { schedule: { iterations: 12, lr: 0.01, warmupIterations: 2 }, data: { ...(raw(dirA).data as object), root: join(dirA, 'data') } })));
  const metrics = join(dirB, 'run', 'metrics.jsonl');
  const cli = (args: string[]) => spawn(process.execPath, [...process.execArgv, join(packageRoot, 'src', 'cli.ts'), 'train', '--config', cfgFile, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lastIter = (stage: string): number => {
    if (!existsSync(metrics)) return 0;
    const recs = readFileSync(metrics, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { stage?: string; iter?: number });
    return Math.max(0, ...recs.filter((r) => r.stage === stage).map((r) => r.iter ?? 0));
  };
  // Kill the process once the distillation stage has gone past a checkpoint (and between steps
  // or inside one: whatever moment the poll lands on).
  const child = cli([]);
  const exited = new Promise((r) => child.on('exit', r));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const killedAt = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const it = lastIter('mtpd1-swin');
      if (it >= 5) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve(it);
      }
    }, 5);
    child.on('exit', (code, sig) => {
      clearInterval(timer);
      if (sig !== 'SIGKILL') reject(new Error(`train exited (${code}) before it could be killed: ${stderr}`));
    });
  });
  await exited;
  const last = await new CheckpointManager(join(dirB, 'run')).loadLast();
  const state = last?.state as { stage: string; iter: number };
  t.equal(state.stage, 'mtpd1-swin', 'the newest complete checkpoint is in the killed stage');
  t.ok(killedAt - state.iter <= 2 + 1, `killed at step ${killedAt}, checkpoint at ${state.iter}: at most one interval lost`);

  const resumed = cli(['--resume']);
  let err2 = '';
  resumed.stderr.on('data', (d: Buffer) => (err2 += d.toString()));
  const code = await new Promise<number | null>((r) => resumed.on('exit', r));
  t.equal(code, 0, `resume finished: ${err2.slice(-500)}`);
  const b = parseConfig(raw(dirB));
  sameWeights(t, await weightsOf(b), want, 'kill -9 + resume');
  const steps = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { stage?: string; iter?: number }).filter((r) => typeof r.iter === 'number').map((r) => `${r.stage}@${r.iter}`);
  t.equal(new Set(steps).size, steps.length, 'metrics.jsonl has every step once (steps past the checkpoint were dropped on resume)');
  t.ok(steps.includes('mtpd1-swin@12'), 'and every step of the resumed stage');
});

t.test('--resume refuses a checkpoint whose state.json was rewritten with a matching checksum', async (t) => {
  if (!haveAddon(t)) return;
  const { createHash } = await import('node:crypto');
  const dir = tempDir(t);
  const c = parseConfig(raw(dir, { teachers: [{ name: 'swin', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, train: { iterations: 5, warmupIterations: 1 } }] }));
  const ac = new AbortController();
  await train(c, { ...quiet, signal: ac.signal, onEvent: (e) => { if (e.type === 'step' && e.iter === 3) ac.abort(); } }).catch((err: Error & { code?: string }) => {
    if (err.code !== 'ERR_MTPD_ABORTED') throw err;
  });
  const last = await new CheckpointManager(c.output).loadLast();
  t.ok(last, 'a checkpoint of the stopped stage');
  const dirOf = last!.dir;
  for (const iter of [-7, 1.5, 999, 'x']) {
    const state = { ...(last!.state as Record<string, unknown>), iter };
    const bytes = Buffer.from(JSON.stringify(state));
    writeFileSync(join(dirOf, 'state.json'), bytes);
    const manifest = JSON.parse(readFileSync(join(dirOf, 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number; sha256: string }> };
    manifest.files['state.json'] = { bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
    writeFileSync(join(dirOf, 'manifest.json'), JSON.stringify(manifest));
    // iter -7 ran 12 steps of a 5-step stage
    await t.rejects(train(c, { ...quiet, resume: true }), { code: 'ERR_MTPD_CONFIG', message: /state\.json: not a stage state: needs integers 0 <= iter <= total/ }, `iter ${iter}`);
  }
});
