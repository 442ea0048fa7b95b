/**
 * mmdetection's RPN proposals at its two-stage test_cfg (nms_pre 1000, nms 0.7, max_per_img 1000,
 * min_bbox_size 0): models.RegionProposalNetwork with `anchor_style: mmdet` and the rpn_head.*
 * weights of the fixture renamed as `mtpd import` renames them (renameMmdetTwoStage) returns the
 * proposals and scores that mmdetection's own RPNHead._get_bboxes gives on the same P2..P6 maps
 * (scripts/golden/mmdet_rpn_proposals.py), in the same order, at 1e-3 relative (in pixels below 1
 * px). Measured: 6e-6 with OpenBLAS's Haswell kernels, as on the machine that made the golden
 * file, and 1.75e-4 with its SkylakeX (AVX-512) kernels, whose sums round otherwise: the largest
 * differences, 1e-4 to 2e-4 px, are on coordinates under 2 px of thin boxes whose exp(dw) or exp(dh)
 * magnifies the delta's rounding. Scores stay within 6e-7 on both.
 * Under anchor_style mmdet the RPN decodes as mmdetection's delta2bbox; with torchvision's decoding
 * (dw, dh clamped only from above) the same proposals were off by up to 0.23 px (2.3e-1 here) and
 * batch b kept a different number of them.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Module } from '../../src/module.js';
import { tensor, toNumbers, type Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { renameMmdetTwoStage } from '../../src/zoo/mmdet-two-stage.js';
import { haveAddon } from '../helpers.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zoo', 'mmdet_rpn_proposals.safetensors');

/** max |a - b| over max(|b|, 1): boxes are in pixels, scores in 0..1. */
function relErr(a: Tensor, b: Tensor): number {
  const x = toNumbers(a), y = toNumbers(b);
  if (x.length !== y.length) return Infinity;
  let d = 0;
  for (let i = 0; i < y.length; i++) d = Math.max(d, Math.abs((x[i] as number) - (y[i] as number)) / Math.max(Math.abs(y[i] as number), 1));
  return d;
}

if (haveAddon(t)) {
  t.test("the RPN's proposals are mmdetection's", async (t) => {
    const { tensors, metadata } = await loadSafetensors(file);
    const cases = JSON.parse(metadata.cases as string) as Record<string, [number, number, number, number]>;
    t.equal(Object.keys(cases).length, 3);
    const layout = { stages: 1, masks: true, numClasses: 2, classAgnostic: false };
    const sd = new Map<string, Tensor>();
    for (const [k, v] of tensors) {
      if (!k.startsWith('rpn_head.')) continue;
      const r = renameMmdetTwoStage(k, v, layout);
      t.ok(r && r.key.startsWith('rpn.'), `${k} is renamed into rpn.*`);
      if (r) sd.set(r.key.slice(4), r.tensor);
    }
    const rpn = await Module.create('models.RegionProposalNetwork', { num_classes: 2, width_mult: 0.0625, anchor_style: 'mmdet' });
    try {
      const rep = await rpn.loadStateDict(sd, { strict: true });
      t.same([rep.missing, rep.unexpected, rep.mismatched], [[], [], []], 'every rpn_head weight loads');
      await rpn.eval();
      for (const [name, [h, w, bh, bw]] of Object.entries(cases)) {
        const maps = [2, 3, 4, 5, 6].map((l) => tensors.get(`${name}.p${l}`) as Tensor);
        const out = await rpn.forward([...maps, tensor('int64', [1, 2], [h, w]), tensor('int64', [2], [bh, bw])]);
        const want = tensors.get(`${name}.proposals`) as Tensor;
        const got = out[0] as Tensor;
        t.same(got.shape, want.shape, `${name} (${h}x${w} in ${bh}x${bw}): ${want.shape[0]} proposals`);
        const eb = relErr(got, want);
        t.ok(eb <= 1e-3, `${name}: proposals within ${eb.toExponential(2)}`);
        const es = relErr(out[1] as Tensor, tensors.get(`${name}.scores`) as Tensor);
        t.ok(es <= 1e-4, `${name}: scores within ${es.toExponential(2)}`);
      }
    } finally {
      await rpn.dispose();
    }
  });
}
