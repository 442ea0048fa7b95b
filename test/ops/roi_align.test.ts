/**
 * RoIAlign and MultiScaleRoIAlign against torchvision 0.14 (test/fixtures/ops/roi_align.safetensors,
 * made by scripts/golden/torchvision_roi_align.py): outputs and the gradients of the maps, on boxes
 * at the map border, outside it, under one cell and degenerate, legacy and aligned, fixed and adaptive
 * sampling grids, over FPN levels.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Module } from '../../src/module.js';
import { relErr } from '../../src/parity.js';
import type { Tensor } from '../../src/tensor.js';
import { loadSafetensors } from '../../src/weights/index.js';
import { fixtureGetter, haveAddon } from '../helpers.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ops', 'roi_align.safetensors');

interface Case {
  name: string;
  kind: 'roi_align' | 'multiscale';
  output_size: number;
  spatial_scale?: number;
  sampling_ratio: number;
  aligned: boolean;
  levels?: number;
}

if (haveAddon(t)) {
  const { tensors, metadata } = await loadSafetensors(file);
  const get = fixtureGetter(tensors);
  const cases = JSON.parse(metadata.cases ?? '[]') as Case[];
  t.ok(cases.length >= 9, 'golden cases present');
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const p = c.name;
      if (c.kind === 'roi_align') {
        const opts = { output_size: c.output_size, spatial_scale: c.spatial_scale, sampling_ratio: c.sampling_ratio, aligned: c.aligned };
        const fwd = await Module.create('ops.roi_align', opts);
        const [y] = await fwd.forward([get(`${p}.input`), get(`${p}.rois`)]);
        const e = relErr(y as Tensor, get(`${p}.output`));
        t.ok(e <= 1e-5, `output rel err ${e.toExponential(2)}`);
        const bwd = await Module.create('ops.roi_align', { ...opts, backward: true });
        const [y2, gx] = await bwd.forward([get(`${p}.input`), get(`${p}.rois`), get(`${p}.grad_output`)]);
        t.ok(relErr(y2 as Tensor, get(`${p}.output`)) <= 1e-5, 'output of the backward pass');
        const eg = relErr(gx as Tensor, get(`${p}.grad_input`));
        t.ok(eg <= 1e-5, `grad_input rel err ${eg.toExponential(2)}`);
      } else {
        const levels = c.levels ?? 4;
        const maps = Array.from({ length: levels }, (_, i) => get(`${p}.map.${i}`));
        const opts = { levels, output_size: c.output_size, sampling_ratio: c.sampling_ratio, aligned: c.aligned };
        const mod = await Module.create('ops.MultiScaleRoIAlign', { ...opts, backward: true });
        const out = await mod.forward([...maps, get(`${p}.rois`), get(`${p}.image_sizes`), get(`${p}.grad_output`)]);
        const e = relErr(out[0] as Tensor, get(`${p}.output`));
        t.ok(e <= 1e-5, `output rel err ${e.toExponential(2)}`);
        for (let i = 0; i < levels; i++) {
          const eg = relErr(out[i + 1] as Tensor, get(`${p}.grad_map.${i}`));
          t.ok(eg <= 1e-5, `grad of level ${i} rel err ${eg.toExponential(2)}`);
        }
        const plain = await Module.create('ops.MultiScaleRoIAlign', opts);
        const [y] = await plain.forward([...maps, get(`${p}.rois`), get(`${p}.image_sizes`)]);
        t.ok(relErr(y as Tensor, get(`${p}.output`)) <= 1e-5, 'forward alone');
      }
    });
  }

  t.test('errors name the argument', async (t) => {
    await t.rejects(Module.create('ops.roi_align', { output_size: 0 }), /output_size/);
    const m = await Module.create('ops.roi_align', {});
    const x = get('s7_scale1_legacy.input');
    await t.rejects(m.forward([x, get('s7_scale1_legacy.grad_output')]), /rois/);
  });
}
