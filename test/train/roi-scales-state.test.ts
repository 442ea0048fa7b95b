/**
 * A checkpoint's roiScales (the RoI pooler scales a model kept from its first batch) come back on
 * the resumed stage's fresh model, and a damaged value is refused naming the checkpoint's
 * state.json and what is wrong, before any step runs.
 */
import t from 'tap';
import { restoreRoiScales, type StageState } from '../../src/train/detection.js';
import type { LoadedCheckpoint } from '../../src/train/checkpoint.js';

const checkpoint = { name: 'student-00000002', dir: '/run/checkpoints/student-00000002', state: null, sets: [], weights: async () => new Map() } as LoadedCheckpoint;
const state = (roiScales?: unknown): StageState => ({ stage: 'student', iter: 2, total: 5, loader: { epoch: 0, index: 4 } as never, ...(roiScales === undefined ? {} : { roiScales: roiScales as number[] }) });

t.test('the saved scales are handed to the model; none saved leaves it alone', async (t) => {
  const given: number[][] = [];
  const det = { setRoiScales: (s: number[]) => void given.push(s) };
  restoreRoiScales(det, state([0.25, 0.125, 0.0625, 0.03125]), checkpoint);
  restoreRoiScales(det, state(), checkpoint);
  t.same(given, [[0.25, 0.125, 0.0625, 0.03125]]);
});

t.test('a damaged value names state.json', async (t) => {
  const det = { setRoiScales: () => undefined };
  t.throws(() => restoreRoiScales(det, state('0.25'), checkpoint), { code: 'ERR_MTPD_CONFIG', message: /student-00000002\/state\.json: roiScales must be an array of numbers, got "0.25"/ });
  t.throws(() => restoreRoiScales(det, state([0.25, null]), checkpoint), /roiScales must be an array of numbers/);
  const refusing = { setRoiScales: () => { throw new Error('mask_rcnn: roi scales: needs 4 (one per pooled level), got 2'); } };
  t.throws(() => restoreRoiScales(refusing, state([0.25, 0.125]), checkpoint), /state\.json: roiScales: mask_rcnn: roi scales: needs 4/);
});
