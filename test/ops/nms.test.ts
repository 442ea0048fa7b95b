/**
 * NMS and batched NMS against torchvision 0.14 (test/fixtures/ops/nms.safetensors, made by
 * scripts/golden/torchvision_nms.py): the kept indices and their order, exactly, on clustered box
 * sets with degenerate boxes and tied scores, float32 and float64, on both sides of batched_nms's
 * switch to NMS per class (4000 coordinates).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Module } from '../../src/module.js';
import type { Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/index.js';
import { fixtureGetter, haveAddon } from '../helpers.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ops', 'nms.safetensors');

if (haveAddon(t)) {
  const { tensors, metadata } = await loadSafetensors(file);
  const get = fixtureGetter(tensors);
  const ids = (x: Tensor) => Array.from(x.data as BigInt64Array, Number);
  const cases = JSON.parse(metadata.cases ?? '[]') as { name: string; thresholds: number[] }[];
  t.ok(cases.length >= 5, 'golden cases present');
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const boxes = get(`${c.name}.boxes`), scores = get(`${c.name}.scores`), idxs = get(`${c.name}.idxs`);
      for (const thr of c.thresholds) {
        const nms = await Module.create('ops.nms', { iou_threshold: thr });
        const [keep] = await nms.forward([boxes, scores]);
        const want = ids(get(`${c.name}.nms${thr}`));
        t.same(ids(keep as Tensor), want, `nms at ${thr}: ${want.length} of ${boxes.shape[0]} kept, in torchvision's order`);
        const batched = await Module.create('ops.batched_nms', { iou_threshold: thr });
        const [bkeep] = await batched.forward([boxes, scores, idxs]);
        const bwant = ids(get(`${c.name}.batched${thr}`));
        t.same(ids(bkeep as Tensor), bwant, `batched_nms at ${thr}: ${bwant.length} kept, in torchvision's order`);
      }
    });
  }
}
