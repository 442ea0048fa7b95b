/**
 * Shared set-up of the data-parallel tests (test/dist/*.test.ts). Data-parallel training on CPU with Gloo (c10d), through `mtpd train`:
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
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { createDetector } from '../../src/detector.js';
import { packageRoot } from '../../src/native.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { tempDir } from '../helpers.js';

const CLI = join(packageRoot, 'src', 'cli.ts');
export const MODELS = ['student', 'mtpd1-t1', 'mtpd2-t2', 'longer-2x', 'direct-t2', 'ensemble-t1+t2'];

export function port(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

export function config(dir: string, data: string, teachers: string[], over: { batchSize: number; output: string; iterations?: number }) {
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

export function run(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; out: string }> } {
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { cwd: packageRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
  return { child, done };
}

export function tail(r: { code: number | null; out: string }): string {
  return r.code === 0 ? '' : `\n${r.out.slice(-3000)}`;
}

export async function weights(dir: string): Promise<Map<string, Map<string, Float32Array>>> {
  const out = new Map<string, Map<string, Float32Array>>();
  for (const m of MODELS) {
    const { tensors } = await loadSafetensors(join(dir, 'models', `${m.replace(/[^A-Za-z0-9_.+-]/g, '_')}.safetensors`));
    out.set(m, new Map([...tensors].filter(([, v]) => v.dtype === 'float32').map(([k, v]) => [k, v.data as Float32Array])));
  }
  return out;
}

export function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { diff: number; key: string } {
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

export async function setup(t: Test) {
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

export function writeConfig(dir: string, name: string, c: unknown): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, stringify(c));
  return p;
}

