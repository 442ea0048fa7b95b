import { join } from 'node:path';
import t from 'tap';
import { runStage, type TrainEvent } from '../../src/train/loop.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { tempDir } from '../helpers.js';

t.test('runs every step with the scheduled LR, logs metrics, checkpoints periodically and at the end', async (t) => {
  const dir = tempDir(t);
  const metrics = new MetricsLog(join(dir, 'metrics.jsonl'));
  const lrs: number[] = [];
  const cks: [number, boolean][] = [];
  const events: TrainEvent['type'][] = [];
  const r = await runStage({
    stage: 's1',
    total: 10,
    lr: (i) => 0.1 / (i + 1),
    step: async (_i, lr) => {
      lrs.push(lr);
      return { a: lr, b: 1 };
    },
    checkpoint: async (i, final) => void cks.push([i, final]),
    checkpointEvery: 4,
    metrics,
    onEvent: (e) => events.push(e.type),
    progress: { quiet: true },
    tags: { teacher: 'x' },
  });
  t.same(r, { iter: 10, completed: true, aborted: false, lastLosses: { a: 0.01, b: 1 } });
  t.equal(lrs.length, 10);
  t.equal(lrs[3], 0.025);
  t.same(cks, [[4, false], [8, false], [10, true]]);
  const recs = metrics.read();
  t.equal(recs.length, 10);
  t.match(recs[0], { stage: 's1', iter: 1, lr: 0.1, loss: 1.1, a: 0.1, b: 1, teacher: 'x' });
  t.equal(events[0], 'stage-start');
  t.equal(events[events.length - 1], 'stage-end');
});

t.test('resumes at startIter', async (t) => {
  const seen: number[] = [];
  await runStage({ stage: 's', total: 5, startIter: 3, lr: () => 1, step: async (i) => (seen.push(i), { l: 1 }), checkpoint: async () => undefined, checkpointEvery: 100, progress: { quiet: true } });
  t.same(seen, [3, 4]);
});

t.test('a non-finite loss stops the stage with a clear message and no new checkpoint', async (t) => {
  const cks: number[] = [];
  await t.rejects(
    runStage({
      stage: 'distill:x101',
      total: 10,
      lr: () => 1,
      step: async (i) => ({ classification: i === 5 ? Number.NaN : 1 }),
      checkpoint: async (i) => void cks.push(i),
      checkpointEvery: 2,
      progress: { quiet: true },
    }),
    { code: 'ERR_MTPD_NONFINITE_LOSS', message: /distill:x101: step 6: loss "classification" is NaN; stopping\. The last good checkpoint is kept/ },
  );
  t.same(cks, [2, 4], 'only checkpoints from before the NaN');
});

t.test('an AbortSignal stops after the current step with a checkpoint', async (t) => {
  const ac = new AbortController();
  const cks: [number, boolean][] = [];
  const r = await runStage({
    stage: 's',
    total: 100,
    lr: () => 1,
    step: async (i) => {
      if (i === 6) ac.abort();
      return { l: 1 };
    },
    checkpoint: async (i, f) => void cks.push([i, f]),
    checkpointEvery: 50,
    signal: ac.signal,
    progress: { quiet: true },
  });
  t.same(r.iter, 7);
  t.ok(r.aborted);
  t.same(cks, [[7, false]]);
});

t.test('running out of memory in a step is a clear error naming the stage and what to lower', async (t) => {
  const oom = Object.assign(new Error('CUDA out of memory. Tried to allocate 2.00 GiB'), { code: 'ERR_MTPD_OUT_OF_MEMORY' });
  await t.rejects(
    runStage({ stage: 'mtpd1-x', total: 3, lr: () => 0.1, step: async () => Promise.reject(oom), checkpoint: async () => undefined, checkpointEvery: 10, progress: { quiet: true } }),
    { code: 'ERR_MTPD_OUT_OF_MEMORY', message: /^mtpd1-x: out of memory in its first step \(CUDA out of memory.*Lower data\.batchSize or data\.maxSize/ },
  );
  const other = new Error('something else');
  await t.rejects(runStage({ stage: 's', total: 3, lr: () => 0.1, step: async () => Promise.reject(other), checkpoint: async () => undefined, checkpointEvery: 10, progress: { quiet: true } }), other);
});
