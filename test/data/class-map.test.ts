/** Model classes (dataset / torchvision coco91 / mmdetection coco80) matched to a dataset's categories. */
import t from 'tap';
import { COCO_CATEGORIES, classSlots, describeMapping, mapClasses, normalizeName, numModelClasses } from '../../src/data/class-map.js';

const coco = COCO_CATEGORIES.map(([id, name]) => ({ id, name }));

t.test('the COCO 2017 categories: 80, ids 1..90 ascending with the ten gaps', async (t) => {
  t.equal(coco.length, 80);
  const ids = coco.map((c) => c.id);
  t.same(ids, [...ids].sort((a, b) => a - b));
  t.same([...Array(90).keys()].map((i) => i + 1).filter((id) => !ids.includes(id)), [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]);
  t.equal(classSlots('coco91', []).length, 91);
  t.equal(classSlots('coco91', [])[0], null, 'slot 0 (background) is no category');
  t.equal(classSlots('coco91', [])[90]?.name, 'toothbrush');
  t.equal(classSlots('coco80', [])[79]?.name, 'toothbrush');
  t.same([numModelClasses('coco91', 5), numModelClasses('coco80', 5), numModelClasses('dataset', 5)], [91, 80, 5]);
});

t.test('COCO itself: coco91 by id is the identity on ids, coco80 the position in COCO order', async (t) => {
  const m91 = mapClasses('coco91', coco);
  t.equal(m91.matchedBy, 'id');
  t.same(m91.unmatched, []);
  for (let l = 0; l < 91; l++) t.equal(m91.categoryIds[l], coco.some((c) => c.id === l) ? l : -1);
  coco.forEach((c, i) => t.equal(m91.modelLabels[i], c.id));
  const m80 = mapClasses('coco80', coco);
  t.same(Array.from(m80.categoryIds), coco.map((c) => c.id));
  t.same(Array.from(m80.modelLabels), coco.map((_, i) => i));
});

t.test('a renumbered subset is matched by name; a category COCO lacks is reported', async (t) => {
  const ds = [
    { id: 1, name: 'dog' },
    { id: 2, name: 'Traffic_Light' },
    { id: 3, name: 'person' },
    { id: 7, name: 'unicorn' },
  ];
  const m = mapClasses('coco91', ds);
  t.equal(m.matchedBy, 'name', 'id 1 is "person" in COCO, so auto goes by name');
  t.same(Array.from(m.modelLabels), [18, 10, 1, -1]);
  t.equal(m.categoryIds[18], 1);
  t.equal(m.categoryIds[1], 3);
  t.equal(m.categoryIds[3], -1, 'COCO car: not in the dataset');
  t.same(m.unmatched, [{ id: 7, name: 'unicorn' }]);
  t.match(describeMapping(m, 'r50'), /r50: coco91 classes \(91 outputs\), 3 of the dataset's 4 categories matched by name; the model has no class for 7 "unicorn"/);
  const m80 = mapClasses('coco80', ds);
  t.same(Array.from(m80.modelLabels), [16, 9, 0, -1]);
  const byId = mapClasses('coco91', ds, 'id');
  t.same(Array.from(byId.modelLabels), [1, 2, 3, 7], 'forced by id: the ids, whatever the names');
  t.equal(normalizeName('  Hair-Drier '), 'hair drier');
});

t.test('a COCO subset with COCO ids goes by id; two categories on one class is an error', async (t) => {
  const m = mapClasses('coco91', [{ id: 3, name: 'car' }, { id: 90, name: 'toothbrush' }]);
  t.equal(m.matchedBy, 'id');
  t.same(Array.from(m.modelLabels), [3, 90]);
  t.throws(() => mapClasses('coco80', [{ id: 1, name: 'cat' }, { id: 2, name: 'Cat' }], 'name', 'teachers.0.classes'), /teachers\.0\.classes: dataset categories 1 and 2 both match coco80 class 15 \("cat"\)/);
  t.throws(() => mapClasses('coco91', [], 'fuzzy' as 'id'), /classMatch must be auto, id or name/);
  const d = mapClasses('dataset', [{ id: 9, name: 'b' }, { id: 4, name: 'a' }]);
  t.same([Array.from(d.categoryIds), Array.from(d.modelLabels), d.numClasses], [[4, 9], [0, 1], 2]);
});
