import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { costHeatmapSpec, lineSpec, renderSvg, writePlot } from '../../src/report/plot.js';
import { tempDir } from '../helpers.js';

t.test('a cost heatmap renders to SVG and PNG', async (t) => {
  const dir = tempDir(t);
  const models = ['student', 'r50', 'swin_t'];
  const costs = { student: { r50: 1.5, swin_t: 2.25 }, r50: { student: 0.5, swin_t: 1.125 }, swin_t: { student: 0.25, r50: 0.75 } };
  const out = await writePlot(join(dir, 'costs'), costHeatmapSpec(models, costs));
  const svg = readFileSync(out.svg, 'utf8');
  t.match(svg, /^<svg/);
  t.match(svg, /swin_t/);
  t.match(svg, /2\.25/, 'cell labels are drawn');
  const png = readFileSync(out.png);
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  t.ok(png.length > 1000);
});

t.test('line charts', async (t) => {
  const svg = await renderSvg(lineSpec([{ x: 0, y: 2, series: 'loss' }, { x: 10, y: 1, series: 'loss' }], { title: 'Loss', x: 'step', y: 'loss' }));
  t.match(svg, /Loss/);
});
