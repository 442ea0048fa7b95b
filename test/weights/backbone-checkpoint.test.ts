/**
 * Backbone checkpoints (student.backbone / teachers[i].backbone): seeded small checkpoints in
 * torchvision's ResNet and Swin layouts, the official Swin / timm layout and an mmdetection
 * detector's Swin backbone (test/fixtures/weights/backbone_*, made by
 * scripts/golden/backbone_checkpoints.py) load into the backbone only, every tensor where
 * torchvision's names put it, with what was not used reported.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { readWeights } from '../../src/weights/index.js';
import { backboneTensors, detectBackboneLayout, unfoldToConcatOrder } from '../../src/weights/backbone-checkpoint.js';
import { tensor } from '../../src/tensor.js';
import { haveAddon } from '../helpers.js';

const fx = (name: string) => new URL(`../fixtures/weights/${name}`, import.meta.url).pathname;
const expected = JSON.parse(readFileSync(fx('backbone_expected.json'), 'utf8')) as {
  detector: Record<string, { arch: string; width_mult: number; layers?: number[] }>;
  tensors: Record<'resnet18' | 'swin', Record<string, number>>;
};

/** The golden script's checksum: sum_i t_i cos(i + 1), in double. */
function checksum(data: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += (data[i] as number) * Math.cos(i + 1);
  return s;
}

const cases = [
  { file: 'backbone_resnet18_tv.pth', layout: 'torchvision-resnet', family: 'resnet18' as const, unused: /^fc\./ },
  { file: 'backbone_swin_tv.pth', layout: 'torchvision-swin', family: 'swin' as const, unused: /^(norm|head)\./ },
  { file: 'backbone_swin_official.pth', layout: 'swin', family: 'swin' as const, unused: /^(norm|head)\.|relative_position_index$/ },
  { file: 'backbone_swin_mmdet.pth', layout: 'mmdet-swin', family: 'swin' as const, unused: /^(backbone\.norm\d|neck\.|bbox_head\.)|relative_position_index$/ },
];

for (const c of cases) {
  t.test(`${c.file}: the ${c.layout} layout, renamed onto torchvision's backbone names`, async (t) => {
    const sd = await readWeights(fx(c.file));
    const r = backboneTensors(sd, c.file);
    t.equal(r.layout, c.layout);
    const want = expected.tensors[c.family];
    t.same([...r.tensors.keys()].filter((k) => !/(num_batches_tracked|relative_position_index)$/.test(k)).sort(), Object.keys(want).sort());
    for (const [k, v] of r.tensors) {
      if (want[k] === undefined) continue;
      const got = checksum(v.data as Float32Array);
      t.ok(Math.abs(got - want[k]) <= 1e-6 * Math.max(1, Math.abs(want[k])), `${k}: ${got} vs ${want[k]}`);
    }
    t.ok(r.unused.length > 0 && r.unused.every((k) => c.unused.test(k)), `unused: ${r.unused.join(', ')}`);
  });
}

t.test('unknown layouts are named; the unfold reorder is a permutation', async (t) => {
  t.throws(() => detectBackboneLayout(['foo.weight', 'bar.bias'], 'x.pth'), /x\.pth: not a backbone checkpoint of a known layout .* its first keys: foo\.weight, bar\.bias/);
  t.equal(detectBackboneLayout(['backbone.conv1.weight', 'backbone.layer1.0.conv1.weight', 'neck.x']), 'mmdet-resnet');
  // C = 2: unfold index c*4 + i*2 + j -> concat index (i + 2j)*2 + c
  const u = tensor('float32', [8], [0, 1, 2, 3, 4, 5, 6, 7]);
  t.same(Array.from(unfoldToConcatOrder(u, 'w').data as Float32Array), [0, 4, 2, 6, 1, 5, 3, 7]);
});

if (haveAddon(t)) {
  t.test('a detector built with backbone: only the backbone changes, the rest keeps its initialization', async (t) => {
    const { createDetector } = await import('../../src/detector.js');
    const { loadBackbone } = await import('../../src/train/models.js');
    for (const [file, d] of [['backbone_resnet18_tv.pth', expected.detector.resnet18_tv!], ['backbone_swin_mmdet.pth', expected.detector.swin!]] as const) {
      const det = await createDetector({ arch: d.arch, numClasses: 3, widthMult: d.width_mult, normLayer: 'bn', trainableLayers: 5, ...(d.layers ? { options: { layers: d.layers } } : {}) });
      const before = await det.stateDict();
      const r = await loadBackbone(det, fx(file), 'student');
      const after = await det.stateDict();
      const want = expected.tensors[file.includes('swin') ? 'swin' : 'resnet18'];
      for (const [k, v] of after) {
        if (k.startsWith('backbone.body.') && want[k] !== undefined) {
          t.ok(Math.abs(checksum(v.data as Float32Array) - want[k]) <= 1e-6 * Math.max(1, Math.abs(want[k])), `${file} ${k} loaded`);
        } else if (!k.startsWith('backbone.body.')) {
          t.same(v.data, before.get(k)!.data, `${file} ${k} untouched`);
        }
      }
      t.ok(r.loaded >= Object.keys(want).length);
    }
    const wrong = await createDetector({ arch: 'retinanet_resnet18_fpn', numClasses: 3, widthMult: 0.125 });
    await t.rejects(loadBackbone(wrong, fx('backbone_resnet18_tv.pth'), 'student'), /student\.backbone .*backbone_resnet18_tv\.pth: \d+ tensor\(s\) of another shape than the backbone's/);
    const r50 = await createDetector({ arch: 'retinanet_resnet50_fpn', numClasses: 3, widthMult: 0.0625 });
    await t.rejects(loadBackbone(r50, fx('backbone_resnet18_tv.pth'), 'student'), /a torchvision-resnet checkpoint that does not fit this backbone: missing backbone\.body\.layer1\.0\.conv3\.weight/);
  });
}
