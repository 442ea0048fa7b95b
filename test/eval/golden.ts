/**
 * The pycocotools golden files of test/fixtures/coco (scripts/golden/coco_eval.py and
 * coco_eval_edges.py write the same layout): loading them and checking one case of src/eval
 * against them to 1e-12.
 */
import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { evaluate, type CocoDataset, type CocoDetection } from '../../src/eval/index.js';

export interface GoldenCase {
  name: string;
  iouType: 'bbox' | 'segm';
  gt: string;
  dets: CocoDetection[];
  imgIds?: number[] | null;
  expected: {
    stats: number[];
    perCategory: Record<string, number[]>;
    counts: number[];
    recall: number[];
    iouThrs?: number[];
    recThrs?: number[];
    precision?: number[];
    scores?: number[];
    precisionAll100?: number[];
  };
}

export interface GoldenFile {
  gts: Record<string, CocoDataset>;
  cases: GoldenCase[];
}

/** A golden file of test/fixtures/coco by name. */
export function loadCocoGolden(file: string): GoldenFile {
  return JSON.parse(readFileSync(new URL(`../fixtures/coco/${file}`, import.meta.url), 'utf8')) as GoldenFile;
}

export const TOL = 1e-12;

export function maxDiff(a: ArrayLike<number>, b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** src/eval on the case's ground truth and results, against everything pycocotools wrote for it. */
export function checkGoldenCase(t: Test, golden: GoldenFile, c: GoldenCase): void {
  const r = evaluate(golden.gts[c.gt]!, c.dets, { iouType: c.iouType, ...(c.imgIds ? { imgIds: c.imgIds } : {}) });
  const e = c.expected;
  t.same(r.counts, e.counts, 'counts [T, R, K, A, M]');
  t.ok(maxDiff(r.stats, e.stats) <= TOL, `stats ${JSON.stringify(r.stats)} vs ${JSON.stringify(e.stats)}`);
  t.same(Object.keys(r.perCategory).sort(), Object.keys(e.perCategory).sort(), 'the same categories');
  for (const [cid, s] of Object.entries(e.perCategory)) {
    const got = Object.values(r.perCategory[cid]!.stats);
    t.ok(maxDiff(got, s) <= TOL, `category ${cid}: ${JSON.stringify(got)} vs ${JSON.stringify(s)}`);
  }
  t.ok(maxDiff(r.recall, e.recall) <= TOL, 'recall array');
  if (e.precision) t.ok(maxDiff(r.precision, e.precision) <= TOL, 'full precision array');
  if (e.scores) t.ok(maxDiff(r.scores, e.scores) <= TOL, 'scores array');
  if (e.precisionAll100) {
    const [T, R, K, A, M] = r.counts as [number, number, number, number, number];
    const slice: number[] = [];
    for (let ti = 0; ti < T; ti++)
      for (let ri = 0; ri < R; ri++) for (let k = 0; k < K; k++) slice.push(r.precision[(((ti * R + ri) * K + k) * A + 0) * M + (M - 1)]!);
    t.ok(maxDiff(slice, e.precisionAll100) <= TOL, 'precision[:, :, :, all, 100]');
  }
}
