/**
 * Hessian-vector products of the detection loss (double backward) and the power iteration on
 * them: H v against finite differences of the gradient, and λ_max against the eigenvalues of
 * the Hessian formed explicitly (one product per basis vector) on a block of a tiny detector.
 */
import t from 'tap';
import { powerIteration } from '../../src/analyze/sharpness.js';
import { combine, dot, fromTensors, norm, type ParamShape, type ParamVector, toTensors, zerosLike } from '../../src/analyze/vector.js';
import { haveAddon, mulberry32 } from '../helpers.js';
import { plainDetector, tinyBatch, tinyDetector } from './fixtures.js';

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations. */
function symmetricEigenvalues(a: number[][]): number[] {
  const n = a.length;
  const m = a.map((r) => [...r]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p]![q]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = m[p]![q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q]![q]! - m[p]![p]!) / (2 * apq);
        const tt = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(tt * tt + 1), s = tt * c;
        for (let k = 0; k < n; k++) {
          const akp = m[k]![p]!, akq = m[k]![q]!;
          m[k]![p] = c * akp - s * akq;
          m[k]![q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p]![k]!, aqk = m[q]![k]!;
          m[p]![k] = c * apk - s * aqk;
          m[q]![k] = s * apk + c * aqk;
        }
      }
  }
  return m.map((r, i) => r[i]!);
}

t.test('power iteration finds the eigenvalue of largest magnitude of an explicit matrix', async (t) => {
  // Q diag(5, -2, 1, 0.5) Q^T with a random orthogonal Q (Gram-Schmidt).
  const rnd = mulberry32(3);
  const q: number[][] = [];
  while (q.length < 4) {
    let v = Array.from({ length: 4 }, () => rnd() - 0.5);
    for (const u of q) {
      const d = v.reduce((s, x, i) => s + x * u[i]!, 0);
      v = v.map((x, i) => x - d * u[i]!);
    }
    const n = Math.hypot(...v);
    q.push(v.map((x) => x / n));
  }
  const lam = [5, -2, 1, 0.5];
  const a = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => lam.reduce((s, l, k) => s + l * q[k]![i]! * q[k]![j]!, 0)));
  const shapes: ParamShape[] = [{ name: 'w', shape: [2, 2] }];
  const apply = async (v: ParamVector) => {
    const x = v.get('w')!;
    return new Map([['w', Float64Array.from(a.map((r) => r.reduce((s, aij, j) => s + aij * x[j]!, 0)))]]);
  };
  const r = await powerIteration(apply, shapes, { iterations: 200, tol: 1e-10, seed: 1 });
  t.ok(r.converged);
  t.ok(Math.abs(r.eigenvalue - 5) < 1e-6, `λ ${r.eigenvalue} = 5`);
  const qv = Float64Array.from(q[0]!);
  t.ok(Math.abs(Math.abs(dot(r.vector, new Map([['w', qv]]))) - 1) < 1e-4, 'the eigenvector is found');
  // A dominant negative eigenvalue keeps its sign.
  const neg = async (v: ParamVector) => combine([[-1, await apply(v)]]);
  t.ok(Math.abs((await powerIteration(neg, shapes, { iterations: 200, tol: 1e-10 })).eigenvalue + 5) < 1e-6);
});

