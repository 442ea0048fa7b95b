/** Distillation levels paired by stride: two-stage p2..p5, RetinaNet p3..p7, and the errors. */
import t from 'tap';
import { distillableLevels, pairedLevels, runLevels, type LevelSource } from '../../src/train/levels.js';

const model = (name: string, levels: number[]): LevelSource => ({
  resolved: { name },
  featureNames: levels.map((l) => `p${l}`),
  featureStrides: Object.fromEntries(levels.map((l) => [`p${l}`, 2 ** l])),
});
const mrcnn = model('mask_rcnn', [2, 3, 4, 5, 6]);
const frcnn = model('faster_rcnn', [2, 3, 4, 5, 6]);
const retina = model('retinanet', [3, 4, 5, 6, 7]);

t.test('distillable levels: two-stage without the pool level', async (t) => {
  t.same(distillableLevels(mrcnn).map((l) => l.name), ['p2', 'p3', 'p4', 'p5']);
  t.same(distillableLevels(frcnn).map((l) => l.stride), [4, 8, 16, 32]);
  t.same(distillableLevels(retina).map((l) => l.name), ['p3', 'p4', 'p5', 'p6', 'p7']);
});

t.test('pairs by stride', async (t) => {
  t.same(pairedLevels(mrcnn, mrcnn), ['p2', 'p3', 'p4', 'p5']);
  t.same(pairedLevels(mrcnn, retina), ['p3', 'p4', 'p5']);
  t.same(pairedLevels(retina, mrcnn), ['p3', 'p4', 'p5']);
  t.same(pairedLevels(retina, retina), ['p3', 'p4', 'p5', 'p6', 'p7']);
  t.same(pairedLevels(mrcnn, retina, ['p4']), ['p4']);
  t.throws(() => pairedLevels(mrcnn, retina, ['p2']), /distill\.levels names p2, which student and teacher do not share \(shared by stride: p3, p4, p5; student p2\/4, p3\/8, p4\/16, p5\/32; teacher p3\/8/);
  const odd: LevelSource = { resolved: { name: 'retinanet' }, featureNames: ['q3'], featureStrides: { q3: 8 } };
  t.throws(() => pairedLevels(mrcnn, odd), /the student's level p3 and the teacher's q3 have the same stride 8 but different names/);
  const far: LevelSource = { resolved: { name: 'retinanet' }, featureNames: ['p9'], featureStrides: { p9: 512 } };
  t.throws(() => pairedLevels(mrcnn, far), /share no stride/);
});

t.test('the cost matrix levels: those every teacher pairs with the student', async (t) => {
  t.same(runLevels(mrcnn, [mrcnn, retina], { distill: {} as never }), ['p3', 'p4', 'p5']);
  t.same(runLevels(mrcnn, [mrcnn], { distill: {} as never }), ['p2', 'p3', 'p4', 'p5']);
  t.same(runLevels(retina, [retina, retina], { distill: {} as never }), ['p3', 'p4', 'p5', 'p6', 'p7']);
  t.same(runLevels(mrcnn, [retina], { distill: { levels: ['p5'] } as never }), ['p5']);
});
