/**
 * `mtpd export`: a torchvision state dict (the golden fixture, torchvision's names) goes through
 * mtpd and comes out as a .pth with exactly torchvision's names and values; architecture and
 * classes come from mtpd's own metadata; safetensors by the extension; errors name the flag.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { readWeights, readSafetensorsHeader } from '../../src/weights/index.js';
import { haveAddon, tempDir } from '../helpers.js';

const fixture = fileURLToPath(new URL('../fixtures/models/retinanet_resnet18_small.weights.safetensors', import.meta.url));

if (haveAddon(t)) {
  t.test("a torchvision state dict exported to .pth is torchvision's, name for name and byte for byte", async (t) => {
    const { exportWeights } = await import('../../src/export.js');
    const dir = tempDir(t);
    const out = join(dir, 'r18.pth');
    const r = await exportWeights({ weights: fixture, out, arch: 'retinanet_resnet18_fpn', numClasses: 5, widthMult: 0.0625 });
    t.same([r.load.missing, r.load.unexpected, r.load.mismatched], [[], [], []]);
    const tv = await readWeights(fixture);
    const back = await readWeights(out);
    t.same([...back.keys()].sort(), [...tv.keys()].sort());
    for (const [k, v] of tv) t.same(Buffer.from(back.get(k)!.data.buffer, back.get(k)!.data.byteOffset, back.get(k)!.data.byteLength), Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength), k);
  });

  t.test("architecture and classes from mtpd's metadata; .safetensors out; predict reads the .pth", async (t) => {
    const { exportWeights } = await import('../../src/export.js');
    const { createDetector } = await import('../../src/detector.js');
    const dir = tempDir(t);
    const det = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 96 });
    const own = join(dir, 'student.safetensors');
    await det.saveWeights(own, { 'mtpd.stage': 'x' });
    const meta = ((await readSafetensorsHeader(own)) as { __metadata__: Record<string, string> }).__metadata__;
    t.match(meta, { 'mtpd.arch': 'retinanet_resnet18_fpn', 'mtpd.num_classes': '3', 'mtpd.width_mult': '0.125', 'mtpd.stage': 'x' });
    const r = await exportWeights({ weights: own, out: join(dir, 'student.pth') });
    t.match(r, { arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, format: 'pth' });
    const r2 = await exportWeights({ weights: join(dir, 'student.pth'), out: join(dir, 'again.safetensors'), arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125 });
    t.equal(r2.format, 'safetensors');
    const a = await det.stateDict();
    const b = await readWeights(join(dir, 'again.safetensors'));
    t.same([...b.keys()], [...a.keys()]);
    const img = { dtype: 'uint8' as const, shape: [64, 80, 3], data: Uint8Array.from({ length: 64 * 80 * 3 }, (_, i) => (i * 37) % 251) };
    const det2 = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125, minSize: 64, maxSize: 96 });
    await det2.loadWeights(join(dir, 'student.pth'));
    const [f1, f2] = [await det.features([img]), await det2.features([img])];
    t.same(f2.p3!.data, f1.p3!.data, 'the .pth gives the same features');
    await t.rejects(exportWeights({ weights: own, out: join(dir, 'x.bin') }), /--out .*x\.bin: the extension must be \.pth, \.pt or \.safetensors/);
    await t.rejects(exportWeights({ weights: fixture, out: join(dir, 'y.pth') }), /--arch is needed: .* does not say its architecture/);
    await t.rejects(exportWeights({ weights: fixture, out: join(dir, 'y.pth'), arch: 'retinanet_resnet18_fpn', numClasses: 4, widthMult: 0.0625 }), /cls_logits/, 'the wrong class count: the load names the tensor');
  });
}

if (haveAddon(t)) {
  t.test('mtpd export on the command line: a line saying what was written; errors name the flag, exit 1', async (t) => {
    const { runCli } = await import('../cli-helper.js');
    const dir = tempDir(t);
    const out = join(dir, 'tv.pth');
    const ok = runCli(['export', '--weights', fixture, '--out', out, '--arch', 'retinanet_resnet18_fpn', '--num-classes', '5', '--width-mult', '0.0625']);
    t.equal(ok.status, 0, ok.stderr);
    t.match(ok.stdout, /tv\.pth: retinanet_resnet18_fpn, 5 classes, width 0\.0625, \d+ tensors \(pth\)/);
    const bad = runCli(['export', '--weights', fixture, '--out', join(dir, 'x.pth')]);
    t.equal(bad.status, 1);
    t.match(bad.stderr, /--arch is needed/);
  });
}
