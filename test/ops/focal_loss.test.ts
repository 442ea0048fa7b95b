/**
 * RetinaNet's sigmoid focal loss (native/ops/focal_loss.h) against torchvision 0.14
 * (test/fixtures/ops/focal_loss.safetensors, made by scripts/golden/torchvision_focal_loss.py): the
 * sum over non-ignored rows and its gradient, from the fused CPU kernel and from torchvision's op
 * sequence (twice_differentiable), on RetinaNet's alpha/gamma and others, saturated logits, float32
 * and float64; ignored rows get no gradient; float64 gradients against central differences; bad
 * classes and shapes are errors that name them.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Module } from '../../src/module.js';
import { relErr } from '../../src/parity.js';
import { type Tensor, tensor, toNumbers } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/index.js';
import { fixtureGetter, haveAddon } from '../helpers.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ops', 'focal_loss.safetensors');

interface Case {
  name: string;
  alpha: number;
  gamma: number;
}

async function lossAndGrad(logits: Tensor, classes: Tensor, opts: Record<string, unknown>): Promise<[number, Tensor]> {
  const m = await Module.create('ops.sigmoid_focal_loss', { ...opts, backward: true });
  const one = tensor(logits.dtype, [], [1]);
  const [loss, grad] = await m.forward([logits, classes, one]);
  return [toNumbers(loss as Tensor)[0] as number, grad as Tensor];
}

if (haveAddon(t)) {
  const { tensors, metadata } = await loadSafetensors(file);
  const get = fixtureGetter(tensors);
  const cases = JSON.parse(metadata.cases ?? '[]') as Case[];
  t.ok(cases.length >= 6, 'golden cases present');
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const x = get(`${c.name}.logits`), cls = get(`${c.name}.classes`);
      const want = toNumbers(get(`${c.name}.loss`))[0] as number;
      const wantGrad = get(`${c.name}.grad`);
      const tol = x.dtype === 'float64' ? 1e-12 : 2e-6;
      for (const twice of [false, true]) {
        const how = twice ? "torchvision's op sequence" : 'fused kernel';
        const [loss, grad] = await lossAndGrad(x, cls, { alpha: c.alpha, gamma: c.gamma, twice_differentiable: twice });
        t.ok(Math.abs(loss - want) <= tol * Math.abs(want), `${how}: loss ${loss} vs torchvision ${want}`);
        const e = relErr(grad, wantGrad);
        t.ok(e <= tol * 4, `${how}: gradient max error / max |grad| ${e.toExponential(2)}`);
        // ignored rows: exactly zero gradient
        const k = x.shape[1] as number, g = toNumbers(grad), ids = toNumbers(cls);
        let bad = 0;
        ids.forEach((id, r) => {
          if (id === -2) for (let j = 0; j < k; j++) if (g[r * k + j] !== 0) bad++;
        });
        t.equal(bad, 0, `${how}: no gradient on the ${ids.filter((v) => v === -2).length} ignored rows`);
      }
      // the forward alone (no gradient kept) gives the same value
      const fwd = await Module.create('ops.sigmoid_focal_loss', { alpha: c.alpha, gamma: c.gamma });
      const [l] = await fwd.forward([x, cls]);
      t.ok(Math.abs((toNumbers(l as Tensor)[0] as number) - want) <= tol * Math.abs(want), 'forward without backward');
    });
  }

  t.test('float64 gradient against central differences', async (t) => {
    const rows = 9, k = 4, vals: number[] = [];
    for (let i = 0; i < rows * k; i++) vals.push(Math.sin(i * 1.7) * 6 - 1);
    const x = tensor('float64', [rows, k], vals);
    const cls = tensor('int64', [rows], [0n, -1n, 3n, -2n, 1n, -1n, 2n, 0n, -1n]);
    for (const [alpha, gamma] of [[0.25, 2], [0.4, 1.5], [-1, 0.5]] as const) {
      const [, grad] = await lossAndGrad(x, cls, { alpha, gamma });
      const m = await Module.create('ops.sigmoid_focal_loss', { alpha, gamma });
      const g = toNumbers(grad);
      let worst = 0;
      for (let i = 0; i < rows * k; i++) {
        const h = 1e-6, up = vals.slice(), dn = vals.slice();
        up[i] = (up[i] as number) + h;
        dn[i] = (dn[i] as number) - h;
        const [lu] = await m.forward([tensor('float64', [rows, k], up), cls]);
        const [ld] = await m.forward([tensor('float64', [rows, k], dn), cls]);
        const fd = ((toNumbers(lu as Tensor)[0] as number) - (toNumbers(ld as Tensor)[0] as number)) / (2 * h);
        worst = Math.max(worst, Math.abs(fd - (g[i] as number)));
      }
      t.ok(worst < 1e-7, `alpha ${alpha}, gamma ${gamma}: max |analytic - central difference| ${worst.toExponential(2)}`);
    }
  });

  t.test('bad input is an error naming it', async (t) => {
    const m = await Module.create('ops.sigmoid_focal_loss', {});
    const x = tensor('float32', [2, 3], [0, 1, 2, 3, 4, 5]);
    await t.rejects(m.forward([x, tensor('int64', [2], [3n, 0n])]), /classes must be in -2\.\.2, got 0\.\.3/);
    await t.rejects(m.forward([x, tensor('int64', [2], [-3n, 0n])]), /classes must be in -2\.\.2/);
    await t.rejects(m.forward([x, tensor('int64', [3], [0n, 0n, 0n])]), /classes must be \(A\) = \(2\)/);
    await t.rejects(m.forward([x, tensor('int32', [2], [0, 0])]), /classes must be int64/);
    await t.rejects(m.forward([tensor('float32', [6], [0, 1, 2, 3, 4, 5]), tensor('int64', [6], [0n, 0n, 0n, 0n, 0n, 0n])]), /logits must be \(A, K\)/);
    await t.rejects(Module.create('ops.sigmoid_focal_loss', { gamma: -1 }).then((b) => b.forward([x, tensor('int64', [2], [0n, 0n])])), /gamma must be >= 0/);
  });
}
