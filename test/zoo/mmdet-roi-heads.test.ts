/**
 * mmdetection's Mask R-CNN (StandardRoIHead) and Cascade Mask R-CNN (CascadeRoIHead) RoI heads,
 * against mmdetection's OWN RoI-head code (scripts/golden/mmdet_roi_heads.py: mmdetection 2.x files
 * at recorded commits, mmcv v1.7.0's RoIAlign / nms wrappers with torchvision's kernels) on the same
 * FPN maps and the same 80 proposals, test_cfg.rcnn as mmdetection's configs (score_thr 0.05, nms
 * 0.5, max_per_img 100, mask_thr_binary 0.5). The weights are the fixture's roi_head.* tensors in
 * mmdetection's names, renamed as `mtpd import` renames them (renameMmdetTwoStage), and the heads are
 * built with the options the importer gives (twoStageOptions): Mask R-CNN is mtpd's cascade with one
 * stage (class-specific regression), the cascade has three (class-agnostic). Compared at 1e-4
 * relative (max |a - b| / max(|b|, 1)): every stage's rois, class scores (mmdetection's background
 * column is the last, mtpd's the first) and deltas, the detections in order, the detected class's
 * mask probabilities before pasting (the cascade's averaged over its three mask heads); the pasted
 * masks pixel for pixel under `mask_paste: mmdet` (what the importer sets; mmdetection's
 * _do_paste_mask). torchvision's pasting (mtpd's default: the mask padded by a cell, resized onto the
 * box's integer pixels) gives other masks from the same probabilities: measured on this fixture,
 * 11080 of 150531 foreground pixels (Mask R-CNN) and 15241 of 54278 (cascade) differ at 0.5.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createDetector } from '../../src/detector.js';
import { Module } from '../../src/module.js';
import { toNumbers, type Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { renameMmdetTwoStage, twoStageLayout, twoStageOptions } from '../../src/zoo/mmdet-two-stage.js';
import { fixtureGetter, haveAddon, randomImage } from '../helpers.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zoo', 'mmdet_roi_heads.safetensors');
const TOL = 1e-4;

/** max |a - b| over max(|b|, 1) (boxes are pixels, scores 0..1); Infinity when the sizes differ. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)) / Math.max(Math.abs(b[i] as number), 1));
  return d;
}

/** The fixture's pasted masks, 8 pixels a byte (first pixel in the high bit), as 0/1 per pixel. */
function unpackBits(x: Tensor): Uint8Array {
  const v = toNumbers(x);
  const out = new Uint8Array(v.length * 8);
  for (let i = 0; i < v.length; i++) for (let b = 0; b < 8; b++) out[i * 8 + b] = ((v[i] as number) >> (7 - b)) & 1;
  return out;
}

/** Pixels where (probabilities >= 0.5) differs from the 0/1 masks, and how many of them lie within `tol` of 0.5. */
function differing(probs: Tensor, bits: Uint8Array, tol = 0): { n: number; atThreshold: number } {
  const p = toNumbers(probs);
  if (p.length !== bits.length) return { n: Infinity, atThreshold: 0 };
  let n = 0, atThreshold = 0;
  for (let i = 0; i < p.length; i++) {
    const v = p[i] as number;
    if ((v >= 0.5 ? 1 : 0) !== bits[i]) {
      n++;
      if (Math.abs(v - 0.5) <= tol) atThreshold++;
    }
  }
  return { n, atThreshold };
}

