/**
 * Parity with mmdetection's own RetinaNet code (scripts/golden/mmdet_retinanet.py, test/fixtures/zoo):
 * the seeded R50 and Swin-T checkpoints in mmdetection's layout ({meta: {CLASSES}, state_dict})
 * convert with `mtpd import` (nothing missing or unexpected), and the converted detectors give
 * mmdetection's FPN features, raw head outputs and final detections (test_cfg nms_pre 1000,
 * score_thr 0.05, nms 0.5, max_per_img 100, boxes in original pixels) to 1e-4 relative; the test
 * pipeline's resized sizes (mmcv.rescale_size, img_scale (1333, 800)) are mmdetection's exactly.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { haveAddon, tempDir } from '../helpers.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zoo');
const TOL = 1e-4;

const MODELS = [
  { name: 'mmdet_retinanet_r50_small', arch: 'retinanet_resnet50_fpn' },
  { name: 'mmdet_retinanet_swin_t_small', arch: 'retinanet_swin_t_fpn' },
];

if (haveAddon(t)) {
  for (const { name, arch } of MODELS) {
    t.test(`${name}: mmdetection's features, head outputs and detections`, async (t) => {
      const { importMmdet } = await import('../../src/zoo/import.js');
      const { createDetector } = await import('../../src/detector.js');
      const { loadSafetensors } = await import('../../src/weights/index.js');
      const { alignTiedDetections, relErr } = await import('../../src/parity.js');
      const { toNumbers } = await import('../../src/tensor.js');
      const io = await loadSafetensors(join(dir, `${name}.io.safetensors`));
      const meta = io.metadata ?? {};
      const get = (k: string) => {
        const v = io.tensors.get(k);
        if (!v) throw new Error(`${name}: no ${k} in the fixture`);
        return v;
      };
      const out = join(tempDir(t), `${name}.safetensors`);
      const r = await importMmdet(join(dir, `${name}.pth`), out);
      t.match(r, { arch, numClasses: 3, classNames: ['cat', 'dog', 'bird'], classes: 'dataset' });
      t.same([r.missing, r.unexpected], [[], []], 'nothing missing or unexpected');
      t.match(r.options, { extra_blocks: 'c5_norelu', anchor_style: 'mmdet', box_coder: 'mmdet', resize_style: 'mmdet', width_mult: 0.125 });
      if (arch.includes('swin')) t.equal(r.options.swin_style, 'mmdet');
      t.ok(r.ignored > 0, 'bookkeeping tensors skipped');

      const det = await createDetector({ arch, numClasses: 3, minSize: Number(meta.min_size), maxSize: Number(meta.max_size), options: r.options });
      const load = await det.loadWeights(out);
      t.same([load.missing, load.unexpected], [[], []], 'the converted file loads strictly');
      await det.eval();
      const images = [get('image.0'), get('image.1')];
      const res = await det.run(images, null, { features: true, detections: true });
      for (const p of ['p3', 'p4', 'p5', 'p6', 'p7']) {
        const e = relErr(res.features[p]!, get(`features.${p}`));
        t.ok(e <= TOL, `features.${p}: rel err ${e.toExponential(2)}`);
      }
      t.same(det.evalImageSizes([[100, 140], [120, 96]]), [0, 1].map((i) => toNumbers(get(`meta.${i}.img_shape`))), "mmdetection's resized sizes");
      for (let i = 0; i < 2; i++) {
        // near-tied scores (within 1e-6) may come in either order: paired up before comparing
        const d = alignTiedDetections(res.detections[i]!, { boxes: get(`det.${i}.boxes`), scores: get(`det.${i}.scores`), labels: get(`det.${i}.labels`) });
        const n = get(`det.${i}.scores`).shape[0] as number;
        t.ok(n > 10, `image ${i}: mmdetection keeps ${n} detections`);
        t.equal(d.scores.shape[0], n, `image ${i}: as many detections as mmdetection`);
        if (d.scores.shape[0] !== n) continue;
        const es = relErr(d.scores, get(`det.${i}.scores`));
        const eb = relErr(d.boxes, get(`det.${i}.boxes`));
        t.ok(es <= TOL, `det.${i}.scores: rel err ${es.toExponential(2)}`);
        t.ok(eb <= TOL, `det.${i}.boxes: rel err ${eb.toExponential(2)}`);
        t.same(toNumbers(d.labels), toNumbers(get(`det.${i}.labels`)), `det.${i}.labels`);
      }

      // Raw head outputs: mmdetection's RetinaHead (4 x (conv3x3 + ReLU), retina_cls / retina_reg)
      // on mmdetection's own FPN maps, with the converted tensors under mtpd's names.
      const { Module } = await import('../../src/module.js');
      const sd = await det.stateDict();
      const conv = async (prefix: string, x: ReturnType<typeof get>, relu: boolean) => {
        const w = sd.get(`${prefix}.weight`)!;
        const m = await Module.create('nn.Conv2d', { in_channels: w.shape[1], out_channels: w.shape[0], kernel_size: 3, padding: 1 });
        await m.loadStateDict(new Map([['weight', w], ['bias', sd.get(`${prefix}.bias`)!]]));
        const [y] = await m.forward([x]);
        if (relu) for (let j = 0; j < y!.data.length; j++) (y!.data as Float32Array)[j] = Math.max(0, (y!.data as Float32Array)[j]!);
        return y!;
      };
      for (let l = 0; l < 5; l++) {
        const f = get(`features.p${l + 3}`);
        let c = f;
        let g = f;
        for (let k = 0; k < 4; k++) {
          c = await conv(`head.classification_head.conv.${k}.0`, c, true);
          g = await conv(`head.regression_head.conv.${k}.0`, g, true);
        }
        const cls = await conv('head.classification_head.cls_logits', c, false);
        const reg = await conv('head.regression_head.bbox_reg', g, false);
        const ec = relErr(cls, get(`head.cls.${l}`));
        const er = relErr(reg, get(`head.reg.${l}`));
        t.ok(ec <= TOL && er <= TOL, `head level ${l}: cls rel err ${ec.toExponential(2)}, reg ${er.toExponential(2)}`);
      }
    });
  }

  t.test("mmdetection's test-pipeline resize (mmcv.rescale_size, img_scale (1333, 800))", async (t) => {
    const { createDetector } = await import('../../src/detector.js');
    const golden = JSON.parse(readFileSync(join(dir, 'mmdet_resize_sizes.json'), 'utf8')) as { sizes: { shape: [number, number]; resized: [number, number] }[] };
    const base = { arch: 'retinanet_resnet18_fpn', numClasses: 2, widthMult: 0.0625, minSize: 800, maxSize: 1333 };
    const mm = await createDetector({ ...base, options: { resize_style: 'mmdet' } });
    const tv = await createDetector(base);
    const shapes = golden.sizes.map((s) => s.shape);
    t.same(mm.evalImageSizes(shapes), golden.sizes.map((s) => s.resized));
    const differ = tv.evalImageSizes(shapes).filter((s, i) => s.join() !== golden.sizes[i]!.resized.join()).length;
    t.ok(differ > 0, `torchvision's rule (floor) gives another size for ${differ} of ${shapes.length} shapes`);
    await t.rejects(createDetector({ ...base, options: { resize_style: 'opencv' } }), /resize_style must be "torchvision" or "mmdet"/);
  });
}