t.test('detector Hessian-vector products', async (t) => {
  if (!haveAddon(t)) return;
  const det = await tinyDetector();
  await det.eval();
  const { images, targets } = tinyBatch();
  const params = det.parameters();
  t.ok(params.length > 20 && params.every((p) => p.trainable), 'every parameter trains (bn, 5 stages)');
  // A block whose Hessian couples: the GroupNorm shift of the last classification-subnet conv
  // (32) and the logits' bias (9 anchors x 2 classes); 50 products make it explicitly.
  const names = ['head.classification_head.conv.3.1.bias', 'head.classification_head.cls_logits.bias'];
  const shapes: ParamShape[] = names.map((n) => {
    const p = params.find((x) => x.name === n);
    if (!p) throw new Error(`no parameter ${n}: ${params.map((x) => x.name).filter((x) => x.startsWith('head.classification')).join(', ')}`);
    return { name: n, shape: p.shape };
  });
  const size = shapes.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const hvp = async (v: ParamVector) => fromTensors((await det.hessianVectorProduct(images, targets, toTensors(v, shapes))).product, shapes);
  const gradAt = async () => fromTensors((await det.hessianVectorProduct(images, targets, toTensors(zerosLike(shapes), shapes))).gradient, shapes);

  await t.test('the losses are the detector losses, the product is linear', async (t) => {
    const r = await det.hessianVectorProduct(images, targets, toTensors(zerosLike(shapes), shapes));
    const plain = await det.losses(images, targets);
    t.same(Object.keys(r.losses).sort(), Object.keys(plain).sort());
    for (const [k, v] of Object.entries(plain)) t.ok(Math.abs((r.losses[k] as number) - v) < 1e-5, `${k} ${r.losses[k]} = ${v}`);
    t.equal(norm(fromTensors(r.product, shapes)), 0, 'H 0 = 0');
    const rnd = mulberry32(5);
    const u = new Map(shapes.map((s) => [s.name, Float64Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rnd() - 0.5)]));
    const w = new Map(shapes.map((s) => [s.name, Float64Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rnd() - 0.5)]));
    const lhs = await hvp(combine([[2, u], [-3, w]]));
    const rhs = combine([[2, await hvp(u)], [-3, await hvp(w)]]);
    t.ok(norm(combine([[1, lhs], [-1, rhs]])) <= 1e-4 * norm(rhs), 'H (2u - 3w) = 2 Hu - 3 Hw');
  });

  await t.test('H v matches central differences of the gradient', async (t) => {
    const rnd = mulberry32(9);
    const v = new Map(shapes.map((s) => [s.name, Float64Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rnd() - 0.5)]));
    const vn = combine([[1 / norm(v), v]]);
    const theta = fromTensors(await det.stateDict(), shapes);
    const eps = 1e-2;
    await det.loadStateDict(toTensors(combine([[1, theta], [eps, vn]]), shapes), { strict: false });
    const gp = await gradAt();
    await det.loadStateDict(toTensors(combine([[1, theta], [-eps, vn]]), shapes), { strict: false });
    const gm = await gradAt();
    await det.loadStateDict(toTensors(theta, shapes), { strict: false });
    const fd = combine([[1 / (2 * eps), gp], [-1 / (2 * eps), gm]]);
    const hv = await hvp(vn);
    const cos = dot(fd, hv) / (norm(fd) * norm(hv));
    t.ok(norm(hv) > 1e-5, `H v is not zero (${norm(hv)})`);
    t.ok(cos > 0.99, `cosine ${cos}`);
    t.ok(Math.abs(norm(fd) / norm(hv) - 1) < 0.02, `norms ${norm(fd)} vs ${norm(hv)}`);
  });

  await t.test('errors name the parameter', async (t) => {
    const one = new Map([['head.no_such.weight', { dtype: 'float32' as const, shape: [1], data: new Float32Array(1) }]]);
    await t.rejects(det.hessianVectorProduct(images, targets, one), /"head\.no_such\.weight" is not a parameter/);
    const bad = new Map([['head.classification_head.cls_logits.bias', { dtype: 'float32' as const, shape: [3], data: new Float32Array(3) }]]);
    await t.rejects(det.hessianVectorProduct(images, targets, bad), /cls_logits\.bias.*shape/);
  });
});

t.test('power iteration on H v against the explicit Hessian of a block of a tiny detector', async (t) => {
  if (!haveAddon(t)) return;
  const det = await plainDetector();
  await det.eval();
  const { images, targets } = tinyBatch(1, 1);
  const params = det.parameters();
  // The last classification-subnet conv's bias (16) and the logits' bias (9 anchors x 1 class):
  // coupled through the ReLU and the logits conv; 25 products make the block explicitly.
  const names = ['head.classification_head.conv.3.0.bias', 'head.classification_head.cls_logits.bias'];
  const shapes: ParamShape[] = names.map((n) => {
    const p = params.find((x) => x.name === n);
    if (!p) throw new Error(`no parameter ${n}`);
    return { name: n, shape: p.shape };
  });
  const size = shapes.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  t.equal(size, 25);
  const hvp = async (v: ParamVector) => fromTensors((await det.hessianVectorProduct(images, targets, toTensors(v, shapes))).product, shapes);
  {
    // H column by column: H e_i.
    const cols: number[][] = [];
    for (let i = 0; i < size; i++) {
      const e = zerosLike(shapes);
      let k = i;
      for (const s of shapes) {
        const x = e.get(s.name)!;
        if (k < x.length) {
          x[k] = 1;
          break;
        }
        k -= x.length;
      }
      const col = await hvp(e);
      cols.push(shapes.flatMap((s) => Array.from(col.get(s.name)!)));
    }
    const h = cols.map((_, i) => cols.map((c) => c[i]!));
    let asym = 0, scaleH = 0;
    for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) {
      asym = Math.max(asym, Math.abs(h[i]![j]! - h[j]![i]!));
      scaleH = Math.max(scaleH, Math.abs(h[i]![j]!));
    }
    t.ok(asym <= 1e-4 * scaleH, `the Hessian is symmetric (${asym} of ${scaleH})`);
    const sym = h.map((r, i) => r.map((x, j) => (x + h[j]![i]!) / 2));
    const eig = symmetricEigenvalues(sym).sort((a, b) => Math.abs(b) - Math.abs(a));
    const top = eig[0]!;
    t.ok(Math.abs(top) > 0, `λ_max ${top}, next ${eig[1]}`);
    const r = await powerIteration(hvp, shapes, { iterations: 500, tol: 1e-9, seed: 2 });
    t.ok(Math.abs(r.eigenvalue - top) <= 1e-3 * Math.abs(top), `power iteration ${r.eigenvalue} = explicit ${top} (${r.iterations} iterations)`);
  }
});
