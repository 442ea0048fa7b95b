/** `mtpd predict`: decodes real image files with sharp, prints COCO-style JSON in original pixels. */
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { createDetector } from '../../src/detector.js';
import { predictFiles } from '../../src/predict.js';
import { runCli } from '../cli-helper.js';
import { haveAddon, tempDir } from '../helpers.js';

if (haveAddon(t)) {
  t.test('predict on PNG/JPEG files, JSON output in original pixels', async (t) => {
    const dir = tempDir(t);
    // A narrow model whose head is biased to fire, so there is something to print.
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125 });
    const sd = await det.stateDict();
    const bias = sd.get('head.classification_head.cls_logits.bias')!;
    (bias.data as Float32Array).fill(1.0);
    await det.loadStateDict(sd);
    const weights = join(dir, 'w.safetensors');
    await det.saveWeights(weights);

    const png = join(dir, 'a.png');
    const jpg = join(dir, 'b.jpg');
    await sharp({ create: { width: 150, height: 100, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toFile(png);
    await sharp({ create: { width: 90, height: 120, channels: 4, background: { r: 10, g: 90, b: 200, alpha: 1 } } }).jpeg().toFile(jpg);

    const r = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', '--weights', weights, '--width-mult', '0.125',
      '--min-size', '96', '--max-size', '160', '--score-thresh', '0.5', '--json', png, jpg]);
    t.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { file: string; bbox: number[]; score: number; category_id: number }[];
    t.ok(Array.isArray(out) && out.length > 0, `${out.length} detections`);
    const bad = out.filter((d) => {
      const [x, y, w, h] = d.bbox as [number, number, number, number];
      const [W, H] = d.file === png ? [150, 100] : [90, 120];
      const inside = x >= 0 && y >= 0 && w >= 0 && h >= 0 && x + w <= W + 1e-3 && y + h <= H + 1e-3;
      const ok = (d.file === png || d.file === jpg) && inside && d.score >= 0.5 && d.score <= 1;
      return !(ok && Number.isInteger(d.category_id) && d.category_id >= 0 && d.category_id < 3);
    });
    t.same(bad, [], 'every detection: known file, bbox [x, y, w, h] inside the original image, score >= 0.5, label 0..2');
    t.ok(out.some((d) => d.file === png) && out.some((d) => d.file === jpg), 'both images');
    // Same numbers through the library
    const lib = await predictFiles({ arch: 'retinanet_resnet18_fpn', numClasses: 3, weights, files: [png, jpg], widthMult: 0.125, minSize: 96, maxSize: 160, scoreThresh: 0.5 });
    t.equal(lib.length, out.length);
    t.ok(Math.abs((lib[0]?.score ?? 0) - (out[0]?.score ?? 1)) < 1e-6);

    const text = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', '--weights', weights, '--width-mult', '0.125',
      '--min-size', '96', '--max-size', '160', '--score-thresh', '0.5', png]);
    t.equal(text.status, 0, text.stderr);
    t.match(text.stdout, /a\.png: \d+ detections?/);
  });

  t.test('predict errors name the file or option', async (t) => {
    const dir = tempDir(t);
    const bad = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '0', '--weights', 'x', 'y.png']);
    t.not(bad.status, 0);
    t.match(bad.stderr, /--num-classes must be a positive integer/);
    const missing = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', '--weights', join(dir, 'nope.safetensors'), 'y.png']);
    t.not(missing.status, 0);
    t.match(missing.stderr, /nope\.safetensors: cannot read/);
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125 });
    const weights = join(dir, 'w.safetensors');
    await det.saveWeights(weights);
    const wrong = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '5', '--width-mult', '0.125', '--weights', weights, 'y.png']);
    t.not(wrong.status, 0);
    t.match(wrong.stderr, /misshaped key\(s\): head\.classification_head\.cls_logits\.weight/);
    const notImage = join(dir, 'not.png');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(notImage, 'hello');
    const undecodable = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', '--width-mult', '0.125', '--weights', weights, notImage]);
    t.not(undecodable.status, 0);
    t.match(undecodable.stderr, /not\.png: cannot decode image/);
    // NaN went to the addon as null, i.e. "not given": a full-width model and a misshaped-keys error
    for (const v of ['NaN', 'abc', '-1']) {
      const nan = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', '--width-mult', v, '--weights', weights, notImage]);
      t.equal(nan.status, 2, `--width-mult ${v}`);
      t.match(nan.stderr, new RegExp(`--width-mult must be a positive number, got ${v === 'abc' ? 'NaN' : v}`));
      const exp = runCli(['export', '--weights', weights, '--out', join(dir, 'x.pth'), '--width-mult', v]);
      t.equal(exp.status, 2, `export --width-mult ${v}`);
      t.match(exp.stderr, /--width-mult must be a positive number/);
    }
    await t.rejects(createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: Number.NaN }), { code: 'ERR_MTPD_ARGUMENT', message: /detector retinanet_resnet18_fpn: width_mult must be a finite number, got NaN/ });
    await t.rejects(createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, options: { score_thresh: Number.POSITIVE_INFINITY } }), { code: 'ERR_MTPD_ARGUMENT', message: /score_thresh must be a finite number, got Infinity/ });
    // an image that resizes to nothing: the native error counts batch images, the CLI names the file
    const flat = join(dir, 'flat.png');
    await sharp({ create: { width: 20000, height: 1, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toFile(flat);
    const nothing = runCli(['predict', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', '--width-mult', '0.125', '--weights', weights, '--min-size', '64', '--max-size', '64', flat]);
    t.equal(nothing.status, 1);
    t.match(nothing.stderr, /flat\.png: images\[0\] of size 1x20000 resizes to nothing/);
  });
}
