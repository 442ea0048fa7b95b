/**
 * alignTiedDetections pairs up detections only where the order is float noise (near-tied
 * scores): a swap of tied rows is no difference, a swap of distinct scores still is one.
 */
import t from 'tap';
import { alignTiedDetections, relErr } from '../../src/parity.js';
import { tensor } from '../../src/tensor.js';

const dets = (scores: number[], boxes: number[][], labels: number[]) => ({
  scores: tensor('float32', [scores.length], scores),
  boxes: tensor('float32', [boxes.length, 4], boxes.flat()),
  labels: tensor('int64', [labels.length], labels),
  masks: tensor('float32', [scores.length, 1, 1, 1], scores.map((_, i) => i)),
});

t.test('near-tied rows in another order are paired up, with their masks', async (t) => {
  const ref = dets([0.9, 0.44558632, 0.44558632, 0.1], [[0, 0, 10, 10], [50, 56, 96, 106], [0, 55, 76, 105], [1, 1, 2, 2]], [0, 1, 1, 2]);
  const got = dets([0.9, 0.44558635, 0.44558632, 0.1], [[0, 0, 10, 10], [0, 55, 76, 105], [50, 56, 96, 106], [1, 1, 2, 2]], [0, 1, 1, 2]);
  t.ok(relErr(got.boxes, ref.boxes) > 0.1, 'rows swapped');
  const a = alignTiedDetections(got, ref);
  t.equal(relErr(a.boxes, ref.boxes), 0, 'boxes line up');
  t.ok(relErr(a.scores, ref.scores) < 1e-6, 'scores line up');
  t.same([...a.labels.data], [0n, 1n, 1n, 2n]);
  t.same([...(a.masks?.data ?? [])], [0, 2, 1, 3], 'masks move with their boxes');
});

t.test('distinct scores keep their order: a real difference stays visible', async (t) => {
  const ref = dets([0.9, 0.5, 0.4], [[0, 0, 10, 10], [50, 56, 96, 106], [0, 55, 76, 105]], [0, 1, 1]);
  const got = dets([0.9, 0.5, 0.4], [[0, 0, 10, 10], [0, 55, 76, 105], [50, 56, 96, 106]], [0, 1, 1]);
  const a = alignTiedDetections(got, ref);
  t.equal(a, got, 'unchanged');
  t.ok(relErr(a.boxes, ref.boxes) > 0.1);
});

t.test('within a tie, the label decides before the box', async (t) => {
  const ref = dets([0.5, 0.5], [[0, 0, 10, 10], [0, 0, 10, 10]], [1, 2]);
  const got = dets([0.5, 0.5], [[0, 0, 10, 10], [0, 0, 10, 10]], [2, 1]);
  t.same([...alignTiedDetections(got, ref).labels.data], [1n, 2n]);
});
