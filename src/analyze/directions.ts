/**
 * Filter-normalized random directions (Li et al., "Visualizing the Loss Landscape of Neural
 * Nets", NeurIPS 2018, section 4): a direction d has Gaussian entries, then each filter of each
 * weight (each slice d[i, ...] along the output dimension of a conv or linear weight) is
 * rescaled to the norm of the model's filter: d_i <- d_i / ||d_i|| * ||θ_i||. Directions of
 * 1-D parameters (BatchNorm / GroupNorm scales and shifts, biases) are zero: the paper's
 * "ignore biasbn" option, under which the plot shows how the loss changes with the weights
 * alone, at the scale of each filter.
 */
import { Rng } from '../data/rng.js';
import type { ParamShape, ParamVector } from './vector.js';
import { numelOf } from './vector.js';

/**
 * Rescales `d` in place, filter by filter, to the norms of `theta`'s filters; zeroes 1-D
 * parameters. A filter of θ that is all zero gets a zero direction.
 */
export function normalizeFilters(d: ParamVector, theta: ParamVector, shapes: readonly ParamShape[]): ParamVector {
  for (const s of shapes) {
    const x = d.get(s.name);
    const w = theta.get(s.name);
    if (!x || !w || x.length !== w.length) throw new RangeError(`normalizeFilters: "${s.name}" is missing or misshaped`);
    if (s.shape.length <= 1) {
      x.fill(0);
      continue;
    }
    // (out, ...) -> out filters of numel / out values each.
    const filters = s.shape[0] as number;
    const per = x.length / filters;
    for (let f = 0; f < filters; f++) {
      let dn = 0, wn = 0;
      for (let i = f * per; i < (f + 1) * per; i++) {
        dn += (x[i] as number) ** 2;
        wn += (w[i] as number) ** 2;
      }
      const c = Math.sqrt(wn) / (Math.sqrt(dn) + 1e-10);
      for (let i = f * per; i < (f + 1) * per; i++) x[i] = (x[i] as number) * c;
    }
  }
  return d;
}

/** A Gaussian direction over `shapes`, filter-normalized to θ, from `seed` (the same seed gives the same draw for any model of these shapes). */
export function randomDirection(theta: ParamVector, shapes: readonly ParamShape[], seed: number): ParamVector {
  const rng = new Rng(seed);
  const d: ParamVector = new Map();
  for (const s of shapes) {
    const x = new Float64Array(numelOf(s.shape));
    for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    d.set(s.name, x);
  }
  return normalizeFilters(d, theta, shapes);
}
