/**
 * Resume equality with a Mask R-CNN student (taught by a RetinaNet through MGD on p3..p5, and by a
 * Cascade Mask R-CNN on p2..p5, the paper's strongest convolutional teachers): a run
 * stopped in the middle of every training stage and continued with --resume ends with exactly
 * the weights of an uninterrupted run, on CPU, as RetinaNet's does (test/train/resume.test.ts).
 * The samplers of the RPN and the RoI heads draw from the stage's generators, which the
 * checkpoints carry.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { train } from '../../src/train/pipeline.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon, tempDir } from '../helpers.js';

// Several tiny pipeline runs with Mask R-CNNs: longer than the suite's 600 s per file on a busy 2-core machine.
t.setTimeout(1_800_000);

const RETINA = { name: 'retina', arch: 'retinanet_resnet18_fpn', widthMult: 0.125, minSize: 80, maxSize: 96, train: { iterations: 4, lr: 0.01, warmupIterations: 1 } };
const CASCADE = { name: 'cascade', arch: 'cascade_maskrcnn_resnet18_fpn', widthMult: 0.125, minSize: 80, maxSize: 96, train: { iterations: 4, lr: 0.01, warmupIterations: 1 } };

function raw(dir: string, dataRoot = join(dir, 'data'), teacher: typeof RETINA = RETINA): Record<string, unknown> {
  return {
    output: join(dir, 'run'),
    threads: 1,
    seed: 6,
    data: { root: dataRoot, minSize: 64, maxSize: 80, batchSize: 2, workers: 0, synth: { images: 6, size: 64, seed: 4 } },
    student: { name: 'student', arch: 'maskrcnn_resnet18_fpn', widthMult: 0.125, train: { iterations: 5, lr: 0.01, warmupIterations: 2 } },
    teachers: [teacher],
    schedule: { iterations: 5, optimizer: 'adamw', lr: 0.001, warmupIterations: 1 },
    distill: { loss: 'mgd', weight: 1, options: { alpha_mgd: 2e-3 } },
    order: { method: 'given', given: [teacher.name], k: 1 },
    baselines: [],
    evaluation: { batchSize: 4 },
    checkpoint: { every: 2, keep: 2 },
  };
}

async function weightsOf(config: Config, models: string[]): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  for (const m of models) {
    const { tensors } = await loadSafetensors(join(config.output, 'models', `${m}.safetensors`));
    out.set(m, new Map([...tensors].map(([k, v]) => [k, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength)])));
  }
  return out;
}

const quiet = { quiet: true, log: () => undefined };

async function stopAndResume(t: Test, teacher: typeof RETINA): Promise<void> {
  const MODELS = ['student', teacher.name, `mtpd1-${teacher.name}`];
  const dirA = tempDir(t);
  const a = parseConfig(raw(dirA, join(dirA, 'data'), teacher));
  await train(a, quiet);
  const want = await weightsOf(a, MODELS);

  const b = parseConfig(raw(tempDir(t), join(dirA, 'data'), teacher));
  const stops: string[] = [];
  for (let round = 0; round < 5; round++) {
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
  t.same(stops, ['train:student@3', `train:${teacher.name}@3`, `mtpd1-${teacher.name}@3`], 'every stage was interrupted and resumed');
  const got = await weightsOf(b, MODELS);
  for (const m of MODELS) {
    const x = got.get(m) as Map<string, Buffer>;
    const y = want.get(m) as Map<string, Buffer>;
    const differ = [...y.keys()].filter((k) => !x.has(k) || !(x.get(k) as Buffer).equals(y.get(k) as Buffer));
    t.same(differ, [], `${m} is bit-identical to the uninterrupted run (${y.size} tensors)`);
  }
}

t.test('a Mask R-CNN student stopped in every stage and resumed ends bit-identical to the uninterrupted run', async (t) => {
  if (!haveAddon(t)) return;
  await stopAndResume(t, RETINA);
});

t.test('the same with a Cascade Mask R-CNN teacher (trained here, distilled on p2..p5)', async (t) => {
  if (!haveAddon(t)) return;
  await stopAndResume(t, CASCADE);
});
