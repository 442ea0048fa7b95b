import t from 'tap';
import { lrAt, type LrSchedule, totalIterations } from '../../src/train/schedule.js';

const base: LrSchedule = { lr: 0.01, warmupIterations: 0, warmupFactor: 0.001, policy: 'step', milestones: [8 / 12, 11 / 12], gamma: 0.1 };

t.test('step policy drops at the milestones (the 1x schedule)', async (t) => {
  t.equal(lrAt(base, 0, 1200), 0.01);
  t.equal(lrAt(base, 799, 1200), 0.01);
  t.ok(Math.abs(lrAt(base, 800, 1200) - 0.001) < 1e-15);
  t.ok(Math.abs(lrAt(base, 1100, 1200) - 0.0001) < 1e-15);
});

t.test('linear warmup from warmupFactor', async (t) => {
  const s = { ...base, warmupIterations: 100 };
  t.ok(Math.abs(lrAt(s, 0, 1000) - 0.01 * 0.001) < 1e-15);
  t.ok(Math.abs(lrAt(s, 50, 1000) - 0.01 * (0.001 * 0.5 + 0.5)) < 1e-15);
  t.equal(lrAt(s, 100, 1000), 0.01);
});

t.test('cosine, linear, constant', async (t) => {
  t.equal(lrAt({ ...base, policy: 'cosine' }, 0, 100), 0.01);
  t.ok(Math.abs(lrAt({ ...base, policy: 'cosine' }, 50, 100) - 0.005) < 1e-15);
  t.ok(lrAt({ ...base, policy: 'cosine' }, 100, 100) < 1e-18);
  t.ok(Math.abs(lrAt({ ...base, policy: 'linear' }, 25, 100) - 0.0075) < 1e-15);
  t.equal(lrAt({ ...base, policy: 'constant' }, 99, 100), 0.01);
});

t.test('schedule length from epochs or iterations', async (t) => {
  t.equal(totalIterations({ iterations: 50 }, 1000, 4), 50);
  t.equal(totalIterations({ epochs: 2 }, 10, 4), 6);
  t.equal(totalIterations({ epochs: 0.5 }, 8, 4), 1);
});
