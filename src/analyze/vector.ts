/**
 * Vectors in a model's parameter space: one Float64Array per named parameter (its values in
 * row-major order, shaped as the parameter), the arithmetic the landscape and the power
 * iteration need, and the conversion to the tensors a detector takes.
 */
import type { Tensor } from '../tensor.js';

export interface ParamShape {
  name: string;
  shape: number[];
}

/** name -> values (row-major, length = numel of the parameter's shape). */
export type ParamVector = Map<string, Float64Array>;

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function zerosLike(shapes: readonly ParamShape[]): ParamVector {
  return new Map(shapes.map((s) => [s.name, new Float64Array(numelOf(s.shape))]));
}

function partner(b: ParamVector, name: string, n: number): Float64Array {
  const y = b.get(name);
  if (!y || y.length !== n) throw new RangeError(`parameter vectors differ at "${name}" (${y ? `${y.length} vs ${n} values` : 'missing'})`);
  return y;
}

export function dot(a: ParamVector, b: ParamVector): number {
  let s = 0;
  for (const [name, x] of a) {
    const y = partner(b, name, x.length);
    for (let i = 0; i < x.length; i++) s += (x[i] as number) * (y[i] as number);
  }
  return s;
}

export function norm(a: ParamVector): number {
  return Math.sqrt(dot(a, a));
}

/** sum_k c_k v_k, over vectors with the same names and sizes. */
export function combine(terms: readonly [number, ParamVector][]): ParamVector {
  const first = terms[0];
  if (!first) throw new RangeError('combine: no terms');
  const out: ParamVector = new Map();
  for (const [name, x] of first[1]) {
    const o = new Float64Array(x.length);
    for (const [c, v] of terms) {
      if (c === 0) continue;
      const y = partner(v, name, x.length);
      for (let i = 0; i < o.length; i++) o[i] = (o[i] as number) + c * (y[i] as number);
    }
    out.set(name, o);
  }
  return out;
}

export function scale(a: ParamVector, c: number): ParamVector {
  return combine([[c, a]]);
}

/** Float32 tensors shaped as the parameters, for loadStateDict / hessianVectorProduct. */
export function toTensors(v: ParamVector, shapes: readonly ParamShape[]): Map<string, Tensor<'float32'>> {
  const out = new Map<string, Tensor<'float32'>>();
  for (const s of shapes) {
    const x = v.get(s.name);
    if (!x) throw new RangeError(`parameter vector has no "${s.name}"`);
    out.set(s.name, { dtype: 'float32', shape: [...s.shape], data: Float32Array.from(x) });
  }
  return out;
}

/** From tensors (a state dict, a gradient, a product) to a vector over `shapes`' names. */
export function fromTensors(tensors: Map<string, Tensor>, shapes: readonly ParamShape[]): ParamVector {
  const out: ParamVector = new Map();
  for (const s of shapes) {
    const t = tensors.get(s.name);
    if (!t) throw new RangeError(`no tensor named "${s.name}"`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) throw new RangeError(`"${s.name}" has shape [${t.shape.join(', ')}], expected [${s.shape.join(', ')}]`);
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) throw new TypeError(`"${s.name}" is ${t.dtype}, expected a floating-point tensor`);
    out.set(s.name, Float64Array.from(t.data));
  }
  return out;
}
