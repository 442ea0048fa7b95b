/**
 * Data-parallel training on CPU with Gloo (c10d), through `mtpd train`:
 *  - 2 processes x batch 2 end with the weights of 1 process x batch 4 (float tolerance: the
 *    gradient sums run in another order) after every stage kind: a detection stage (the
 *    off-the-shelf student, and the longer baseline), progressive distillation stages, direct
 *    distillation and the ensemble of maps;
 *  - a run stopped with 2 processes resumes with 1 process (same job batch) to the same weights;
 *  - killing one rank stops the other within the heartbeat timeout, with an error naming it.
 * Tiny models at 64 px. The student has frozen BatchNorm and the loss is CWD (normalized per
 * image), so the gradient of 4 images is the same whichever way the images are split.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { createDetector } from '../../src/detector.js';
import { packageRoot } from '../../src/native.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon, tempDir } from '../helpers.js';

const CLI = join(packageRoot, 'src', 'cli.ts');
const MODELS = ['student', 'mtpd1-t1', 'mtpd2-t2', 'longer-2x', 'direct-t2', 'ensemble-t1+t2'];

function port(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

function config(dir: string, data: string, teachers: string[], over: { batchSize: number; output: string; iterations?: number }) {
  return {
    output: over.output,
    threads: 1,
    seed: 3,
    // minSize = maxSize: every image (3:4 to 1:1) fills a 64 x 64 canvas, so no batch pads differently.
    data: { root: data, minSize: 64, maxSize: 64, batchSize: over.batchSize, workers: 0, flip: 0.5, synth: { images: 12, valImages: 4, size: 64, seed: 4 } },
    student: { name: 'student', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, norm: 'frozen_bn', trainableLayers: 5, train: { iterations: over.iterations ?? 2, lr: 0.01, warmupIterations: 1 } },
    teachers: teachers.map((w, i) => ({ name: `t${i + 1}`, arch: 'retinanet_resnet18_fpn', widthMult: 0.125, weights: w })),
    schedule: { iterations: 2, lr: 0.01, warmupIterations: 1 },
    distill: { loss: 'cwd', weight: 1 },
    order: { method: 'given', given: ['t1', 't2'], k: 2 },
    baselines: ['longer', 'direct', 'ensemble'],
    evaluation: { batchSize: 2 },
    checkpoint: { every: 1, keep: 2 },
    dist: { timeout: 60, heartbeatTimeout: 5 },
  };
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; out: string }> } {
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { cwd: packageRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
  return { child, done };
}

function tail(r: { code: number | null; out: string }): string {
  return r.code === 0 ? '' : `\n${r.out.slice(-3000)}`;
}

async function weights(dir: string): Promise<Map<string, Map<string, Float32Array>>> {
  const out = new Map<string, Map<string, Float32Array>>();
  for (const m of MODELS) {
    const { tensors } = await loadSafetensors(join(dir, 'models', `${m.replace(/[^A-Za-z0-9_.+-]/g, '_')}.safetensors`));
    out.set(m, new Map([...tensors].filter(([, v]) => v.dtype === 'float32').map(([k, v]) => [k, v.data as Float32Array])));
  }
  return out;
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { diff: number; key: string } {
  let diff = 0;
  let key = '';
  for (const [k, x] of b) {
    const y = a.get(k);
    if (!y || y.length !== x.length) return { diff: Infinity, key: k };
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs((x[i] as number) - (y[i] as number));
      if (d > diff) {
        diff = d;
        key = k;
      }
    }
  }
  return { diff, key };
}

async function setup(t: Test) {
  const dir = tempDir(t);
  const teachers: string[] = [];
  for (const i of [0, 1]) {
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: 0.125, minSize: 64, maxSize: 64 });
    const w = join(dir, `t${i + 1}.safetensors`);
    await det.saveWeights(w);
    teachers.push(w);
  }
  return { dir, teachers, data: join(dir, 'data') };
}

function writeConfig(dir: string, name: string, c: unknown): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, stringify(c));
  return p;
}

t.test('data-parallel: 2 processes x batch 2 = 1 process x batch 4; a stopped 2-process run resumes with 1 process; a killed rank is named', async (t) => {
  if (!haveAddon(t)) return;
  const { dir, teachers, data } = await setup(t);
  const one = writeConfig(dir, 'one', config(dir, data, teachers, { batchSize: 4, output: join(dir, 'one') }));
  const r1 = await run(['train', '--config', one, '--quiet']).done;
  t.equal(r1.code, 0, `1 process x batch 4 ran${tail(r1)}`);
  const two = writeConfig(dir, 'two', config(dir, data, teachers, { batchSize: 2, output: join(dir, 'two') }));
  const r2 = await run(['train', '--config', two, '--quiet', '--nproc', '2', '--master-port', String(port())]).done;
  t.equal(r2.code, 0, `2 processes x batch 2 ran${tail(r2)}`);
  if (r1.code !== 0 || r2.code !== 0) return;
  const w1 = await weights(join(dir, 'one'));
  const w2 = await weights(join(dir, 'two'));
  const ots = await loadSafetensors(join(dir, 'one', 'models', 'student.safetensors'));
  t.ok(ots.tensors.size > 0, 'the student was trained');
  for (const m of MODELS) {
    const { diff, key } = maxDiff(w2.get(m) as Map<string, Float32Array>, w1.get(m) as Map<string, Float32Array>);
    t.ok(diff < 2e-4, `${m}: 2 x 2 matches 1 x 4 (max |diff| ${diff.toExponential(2)} at ${key})`);
  }
  // The stages moved the weights (the comparison is not between two untouched copies).
  const moved = maxDiff(w1.get('longer-2x') as Map<string, Float32Array>, w1.get('student') as Map<string, Float32Array>);
  t.ok(moved.diff > 1e-3, `training changes the weights (longer-2x vs student: ${moved.diff.toExponential(2)})`);

  // Stop a 2-process run after its first checkpoints, resume it with 1 process x batch 4.
  const out3 = join(dir, 'three');
  const three = writeConfig(dir, 'three', config(dir, data, teachers, { batchSize: 2, output: out3 }));
  const p3 = run(['train', '--config', three, '--quiet', '--nproc', '2', '--master-port', String(port())]);
  const ckpts = join(out3, 'checkpoints');
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      const n = existsSync(ckpts) ? readdirSync(ckpts).filter((f) => /_\d{7}$/.test(f)).length : 0;
      if (n >= 2 || p3.child.exitCode !== null) {
        clearInterval(iv);
        resolve();
      }
    }, 200);
  });
  p3.child.kill('SIGINT');
  const r3 = await p3.done;
  t.ok(r3.code === 130 || r3.code === 0, `the 2-process run stopped cleanly (code ${r3.code})${r3.code === 130 || r3.code === 0 ? '' : tail(r3)}`);
  const resumed = writeConfig(dir, 'three-resume', config(dir, data, teachers, { batchSize: 4, output: out3 }));
  const r4 = await run(['train', '--config', resumed, '--quiet', '--resume']).done;
  t.equal(r4.code, 0, `resumed with 1 process x batch 4${tail(r4)}`);
  if (r4.code === 0) {
    const w4 = await weights(out3);
    for (const m of MODELS) {
      const { diff, key } = maxDiff(w4.get(m) as Map<string, Float32Array>, w1.get(m) as Map<string, Float32Array>);
      t.ok(diff < 2e-4, `${m}: stopped with 2 processes, resumed with 1: matches the uninterrupted run (max |diff| ${diff.toExponential(2)} at ${key})`);
    }
  }

  // Kill rank 1 mid-stage: rank 0 stops within the heartbeat timeout and names rank 1.
  const out5 = join(dir, 'five');
  const five = writeConfig(dir, 'five', config(dir, data, teachers, { batchSize: 2, output: out5, iterations: 400 }));
  const mp = String(port());
  const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: mp });
  const rank0 = run(['train', '--config', five, '--quiet'], env(0));
  const rank1 = run(['train', '--config', five, '--quiet'], env(1));
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      const c = join(out5, 'checkpoints');
      if ((existsSync(c) && readdirSync(c).some((f) => f.startsWith('train_student_'))) || rank0.child.exitCode !== null) {
        clearInterval(iv);
        resolve();
      }
    }, 200);
  });
  const killedAt = Date.now();
  rank1.child.kill('SIGKILL');
  const timer = setTimeout(() => rank0.child.kill('SIGKILL'), 60_000);
  const r0 = await rank0.done;
  clearTimeout(timer);
  await rank1.done;
  const secs = (Date.now() - killedAt) / 1000;
  t.not(r0.code, 0, 'rank 0 fails when rank 1 dies');
  t.equal(r0.signal, null, 'rank 0 ends by itself (not killed by the test)');
  t.match(r0.out, /rank 1 stopped/, `rank 0's error names rank 1${/rank 1 stopped/.test(r0.out) ? '' : `\n${r0.out.slice(-1500)}`}`);
  t.match(r0.out, /ERR_MTPD_DIST/, 'with the distributed error code');
  t.ok(secs < 30, `within the heartbeat timeout (${secs.toFixed(1)} s)`);
});
