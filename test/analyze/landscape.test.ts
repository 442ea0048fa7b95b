/**
 * The detection objective and its landscapes on a tiny detector: at the origin the landscape is
 * the model's own loss, the weights come back afterwards, only weights with filters move, and the
 * radius sharpness and λ_max are measured at θ0.
 */
import t from 'tap';
import { axis, landscape1d, landscape2d } from '../../src/analyze/landscape.js';
import { DetectionObjective } from '../../src/analyze/objective.js';
import { radiusSharpness } from '../../src/analyze/sharpness.js';
import type { TrainSubset } from '../../src/analyze/subset.js';
import { haveAddon } from '../helpers.js';
import { tinyBatch, tinyDetector } from './fixtures.js';

t.test('axis', async (t) => {
  t.same(axis(0.5, 5), [-0.5, -0.25, 0, 0.25, 0.5]);
  t.equal(axis(1, 9)[4], 0, 'odd counts hit 0 exactly');
});

t.test('landscapes around a tiny detector', async (t) => {
  if (!haveAddon(t)) return;
  const det = await tinyDetector(4);
  const a = tinyBatch(1), b = tinyBatch(2);
  // Two batches of unequal size: the objective is the image-weighted mean.
  const subset: TrainSubset = {
    batches: [
      { images: a.images, targets: a.targets, imageIds: [1, 2] },
      { images: b.images.slice(0, 1), targets: b.targets.slice(0, 1), imageIds: [3] },
    ],
    size: 3,
    imageIds: [1, 2, 3],
  };
  const obj = await DetectionObjective.create(det, subset);
  t.ok(obj.shapes.length === det.parameters().length, 'every trainable parameter');
  const la = await det.losses(a.images, a.targets);
  const lb = await det.losses(b.images.slice(0, 1), b.targets.slice(0, 1));
  const sum = (l: Record<string, number>) => Object.values(l).reduce((x, y) => x + y, 0);
  const direct = (2 * sum(la) + sum(lb)) / 3;
  const { loss: l0, terms } = await obj.loss();
  t.ok(Math.abs(l0 - direct) < 1e-6, `L(θ0) ${l0} = the detector's loss ${direct}`);
  t.same(Object.keys(terms).sort(), ['bbox_regression', 'classification']);
  const before = await det.stateDict();

  const line = await landscape1d(obj, { seed: 3, alphas: [-0.2, 0, 0.2] });
  t.equal(line.losses[1], l0, 'the 1-D slice at α = 0 is the model loss');
  t.ok(line.losses[0] !== l0 && line.losses[2] !== l0, 'moving changes the loss');
  const plane = await landscape2d(obj, { seeds: [3, 4], alphas: [-0.2, 0, 0.2], betas: [-0.2, 0, 0.2] });
  t.equal(plane.losses[1]![1], l0, 'the 2-D slice at the centre is the model loss');
  t.equal(plane.losses[1]![0], line.losses[0], 'β = 0 row is the 1-D slice along the same first direction');

  const after = await det.stateDict();
  let same = true;
  for (const [k, v] of before) {
    const w = after.get(k)!;
    for (let i = 0; i < v.data.length; i++) if (v.data[i] !== w.data[i]) same = false;
  }
  t.ok(same, 'the weights are restored bit for bit');

  // Only weights with filters move: a 1-D parameter keeps its value at any α.
  await obj.moveTo([[0.3, (await import('../../src/analyze/directions.js')).randomDirection(obj.theta, obj.shapes, 5)]]);
  const moved = await det.stateDict();
  t.same(Array.from(moved.get('head.classification_head.cls_logits.bias')!.data as Float32Array), Array.from(before.get('head.classification_head.cls_logits.bias')!.data as Float32Array), 'biases do not move');
  t.notSame(Array.from(moved.get('head.classification_head.cls_logits.weight')!.data as Float32Array), Array.from(before.get('head.classification_head.cls_logits.weight')!.data as Float32Array), 'weights do');
  await obj.restore();

  const r = await radiusSharpness(obj, { radius: 0.05, count: 2, seed: 0 });
  t.equal(r.base, l0);
  t.equal(r.increases.length, 2);
  t.equal((await obj.loss()).loss, l0, 'restored after the radius probe');
});
