/**
 * mmdetection's RPN anchors for its two-stage checkpoints (`anchor_style: mmdet`, set by `mtpd
 * import`): the anchors the RPN tiles (models.RegionProposalNetwork's last output) equal
 * mmdetection's AnchorGenerator(strides 4..64, ratios 0.5/1/2, scales [8]) on the FPN grids of
 * several padded batches (scripts/golden/mmdet_rpn_anchors.py), while torchvision's (rounded,
 * stride image // grid) differ from them.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Module } from '../../src/module.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon } from '../helpers.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zoo', 'mmdet_rpn_anchors.safetensors');

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = toNumbers(a), y = toNumbers(b);
  let d = x.length === y.length ? 0 : Infinity;
  for (let i = 0; i < y.length; i++) d = Math.max(d, Math.abs((x[i] as number) - (y[i] as number)));
  return d;
}

if (haveAddon(t)) {
  t.test("the RPN's anchors are mmdetection's", async (t) => {
    const { tensors, metadata } = await loadSafetensors(file);
    const grids = JSON.parse(metadata.grids as string) as Record<string, [number, number][]>;
    t.equal(Object.keys(grids).length, 3);
    const base = { num_classes: 2, width_mult: 0.0625 };
    const mm = await Module.create('models.RegionProposalNetwork', { ...base, anchor_style: 'mmdet' });
    const tv = await Module.create('models.RegionProposalNetwork', base);
    await mm.eval();
    await tv.eval();
    for (const [size, g] of Object.entries(grids)) {
      const [h, w] = size.split('x').map(Number) as [number, number];
      const maps = g.map(([gh, gw]) => tensor('float32', [1, 16, gh, gw], new Float32Array(16 * gh * gw).fill(0.1)));
      const inputs = [...maps, tensor('int64', [1, 2], [h, w]), tensor('int64', [2], [h, w])];
      const want = tensors.get(`anchors.${size}`) as Tensor;
      const got = (await mm.forward(inputs)).at(-1) as Tensor;
      t.same(got.shape, want.shape, `${size}: ${want.shape[0]} anchors`);
      t.ok(maxAbsDiff(got, want) <= 1e-4, `${size}: max |mtpd - mmdetection| ${maxAbsDiff(got, want)}`);
      const theirs = (await tv.forward(inputs)).at(-1) as Tensor;
      t.ok(maxAbsDiff(theirs, want) > 1, `${size}: torchvision's anchors differ by ${maxAbsDiff(theirs, want).toFixed(2)}`);
    }
  });

  t.test('anchor_style is checked by name', async (t) => {
    await t.rejects(Module.create('models.RegionProposalNetwork', { num_classes: 2, width_mult: 0.0625, anchor_style: 'detectron' }), /anchor_style must be "torchvision" or "mmdet", got "detectron"/);
  });
}
