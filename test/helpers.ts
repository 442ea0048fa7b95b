/** Shared test helpers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { loadAddon } from '../src/native.js';
import type { Tensor } from '../src/tensor.js';

let addonError: Error | null | undefined;

/**
 * True when the native addon loads. Otherwise the test is skipped with the loader's message,
 * except in CI (CI=true), where a missing addon fails the test: nothing is silently skipped there.
 */
export function haveAddon(t: Test): boolean {
  if (addonError === undefined) {
    try {
      loadAddon();
      addonError = null;
    } catch (err) {
      addonError = err as Error;
    }
  }
  if (addonError === null) return true;
  if (process.env.CI) t.fail(`native addon missing in CI: ${addonError.message}`);
  else t.plan(0, `native addon not built: ${addonError.message.split('\n')[0]}`);
  return false;
}

/** A temp folder removed when the test ends. */
export function tempDir(t: Test, prefix = 'mtpd-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), for test data. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A (3, h, w) float32 image of mulberry32(seed) values in [0, 1). */
export function randomImage(h: number, w: number, seed: number): Tensor<'float32'> {
  const r = mulberry32(seed);
  const data = new Float32Array(3 * h * w);
  for (let i = 0; i < data.length; i++) data[i] = r();
  return { dtype: 'float32', shape: [3, h, w], data };
}

/** Relative max difference: max |a - b| / max(1, max |b|); Infinity when the lengths differ. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 1;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
    m = Math.max(m, Math.abs(b[i] as number));
  }
  return a.length === b.length ? d / m : Infinity;
}

/** A golden fixture's tensor by name; a missing one is an error naming it. */
export function fixtureGetter(tensors: Map<string, Tensor>): (name: string) => Tensor {
  return (name) => {
    const v = tensors.get(name);
    if (!v) throw new Error(`fixture has no ${name}`);
    return v;
  };
}
