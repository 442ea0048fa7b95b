import t from 'tap';
import { allOrders, backwardGreedySelection, type CostTable, exhaustiveSearch, orderByAp } from '../../src/order/bgs.js';
import { parseCostTable } from '../../src/order/costs-file.js';

/** A table from a compact spec: aps and d(A -> B) given as "A>B": d; anything missing is 9. */
function table(aps: Record<string, number>, d: Record<string, number>, fill = 9): CostTable {
  const names = Object.keys(aps);
  const costs: CostTable['costs'] = {};
  for (const a of names) {
    costs[a] = {};
    for (const b of names) if (a !== b) (costs[a] as Record<string, number>)[b] = d[`${a}>${b}`] ?? fill;
  }
  return { models: Object.fromEntries(names.map((n) => [n, { ap: aps[n] as number }])), costs };
}

t.test('chain: each step takes the teacher closest to the next one', async (t) => {
  const tb = table({ S: 30, T1: 35, T2: 40, T3: 45 }, { 'T2>T3': 1, 'T1>T3': 2, 'S>T3': 5, 'T1>T2': 1, 'S>T2': 3 });
  const r = backwardGreedySelection(tb, 'S');
  t.same(r.order, ['T1', 'T2', 'T3']);
  t.equal(r.stop, 'pool');
  t.same(r.steps.map((s) => s.teacher), ['T3', 'T2', 'T1']);
  t.same(r.steps[1], { teacher: 'T2', next: 'T3', cost: 1, studentCost: 5 });
});

t.test('stops when the student is closer to the next teacher than any remaining teacher', async (t) => {
  const tb = table({ S: 30, T1: 35, T2: 40, T3: 45 }, { 'T2>T3': 1, 'S>T3': 4, 'T1>T2': 3, 'S>T2': 2 });
  const r = backwardGreedySelection(tb, 'S');
  t.same(r.order, ['T2', 'T3']);
  t.equal(r.stop, 'student-closer');
  // Equal cost is not "farther": the teacher is kept.
  const eq = table({ S: 30, T1: 35, T2: 40 }, { 'T1>T2': 2, 'S>T2': 2 });
  t.same(backwardGreedySelection(eq, 'S').order, ['T1', 'T2']);
  // The student closer than every teacher to the strongest: the strongest alone.
  const alone = table({ S: 30, T1: 35, T2: 40 }, { 'T1>T2': 3, 'S>T2': 1 });
  const ra = backwardGreedySelection(alone, 'S');
  t.same(ra.order, ['T2']);
  t.equal(ra.stop, 'student-closer');
});

t.test('the length limit k', async (t) => {
  const tb = table({ S: 30, T1: 35, T2: 40, T3: 45 }, { 'T2>T3': 1, 'T1>T2': 1 }, 2);
  t.same(backwardGreedySelection(tb, 'S', 2).order, ['T2', 'T3']);
  t.equal(backwardGreedySelection(tb, 'S', 2).stop, 'k');
  const k1 = backwardGreedySelection(tb, 'S', 1);
  t.same(k1.order, ['T3'], 'k = 1 is direct distillation from the strongest');
  t.equal(k1.stop, 'k');
  t.throws(() => backwardGreedySelection(tb, 'S', 0), { message: /k must be a positive integer/ });
});

t.test('a pool of one teacher', async (t) => {
  const tb = table({ S: 30, T: 40 }, { 'S>T': 1 });
  const r = backwardGreedySelection(tb, 'S');
  t.same(r.order, ['T']);
  t.equal(r.stop, 'pool');
});

t.test('ties go to the name that sorts first', async (t) => {
  const tb = table({ S: 30, b: 35, a: 35, z: 50, y: 50 }, { 'a>y': 1, 'b>y': 1, 'S>y': 5, 'S>a': 0 });
  const r = backwardGreedySelection(tb, 'S', 2);
  t.equal(r.order[1], 'y', 'equal AP: y sorts before z');
  t.same(r.order, ['a', 'y'], 'equal cost: a sorts before b');
  t.same(orderByAp(tb, 'S', 2), ['z', 'y'], 'order by AP: the two strongest, ties by name, weakest first');
});

t.test('asymmetry: only d(candidate -> next) and d(student -> next) matter', async (t) => {
  const tb = table({ S: 30, T1: 35, T2: 36, T3: 45 }, { 'T1>T3': 1, 'T3>T1': 100, 'T2>T3': 4, 'T3>T2': 0.01, 'S>T3': 6 });
  t.same(backwardGreedySelection(tb, 'S', 2).order, ['T1', 'T3']);
  const flipped = table({ S: 30, T1: 35, T2: 36, T3: 45 }, { 'T1>T3': 7, 'T3>T1': 0, 'T2>T3': 4, 'S>T3': 6 });
  t.same(backwardGreedySelection(flipped, 'S', 2).order, ['T2', 'T3']);
});

t.test('missing entries and unknown students are clear errors', async (t) => {
  const tb = table({ S: 30, T1: 35, T2: 40 }, {});
  delete (tb.costs.T1 as Record<string, number>).T2;
  t.throws(() => backwardGreedySelection(tb, 'S'), { code: 'ERR_MTPD_CONFIG', message: /costs\["T1"\]\["T2"\]/ });
  t.throws(() => backwardGreedySelection(tb, 'X'), { message: /unknown student "X"; models are S, T1, T2/ });
  for (const name of ['constructor', 'toString']) {
    t.throws(() => backwardGreedySelection(tb, name), { message: new RegExp(`unknown student "${name}"`) }, `Object.prototype's ${name} is no model`);
    t.throws(() => parseCostTable({ models: { S: { ap: 1 } }, costs: { [name]: { S: 1 } } }, 'c.json'), { message: new RegExp(`names model "${name}"`) });
  }
  t.throws(() => backwardGreedySelection({ models: { S: { ap: 1 } }, costs: {} }, 'S'), { message: /no teacher/ });
  t.throws(() => parseCostTable({ models: { S: { ap: 'x' } }, costs: {} }, 'c.json'), { message: /c\.json: models\.S\.ap/ });
  t.throws(() => parseCostTable({ models: { S: { ap: 1 } }, costs: { S: { Q: 1 } } }, 'c.json'), { message: /names model "Q"/ });
  t.throws(() => parseCostTable({ models: { S: { ap: 1 }, T: { ap: 2 } }, costs: { S: { T: -1 } } }, 'c.json'), { message: /costs\.S\.T/ });
});

t.test('exhaustive search scores every order and ranks them', async (t) => {
  const tb = table({ S: 30, A: 35, B: 40, C: 45 }, {});
  t.equal(allOrders(['A', 'B', 'C'], 2).length, 3 + 6);
  t.equal(allOrders(['A', 'B', 'C'], 3, 'C').length, 1 + 2 + 2);
  const seen: string[] = [];
  const ranked = await exhaustiveSearch(tb, 'S', 2, async (o) => {
    seen.push(o.join('>'));
    return o.join('') === 'BC' ? 10 : o.length;
  });
  t.equal(seen.length, 9);
  t.same(ranked[0], { order: ['B', 'C'], score: 10 });
  await t.rejects(exhaustiveSearch(tb, 'S', 3, async () => 0, { maxOrders: 5 }), { message: /would score 15 orders/ });
});
