/**
 * Plots without a browser: a Vega-Lite spec is compiled to Vega, rendered to SVG by vega's
 * headless view, and rasterized to PNG by resvg. Both files are written atomically.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { writeFileAtomic } from '../weights/atomic.js';
import type { LossPoint } from './losses.js';

export type VegaLiteSpec = vl.TopLevelSpec;

/**
 * Text width for layout. Without a canvas, vega estimates 0.8 em per character, about 1.5x what
 * the fonts resvg draws with (DejaVu Sans and the like: 0.52-0.55 em for mixed text), so titles
 * and legends pushed the plots apart and left a wide empty margin on the right. 0.6 em keeps a
 * little slack so that no text overlaps.
 */
const EM_PER_CHAR = 0.6;

function textWidth(item: { fontSize?: number | string; limit?: number }, text: unknown): number {
  const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11;
  const s = text == null ? '' : String(text).trim();
  const w = Math.ceil(EM_PER_CHAR * s.length * size);
  // Truncated text (a label limit) is never wider than its limit.
  return item.limit != null && item.limit > 0 ? Math.min(w, item.limit) : w;
}
// vega re-exports vega-scenegraph's textMetrics; its typings leave it out.
(vega as unknown as { textMetrics: { width: typeof textWidth } }).textMetrics.width = textWidth;

export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 2): Uint8Array {
  const r = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: { loadSystemFonts: true } });
  return r.render().asPng();
}

/** Writes `<base>.svg` and `<base>.png`; returns their paths. */
export async function writePlot(base: string, spec: VegaLiteSpec): Promise<{ svg: string; png: string }> {
  const svg = await renderSvg(spec);
  const png = svgToPng(svg);
  await writeFileAtomic(`${base}.svg`, [Buffer.from(svg, 'utf8')]);
  await writeFileAtomic(`${base}.png`, [png]);
  return { svg: `${base}.svg`, png: `${base}.png` };
}

/** A cost-matrix heatmap: rows are sources A, columns targets B, cells d(A -> B). */
export function costHeatmapSpec(models: string[], costs: Record<string, Record<string, number>>, title = 'Adaptation cost d(A -> B)'): VegaLiteSpec {
  const values: { from: string; to: string; cost: number | null; label: string; dark: boolean }[] = [];
  const all = models.flatMap((a) => models.filter((b) => b !== a).map((b) => costs[a]?.[b])).filter((c): c is number => c !== undefined);
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  for (const a of models)
    for (const b of models) {
      const c = a === b ? null : (costs[a]?.[b] ?? null);
      // Dark cells (high cost in the reversed viridis scheme) get white labels.
      const dark = c !== null && hi > lo && (c - lo) / (hi - lo) > 0.55;
      values.push({ from: a, to: b, cost: c, label: c === null ? '' : c.toPrecision(3), dark });
    }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    width: Math.max(160, 60 * models.length),
    height: Math.max(160, 60 * models.length),
    encoding: {
      x: { field: 'to', type: 'nominal', sort: models, title: 'target B (teacher)' },
      y: { field: 'from', type: 'nominal', sort: models, title: 'source A' },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'cost', type: 'quantitative', scale: { scheme: 'viridis', reverse: true }, title: 'd(A->B)' } } },
      {
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          text: { field: 'label', type: 'nominal' },
          color: { condition: { test: 'datum.dark', value: 'white' }, value: 'black' },
        },
      },
    ],
  } as VegaLiteSpec;
}

/** Line chart of one or more series over steps (loss curves, AP per stage). */
export function lineSpec(points: { x: number; y: number; series: string }[], opts: { title: string; x: string; y: string; logY?: boolean; integerX?: boolean }): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    width: 520,
    height: 260,
    data: { values: points },
    mark: { type: 'line', point: points.length < 60 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.x, ...(opts.integerX ? { axis: { tickMinStep: 1, format: 'd' } } : {}) },
      y: { field: 'y', type: 'quantitative', title: opts.y, scale: opts.logY ? { type: 'log' } : { zero: false } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  } as VegaLiteSpec;
}

/**
 * The run's loss plot, one panel per kind of loss (splitLosses in losses.ts): the detection loss
 * of every student on one axis (the teacher budget in steps), the distillation loss of the
 * distilling students, and the total loss of the models trained from scratch.
 */
export function lossPanelsSpec(parts: { detection: LossPoint[]; distillation: LossPoint[]; scratch: LossPoint[]; window: number }): VegaLiteSpec {
  const panel = (points: LossPoint[], title: string, x: string, y: string, logY: boolean) => ({
    title,
    width: 520,
    height: 220,
    data: { values: points },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: x },
      y: { field: 'y', type: 'quantitative', title: y, scale: logY ? { type: 'log' } : { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 360 } },
    },
  });
  const avg = parts.window > 1 ? ` (moving average over ${parts.window} steps)` : '';
  const panels = [
    ...(parts.detection.length ? [panel(parts.detection, `Detection loss (classification + box regression) of every student${avg}`, 'teacher budget (steps; progressive stages one after another)', 'detection loss', false)] : []),
    ...(parts.distillation.length ? [panel(parts.distillation, `Distillation loss${avg}`, 'teacher budget (steps)', 'distillation loss', true)] : []),
    ...(parts.scratch.length ? [panel(parts.scratch, `Training from scratch: total loss${avg}`, 'step', 'loss', true)] : []),
  ];
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', vconcat: panels } as VegaLiteSpec;
}