/** Rows of a (K, n) tensor with their columns picked by `cols`. */
function columns(x: Tensor, cols: number[]): number[] {
  const v = toNumbers(x);
  const n = x.shape[1] as number;
  const out: number[] = [];
  for (let r = 0; r < (x.shape[0] as number); r++) for (const c of cols) out.push(v[r * n + c] as number);
  return out;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

if (haveAddon(t)) {
  for (const [name, stages] of [['mask_rcnn', 1], ['cascade', 3]] as const) {
    t.test(`${name}: mtpd's RoI heads give mmdetection's outputs`, async (t) => {
      const { tensors } = await loadSafetensors(file);
      const get = fixtureGetter(tensors);
      const mm = new Map<string, Tensor>();
      for (const [k, v] of tensors) if (k.startsWith(`${name}.roi_head.`)) mm.set(k.slice(name.length + 1), v);
      const layout = twoStageLayout(mm, name);
      t.same(layout, { stages, masks: true, numClasses: 3, classAgnostic: stages === 3 });
      if (!layout) return;
      const sd = new Map<string, Tensor>();
      const unmapped: string[] = [];
      for (const [k, v] of mm) {
        const r = renameMmdetTwoStage(k, v, layout);
        if (r && r.key.startsWith('roi_heads.')) sd.set(r.key.slice('roi_heads.'.length), r.tensor);
        else unmapped.push(k);
      }
      t.same(unmapped, [], `all ${mm.size} roi_head.* tensors are renamed into roi_heads.*`);
      const config = { ...twoStageOptions(layout), num_classes: 3, width_mult: 0.0625, paste: true };
      const heads = await Module.create('models.CascadeRoIHeads', { ...config, mask_paste: 'mmdet' });
      const tv = await Module.create('models.CascadeRoIHeads', config);
      try {
        const rep = await heads.loadStateDict(sd, { strict: true });
        t.same([rep.missing, rep.unexpected, rep.mismatched], [[], [], []], 'every roi_head weight loads');
        await heads.eval();
        const out = await heads.forward(['p2', 'p3', 'p4', 'p5', 'proposals', 'image_size'].map(get));
        t.equal(out.length, 3 * stages + 5);
        const C = 3;
        for (let s = 0; s < stages; s++) {
          const [rois, logits, deltas] = out.slice(3 * s, 3 * s + 3) as [Tensor, Tensor, Tensor];
          const wantRois = get(`${name}.s${s}.rois`);
          t.same(rois.shape, wantRois.shape, `stage ${s}: ${wantRois.shape[0]} rois`);
          const er = relErr(toNumbers(rois), toNumbers(wantRois));
          // mmdetection: classes then background; mtpd: background then classes
          const ec = relErr(columns(logits, [...range(1, C + 1), 0]), toNumbers(get(`${name}.s${s}.cls_score`)));
          // class-specific: mtpd has 4 background columns in front
          const ed = relErr(layout.classAgnostic ? toNumbers(deltas) : columns(deltas, range(4, 4 * C + 4)), toNumbers(get(`${name}.s${s}.bbox_pred`)));
          t.ok(er <= TOL && ec <= TOL && ed <= TOL, `stage ${s}: rois ${er.toExponential(2)}, class scores ${ec.toExponential(2)}, deltas ${ed.toExponential(2)}`);
        }
        const [boxes, scores, labels, masks, pasted] = out.slice(3 * stages) as [Tensor, Tensor, Tensor, Tensor, Tensor];
        const n = get(`${name}.det.scores`).shape[0] as number;
        t.ok(n > 50, `mmdetection keeps ${n} detections`);
        t.equal(scores.shape[0], n, 'as many detections as mmdetection');
        if (scores.shape[0] !== n) return;
        const es = relErr(toNumbers(scores), toNumbers(get(`${name}.det.scores`)));
        const eb = relErr(toNumbers(boxes), toNumbers(get(`${name}.det.boxes`)));
        t.ok(es <= TOL, `scores in mmdetection's order: rel err ${es.toExponential(2)}`);
        t.ok(eb <= TOL, `boxes: rel err ${eb.toExponential(2)}`);
        t.same(toNumbers(labels), toNumbers(get(`${name}.det.labels`)), 'labels');
        t.same(masks.shape, [n, 1, 28, 28]);
        const em = relErr(toNumbers(masks), toNumbers(get(`${name}.det.mask_probs`)));
        t.ok(em <= TOL, `mask probabilities before pasting: rel err ${em.toExponential(2)}`);

        const [h, w] = toNumbers(get('image_size'));
        t.same(pasted.shape, [n, 1, h, w], 'masks pasted into the image');
        const want = unpackBits(get(`${name}.det.masks`));
        let fg = 0;
        for (const b of want) fg += b;
        t.ok(fg > 1000, `mmdetection's masks have ${fg} foreground pixels`);
        // a pixel may flip only where the probability is 0.5 within the 1e-4 tolerance of the probabilities
        const dm = differing(pasted, want, TOL);
        t.ok(dm.n === dm.atThreshold && dm.n <= 2, `mask_paste mmdet: mmdetection's masks, pixel for pixel (${dm.n} differ, ${dm.atThreshold} of them within ${TOL} of 0.5)`);
        await tv.loadStateDict(sd, { strict: true });
        await tv.eval();
        const tvOut = await tv.forward(['p2', 'p3', 'p4', 'p5', 'proposals', 'image_size'].map(get));
        const d = differing(tvOut[3 * stages + 4] as Tensor, want).n;
        t.ok(d > 0.05 * fg, `torchvision's pasting of the same probabilities: ${d} pixels differ (of ${fg} foreground)`);
      } finally {
        await heads.dispose();
        await tv.dispose();
      }
    });
  }

  t.test('mask_paste: the option, its errors and the config it writes', async (t) => {
    const base = { arch: 'cascade_maskrcnn_resnet18_fpn', numClasses: 2, widthMult: 0.0625 };
    const mm = await createDetector({ ...base, options: { mask_paste: 'mmdet' } });
    t.equal(mm.nativeConfig().mask_paste, 'mmdet');
    await mm.eval();
    const [d] = await mm.predict([randomImage(60, 80, 5)]);
    const n = d?.scores.shape[0] as number;
    t.ok(n > 0, `the detector pastes ${n} masks the mmdet way`);
    t.same(d?.masks?.shape, [n, 1, 60, 80], 'into the original pixels');
    t.ok(toNumbers(d?.masks as Tensor).every((v) => v >= 0 && v <= 1), 'probabilities');
    const tv = await createDetector(base);
    t.notOk('mask_paste' in tv.nativeConfig(), "torchvision's (the default) is not written: configs stay as they were");
    await t.rejects(createDetector({ ...base, options: { mask_paste: 'opencv' } }), /mask_paste must be "torchvision" or "mmdet", got "opencv"/);
    await t.rejects(Module.create('models.CascadeRoIHeads', { num_classes: 2, width_mult: 0.0625, masks: false, paste: true }), /paste needs masks/);
  });
}
