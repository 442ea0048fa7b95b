/**
 * Numerical parity with torchvision 0.14 on the committed golden fixtures (reduced-width
 * RetinaNet R18 / R50 / ResNeXt-50 / R18 with BatchNorm / Swin-T, made by
 * scripts/golden/torchvision_retinanet.py; Mask R-CNN R18 / R50 and the _v2 layouts (Mask R-CNN
 * R50 / R18, Faster R-CNN R50), made by scripts/golden/torchvision_maskrcnn.py): the torchvision
 * state dict loads strictly by name, and FPN features, the RPN's proposals (two-stage), losses on
 * the same targets (two-stage: with the samplers' draws from the same seed) and final detections
 * (with their pasted masks) agree to 1e-4 relative.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkParity, goldenNames } from '../../src/parity.js';
import { haveAddon } from '../helpers.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

if (haveAddon(t)) {
  const names = goldenNames(dir);
  t.ok(names.length >= 7, 'golden fixtures present');
  t.ok(names.filter((n) => n.startsWith('maskrcnn_')).length >= 2, 'Mask R-CNN fixtures present');
  t.ok(names.filter((n) => n.endsWith('_v2_small')).length >= 3, 'Mask R-CNN and Faster R-CNN _v2 fixtures present');
  for (const name of names) {
    t.test(name, async (t) => {
      const r = await checkParity(dir, name, 1e-4);
      t.same([r.load.missing, r.load.unexpected, r.load.mismatched], [[], [], []], 'torchvision state dict loads by name');
      t.ok(r.load.loaded > 0);
      t.ok(r.checks.some((c) => c.what.startsWith('features.')) && r.checks.some((c) => c.what.startsWith('loss.')));
      if (/rcnn/.test(name)) {
        t.ok(r.checks.some((c) => /^rpn\.\d+\.boxes$/.test(c.what)), 'proposals compared');
        t.ok(r.checks.some((c) => c.what === 'loss.loss_box_reg') && r.checks.some((c) => c.what === 'loss.loss_objectness'), 'two-stage losses compared');
      }
      if (name.startsWith('maskrcnn_')) t.ok(r.checks.some((c) => /^det\.\d+\.masks$/.test(c.what)) && r.checks.some((c) => c.what === 'loss.loss_mask'), 'masks compared');
      for (const c of r.checks) t.ok(c.ok, `${c.what}: rel err ${c.error.toExponential(2)}${c.detail ? ` (${c.detail})` : ''}`);
    });
  }
}
