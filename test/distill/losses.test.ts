// Every distillation loss and adapter against golden values from Debian's torch 1.13
// (scripts/golden/distill_losses.py): named losses with their reductions and weights, the
// gradient sent to each student map, the gradient norm of each distiller parameter, and no
// gradient into any teacher map.
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { loadAddon } from '../../src/native.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { Distiller, fgdMasks, listLosses, type DistillerConfig } from '../../src/distill/index.js';

interface Enc {
  shape: number[];
  data: number[];
}
interface Case {
  name: string;
  config: DistillerConfig;
  student: Record<string, Enc>;
  teacher: Record<string, Enc>;
  context: { boxes: Enc[]; imageSizes: [number, number][] };
  state: Record<string, Enc>;
  expected: {
    losses: Record<string, number>;
    total: number;
    studentGrads: Record<string, Enc>;
    paramGradNorms: Record<string, number>;
  };
}
const golden = JSON.parse(readFileSync(new URL('../fixtures/distill/losses.json', import.meta.url), 'utf8')) as {
  cases: Case[];
  masks: { boxes: Enc[]; imageSizes: [number, number][]; n: number; h: number; w: number; fg: Enc; bg: Enc };
};

// No skip: without the addon these tests fail loudly (loadAddon throws with the loader's checklist).
loadAddon();

const f32 = (e: Enc): Tensor => tensor('float32', e.shape, e.data);
const maps = (m: Record<string, Enc>): Record<string, Tensor> => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, f32(v)]));

function close(t: Test, got: number, want: number, what: string, rtol = 1e-4, atol = 1e-6): void {
  const ok = Math.abs(got - want) <= atol + rtol * Math.abs(want);
  t.ok(ok, `${what}: got ${got}, want ${want}`);
}

function allClose(t: Test, got: Tensor, want: Enc, what: string, rtol = 1e-4, atol = 1e-5): void {
  t.same(got.shape, want.shape, `${what} shape`);
  const g = toNumbers(got);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.data.length; i++) {
    const w = want.data[i] as number;
    const err = Math.abs((g[i] as number) - w) - rtol * Math.abs(w);
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  t.ok(worst <= atol, `${what}: worst excess error ${worst} at ${at}`);
}

t.test('golden losses, gradients and adapters', async (t) => {
  t.same(Object.keys(listLosses()).sort(), ['cwd', 'fgd', 'mgd', 'mse', 'pkd']);
  for (const c of golden.cases) {
    await t.test(c.name, async (t) => {
      const d = await Distiller.create(c.config);
      const names = Object.keys(c.state);
      const report = await d.loadStateDict(names, names.map((k) => f32(c.state[k] as Enc)), true);
      t.equal(report.loaded, names.length, 'the golden state dict loads strictly by name');
      const ctx = { boxes: c.context.boxes.map(f32), imageSizes: c.context.imageSizes };
      const r = await d.compute(maps(c.student), maps(c.teacher), ctx, { grad: true });
      t.same(Object.keys(r.losses).sort(), Object.keys(c.expected.losses).sort(), 'loss names');
      for (const [k, v] of Object.entries(c.expected.losses)) close(t, r.losses[k] as number, v, k);
      close(t, r.total, c.expected.total, 'total');
      const grads = r.grads!;
      t.same(Object.keys(grads.student).sort(), Object.keys(c.expected.studentGrads).sort(), 'student taps with gradients');
      for (const [k, v] of Object.entries(c.expected.studentGrads)) allClose(t, grads.student[k] as Tensor, v, `d/d student.${k}`);
      for (const [k, v] of Object.entries(grads.teacherReceived)) t.equal(v, false, `no gradient reaches teacher.${k}`);
      for (const [k, v] of Object.entries(c.expected.paramGradNorms)) {
        t.not(grads.params[k], null, `${k} gets a gradient`);
        close(t, grads.params[k] as number, v, `|grad ${k}|`, 1e-3, 1e-6);
      }
      t.same(Object.keys(grads.params).sort(), Object.keys(c.expected.paramGradNorms).sort(), 'every distiller parameter');
      // The adapter kind follows from the shapes.
      for (const p of c.config.pairs ?? []) {
        const name = p.name as string;
        const s = c.student[p.student] as Enc;
        const te = c.teacher[p.teacher ?? p.student] as Enc;
        const conv = s.shape[1] !== te.shape[1];
        const resize = s.shape[2] !== te.shape[2] || s.shape[3] !== te.shape[3];
        const want = conv ? (resize ? 'conv1x1+resize' : 'conv1x1') : resize ? 'resize' : 'identity';
        t.equal(r.adapters[name], want, `adapter of ${name}`);
      }
    });
  }
});

t.test('MGD redraws its mask every call, reproducibly from the seed', async (t) => {
  const c = golden.cases.find((x) => x.name === 'mgd')!;
  const make = async () => {
    const d = await Distiller.create(c.config);
    const names = Object.keys(c.state);
    await d.loadStateDict(names, names.map((k) => f32(c.state[k] as Enc)), true);
    return d;
  };
  const a = await make();
  const first = (await a.compute(maps(c.student), maps(c.teacher))).total;
  const second = (await a.compute(maps(c.student), maps(c.teacher))).total;
  close(t, first, c.expected.total, 'first draw matches torch.rand with the same seed');
  t.not(second, first, 'the second call draws a new mask');
  const b = await make();
  t.equal((await b.compute(maps(c.student), maps(c.teacher))).total, first, 'same seed, same first mask');
});

t.test('FGD masks: inclusive floor/ceil extents, clipping, max over overlaps, empty and full images', async (t) => {
  const m = golden.masks;
  const r = await fgdMasks({ boxes: m.boxes.map(f32), imageSizes: m.imageSizes }, m.n, m.h, m.w);
  allClose(t, r.fg, m.fg, 'fg', 0, 1e-7);
  allClose(t, r.bg, m.bg, 'bg', 0, 1e-7);
  // By hand: image 1 has no boxes, so bg is uniform 1/30; image 2's box covers every cell.
  const bg = toNumbers(r.bg);
  t.ok(bg.slice(30, 60).every((v) => Math.abs(v - 1 / 30) < 1e-7), 'no boxes: uniform background');
  t.ok(bg.slice(60, 90).every((v) => v === 0), 'covered image: background stays zero');
  // Image 0: the 9..15 px box maps to columns 1..2, rows 1..2 (4 cells, 1/4): smaller box wins.
  const fg = toNumbers(r.fg);
  t.equal(fg[1 * 5 + 1], 0.25);
  t.equal(fg[2 * 5 + 2], 0.25);
  // The large box (whole image, extents 0..5 x 0..6 inclusive = 7*6 cells counted unclipped).
  t.ok(Math.abs((fg[0] as number) - 1 / 42) < 1e-8, `whole-image box value 1/42, got ${fg[0]}`);
});
