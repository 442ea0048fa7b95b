/**
 * One process of the sharded-work tests (shards.test.ts): run alone (no WORLD_SIZE) or as one
 * rank of a job (the torchrun variables set by the test). MTPD_TEST_JOB is a JSON job:
 *  - {kind: 'costs', config, out}: the closed-form cost matrix of the config's models (runCosts,
 *    sharded in a job) and the evaluation of the student (evaluateModel, distributed); writes
 *    out/rank<r>.json with the matrix, how many feature batches this process computed, the
 *    evaluation's stats and detections;
 *  - {kind: 'syncbn', weights, out, steps, sync}: a few SGD steps of a BatchNorm RetinaNet on 4
 *    fixed images (this rank's part of them), with synchronized BatchNorm when `sync`; writes
 *    out/rank<r>.json with the final state dict.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { dist, distEnv, endDist, initDist } from '../../src/dist/context.js';
import { attachGradSync } from '../../src/dist/train.js';
import { createDetector } from '../../src/detector.js';
import { runCosts } from '../../src/order/run-costs.js';
import type { Tensor } from '../../src/tensor.js';
import { buildModel, evaluateModel, openSplits } from '../../src/train/models.js';
import type { Config } from '../../src/config/schema.js';
import { mulberry32 } from '../helpers.js';

interface CostsJob {
  kind: 'costs';
  config: unknown;
  out: string;
}
interface SyncJob {
  kind: 'syncbn';
  weights: string;
  out: string;
  steps: number;
  sync: boolean;
}

/** Image i of the fixed set: (3, 64, 64) in 0..1, with one box. */
function image(i: number): { image: Tensor<'float32'>; target: { boxes: Tensor<'float32'>; labels: Tensor<'int64'> } } {
  const rand = mulberry32(100 + i);
  const data = new Float32Array(3 * 64 * 64);
  for (let k = 0; k < data.length; k++) data[k] = rand();
  const x = 4 + 8 * i;
  const y = 6 + 5 * i;
  return {
    image: { dtype: 'float32', shape: [3, 64, 64], data },
    target: { boxes: { dtype: 'float32', shape: [1, 4], data: Float32Array.of(x, y, x + 24, y + 30) }, labels: { dtype: 'int64', shape: [1], data: BigInt64Array.of(BigInt(i % 8)) } },
  };
}

async function costs(job: CostsJob): Promise<Record<string, unknown>> {
  const config = parseConfig(job.config);
  const r = await runCosts(config, { fitters: ['closed-form'], aps: Object.fromEntries([config.student, ...config.teachers].map((m, i) => [m.name, 0.1 * (i + 1)])) });
  const m = r.matrices['closed-form'];
  const splits = await openSplits(config);
  await using det = await buildModel(config.student, config, splits);
  const e = await evaluateModel(det, splits, config, undefined, { distributed: true });
  return { costs: m?.costs, perLevel: m?.perLevel, computed: m?.computed, stats: e.stats, detections: e.detections };
}

async function syncbn(job: SyncJob): Promise<Record<string, unknown>> {
  const d = dist();
  await using det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 8, widthMult: 0.125, minSize: 64, maxSize: 64, normLayer: 'bn' });
  await det.loadWeights(job.weights);
  await using opt = await det.createOptimizer({ type: 'sgd', lr: 0.02, momentum: 0.9 });
  const config = { dist: { bucketMb: 1 }, student: { syncBN: job.sync } } as unknown as Config;
  await attachGradSync(opt, config, { model: det, stage: 'syncbn' });
  // 4 images per step over the job: rank r of P takes its contiguous part.
  const per = 4 / d.worldSize;
  for (let s = 0; s < job.steps; s++) {
    const mine = Array.from({ length: per }, (_, k) => image(4 * s + d.rank * per + k));
    await det.trainStep(opt, mine.map((x) => x.image), mine.map((x) => x.target));
  }
  const sd = await det.stateDict();
  return { state: Object.fromEntries([...sd].map(([k, v]) => [k, Array.from(v.data as Float32Array, Number)])) };
}

const job = JSON.parse(process.env.MTPD_TEST_JOB ?? '{}') as CostsJob | SyncJob;
const env = distEnv();
if (env) await initDist(env, { timeoutMs: 120_000, heartbeatTimeoutMs: 30_000 });
const out = job.kind === 'costs' ? await costs(job) : await syncbn(job);
writeFileSync(join(job.out, `rank${dist().rank}.json`), JSON.stringify({ rank: dist().rank, worldSize: dist().worldSize, ...out }));
await endDist(true);
