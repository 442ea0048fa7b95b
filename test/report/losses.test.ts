/** Splitting metrics.jsonl into detection and distillation losses on the teacher-budget axis. */
import t from 'tap';
import { lossParts, splitLosses } from '../../src/report/losses.js';

t.test('detection and distillation terms apart; progressive stages end to end; baselines from 0', async (t) => {
  const recs = [
    ...[1, 2].map((iter) => ({ time: 1, stage: 'mtpd1-a', iter, lr: 0.1, loss: 10 + iter, classification: 0.5, bbox_regression: 0.25, 'distill.p3.pkd': 10 + iter - 0.75, teachers: 'a' })),
    ...[1, 2].map((iter) => ({ time: 1, stage: 'mtpd2-b', iter, lr: 0.1, loss: 5, classification: 0.3, bbox_regression: 0.2, 'distill.p3.pkd': 4.5, teachers: 'b' })),
    ...[1, 2, 3, 4].map((iter) => ({ time: 1, stage: 'longer-2x', iter, lr: 0.1, loss: 0.9, classification: 0.6, bbox_regression: 0.3 })),
    { time: 1, stage: 'train:teacher', iter: 1, lr: 0.1, loss: 2, classification: 1, bbox_regression: 1 },
    { time: 1, stage: 'x', model: 'x', stats: [0.1] },
  ];
  t.same(lossParts(recs[0]!), { detection: 0.75, distillation: 10.25 });
  const s = splitLosses(recs, { window: 1 });
  const prog = s.detection.filter((p) => p.series === 'progressive');
  t.same(prog.map((p) => p.x), [1, 2, 3, 4], 'stage 2 continues after stage 1');
  t.same(prog.map((p) => p.y), [0.75, 0.75, 0.5, 0.5], 'detection terms only');
  t.same(s.detection.filter((p) => p.series === 'longer-2x').map((p) => p.x), [1, 2, 3, 4]);
  t.same(s.distillation.map((p) => p.series), ['progressive', 'progressive', 'progressive', 'progressive'], 'only distilling stages have a distillation loss');
  t.same(s.scratch, [{ x: 1, y: 2, series: 'teacher' }]);
  const avg = splitLosses(recs, { window: 2 });
  t.same(avg.detection.filter((p) => p.series === 'progressive').map((p) => p.y), [0.75, 0.75, 0.625, 0.5], 'moving average');
});
