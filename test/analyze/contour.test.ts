/** Marching squares: iso-lines of sampled functions. */
import t from 'tap';
import { isolines } from '../../src/analyze/contour.js';

const grid = Array.from({ length: 9 }, (_, i) => -1 + i / 4);

t.test('iso-lines of a linear function lie exactly on its level sets', async (t) => {
  const z = grid.map((y) => grid.map((x) => 2 * x + y));
  const segs = isolines(grid, grid, z, [0.3, -1.1]);
  t.ok(segs.length > 8, `${segs.length} segments`);
  for (const s of segs) {
    t.ok(Math.abs(2 * s.x1 + s.y1 - s.level) < 1e-12 && Math.abs(2 * s.x2 + s.y2 - s.level) < 1e-12, 'endpoints on the level set');
  }
});

t.test('iso-lines of a bowl are closed rings around its centre', async (t) => {
  const z = grid.map((y) => grid.map((x) => x * x + y * y));
  const segs = isolines(grid, grid, z, [0.55]);
  for (const s of segs) {
    const r1 = Math.hypot(s.x1, s.y1), r2 = Math.hypot(s.x2, s.y2);
    t.ok(Math.abs(r1 - Math.sqrt(0.55)) < 0.05 && Math.abs(r2 - Math.sqrt(0.55)) < 0.05, `radius ${r1.toFixed(3)}, ${r2.toFixed(3)}`);
  }
  // Closed: every endpoint is shared by exactly two segments.
  const key = (x: number, y: number) => `${x},${y}`;
  const count = new Map<string, number>();
  for (const s of segs) for (const k of [key(s.x1, s.y1), key(s.x2, s.y2)]) count.set(k, (count.get(k) ?? 0) + 1);
  t.ok([...count.values()].every((c) => c === 2), 'a closed ring');
  t.same(isolines(grid, grid, z, [5]), [], 'a level above the samples draws nothing');
});
