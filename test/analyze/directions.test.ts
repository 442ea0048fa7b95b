/** Filter normalization of random directions (Li et al. 2018) and the parameter-vector arithmetic. */
import t from 'tap';
import { normalizeFilters, randomDirection } from '../../src/analyze/directions.js';
import { combine, dot, norm, type ParamShape, type ParamVector } from '../../src/analyze/vector.js';
import { mulberry32 } from '../helpers.js';

const shapes: ParamShape[] = [
  { name: 'conv.weight', shape: [4, 3, 3, 3] },
  { name: 'bn.weight', shape: [4] },
  { name: 'bn.bias', shape: [4] },
  { name: 'fc.weight', shape: [5, 4] },
  { name: 'fc.bias', shape: [5] },
];

function model(seed: number, zeroFilter = false): ParamVector {
  const rnd = mulberry32(seed);
  const v: ParamVector = new Map(shapes.map((s) => [s.name, Float64Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => 2 * rnd() - 1)]));
  if (zeroFilter) v.get('conv.weight')!.fill(0, 27, 54);
  return v;
}

function filterNorms(v: ParamVector, name: string, filters: number): number[] {
  const x = v.get(name)!;
  const per = x.length / filters;
  return Array.from({ length: filters }, (_, f) => Math.hypot(...x.slice(f * per, (f + 1) * per)));
}

t.test('every filter of the direction has the norm of the model filter; 1-D parameters do not move', async (t) => {
  const theta = model(1, true);
  const d = randomDirection(theta, shapes, 7);
  const want = filterNorms(theta, 'conv.weight', 4);
  const got = filterNorms(d, 'conv.weight', 4);
  for (let f = 0; f < 4; f++) t.ok(Math.abs(got[f]! - want[f]!) < 1e-9 * Math.max(1, want[f]!), `conv filter ${f}: ${got[f]} = ${want[f]}`);
  t.equal(got[1], 0, 'an all-zero filter gets a zero direction');
  const fcWant = filterNorms(theta, 'fc.weight', 5);
  filterNorms(d, 'fc.weight', 5).forEach((n, f) => t.ok(Math.abs(n - fcWant[f]!) < 1e-9, `fc row ${f}`));
  for (const n of ['bn.weight', 'bn.bias', 'fc.bias']) t.ok(d.get(n)!.every((x) => x === 0), `${n} is zero`);
});

t.test('normalizeFilters rescales each filter and keeps its direction', async (t) => {
  const theta = model(2);
  const raw = model(3);
  const d = normalizeFilters(new Map([...raw].map(([k, v]) => [k, Float64Array.from(v)])), theta, shapes);
  const a = raw.get('conv.weight')!.slice(0, 27), b = d.get('conv.weight')!.slice(0, 27);
  const cos = a.reduce((s, x, i) => s + x * b[i]!, 0) / (Math.hypot(...a) * Math.hypot(...b));
  t.ok(Math.abs(cos - 1) < 1e-12, 'filter 0 points the same way');
  t.throws(() => normalizeFilters(new Map([['conv.weight', new Float64Array(3)]]), theta, shapes), /conv\.weight/);
});

t.test('the same seed gives two models the same draw, each scaled to its own filters', async (t) => {
  const a = model(4), b = model(5);
  const da = randomDirection(a, shapes, 11), db = randomDirection(b, shapes, 11);
  const na = filterNorms(a, 'conv.weight', 4), nb = filterNorms(b, 'conv.weight', 4);
  const xa = da.get('conv.weight')!, xb = db.get('conv.weight')!;
  let worst = 0;
  for (let i = 0; i < xa.length; i++) worst = Math.max(worst, Math.abs(xa[i]! / na[Math.floor(i / 27)]! - xb[i]! / nb[Math.floor(i / 27)]!));
  t.ok(worst < 1e-12, `same unit filters (${worst})`);
  const other = randomDirection(a, shapes, 12);
  t.ok(Math.abs(dot(da, other)) < 0.9 * norm(da) * norm(other), 'another seed, another direction');
  t.same(Array.from(randomDirection(a, shapes, 11).get('conv.weight')!), Array.from(xa), 'deterministic');
});

t.test('vector arithmetic', async (t) => {
  const a = model(6), b = model(7);
  const c = combine([[2, a], [-1, b]]);
  t.ok(Math.abs(dot(c, a) - (2 * dot(a, a) - dot(a, b))) < 1e-9);
  t.throws(() => dot(a, new Map([['conv.weight', new Float64Array(1)]])), /differ at "conv\.weight"/);
});
