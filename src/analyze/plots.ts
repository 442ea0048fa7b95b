/**
 * The analysis figures as Vega-Lite specs (drawn by src/report/plot.ts's writePlot: SVG and PNG):
 * Figure 5a/b (validation AP and training detection loss per stage), the 1-D slices of both
 * students on one axis, the 2-D slices as contour plots side by side on one colour scale, and the
 * sharpness bars.
 */
import type { VegaLiteSpec } from '../report/plot.js';
import { isolines } from './contour.js';
import type { Landscape1D, Landscape2D } from './landscape.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

export interface StagePoint {
  /** Teacher budgets (stage schedules) spent. */
  budget: number;
  series: string;
  model: string;
  ap: number;
  trainLoss: number;
}

/** Figure 5a/b: validation AP and the eval-mode training detection loss against the budget. */
export function generalizationSpec(points: StagePoint[], subset: number): VegaLiteSpec {
  const panel = (field: 'ap' | 'trainLoss', title: string, y: string) => ({
    title,
    width: 320,
    height: 240,
    data: { values: points.map((p) => ({ ...p, ap: 100 * p.ap })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'budget', type: 'quantitative', title: 'teacher budget (stage schedules)', axis: { tickMinStep: 1, format: 'd' } },
      y: { field, type: 'quantitative', title: y, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 300 } },
      tooltip: [{ field: 'model' }, { field }],
    },
  });
  return {
    $schema: SCHEMA,
    hconcat: [
      panel('ap', 'Validation AP', 'AP (%)'),
      panel('trainLoss', `Training detection loss (eval mode, ${subset} training images)`, 'detection loss'),
    ],
  } as VegaLiteSpec;
}

/** 1-D slices L(θ0 + α d) of both students on one axis. */
export function landscape1dSpec(lines: { model: string; label: string; line: Landscape1D }[]): VegaLiteSpec {
  const values = lines.flatMap((l) => l.line.alphas.map((a, i) => ({ alpha: a, loss: l.line.losses[i] as number, series: l.label })));
  return {
    $schema: SCHEMA,
    title: `Detection loss along a filter-normalized random direction (seed ${lines[0]?.line.seed ?? '?'}, same for both)`,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'alpha', type: 'quantitative', title: 'α (θ = θ0 + α d)' },
      y: { field: 'loss', type: 'quantitative', title: 'training detection loss', scale: { type: 'log' } },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 360 } },
    },
  } as VegaLiteSpec;
}

/** Contour levels shared by both panels: evenly spaced in log between the smallest and largest loss. */
export function contourLevels(planes: Landscape2D[], count = 12): number[] {
  const all = planes.flatMap((p) => p.losses.flat()).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.log(Math.min(...all));
  const hi = Math.log(Math.max(...all));
  if (!(hi > lo)) return [];
  return Array.from({ length: count }, (_, k) => Math.exp(lo + ((k + 1) * (hi - lo)) / (count + 1)));
}

/** 2-D slices as heat maps with iso-lines, one panel per student, one colour scale. */
export function landscape2dSpec(planes: { label: string; plane: Landscape2D }[]): VegaLiteSpec {
  const levels = contourLevels(planes.map((p) => p.plane));
  const all = planes.flatMap((p) => p.plane.losses.flat());
  const domain = [Math.min(...all), Math.max(...all)];
  const panel = ({ label, plane }: { label: string; plane: Landscape2D }) => {
    const da = plane.alphas.length > 1 ? ((plane.alphas[1] as number) - (plane.alphas[0] as number)) / 2 : 0.5;
    const db = plane.betas.length > 1 ? ((plane.betas[1] as number) - (plane.betas[0] as number)) / 2 : 0.5;
    const cells = plane.betas.flatMap((b, j) => plane.alphas.map((a, i) => ({ a0: a - da, a1: a + da, b0: b - db, b1: b + db, loss: (plane.losses[j] as number[])[i] as number })));
    const segs = isolines(plane.alphas, plane.betas, plane.losses, levels);
    return {
      title: label,
      width: 300,
      height: 300,
      layer: [
        {
          data: { values: cells },
          mark: 'rect',
          encoding: {
            x: { field: 'a0', type: 'quantitative', title: 'α (direction 1)', scale: { nice: false } },
            x2: { field: 'a1' },
            y: { field: 'b0', type: 'quantitative', title: 'β (direction 2)', scale: { nice: false } },
            y2: { field: 'b1' },
            color: { field: 'loss', type: 'quantitative', title: 'detection loss', scale: { type: 'log', scheme: 'viridis', domain } },
          },
        },
        {
          data: { values: segs },
          mark: { type: 'rule', color: 'white', strokeWidth: 1 },
          encoding: { x: { field: 'x1', type: 'quantitative' }, y: { field: 'y1', type: 'quantitative' }, x2: { field: 'x2' }, y2: { field: 'y2' } },
        },
        {
          data: { values: [{ a: 0, b: 0 }] },
          mark: { type: 'point', shape: 'cross', color: 'red', size: 80, filled: true },
          encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'b', type: 'quantitative' } },
        },
      ],
    };
  };
  return {
    $schema: SCHEMA,
    title: {
      text: 'Detection loss around each student',
      subtitle: [`on the plane of two filter-normalized random directions (seeds ${planes[0]?.plane.seeds.join(', ') ?? '?'}, same for both)`, 'white: iso-lines on one scale'],
    },
    hconcat: planes.map(panel),
    resolve: { scale: { color: 'shared' } },
  } as VegaLiteSpec;
}

export interface SharpnessBar {
  label: string;
  eigenvalue: number;
  radiusMean: number;
  radiusStd: number;
}

/** λ_max and the mean loss increase at radius r, one bar per student. */
export function sharpnessSpec(bars: SharpnessBar[], radius: number, directions: number, title?: string): VegaLiteSpec {
  const values = bars.map((b) => ({ ...b, lo: b.radiusMean - b.radiusStd, hi: b.radiusMean + b.radiusStd }));
  const axisX = { field: 'label', type: 'nominal', title: null, sort: null, axis: { labelAngle: 0, labelLimit: 240 } };
  return {
    $schema: SCHEMA,
    ...(title ? { title } : {}),
    data: { values },
    hconcat: [
      { title: 'Largest Hessian eigenvalue (power iteration)', width: 260, height: 240, mark: 'bar', encoding: { x: axisX, y: { field: 'eigenvalue', type: 'quantitative', title: 'λ_max' }, color: { field: 'label', type: 'nominal', legend: null } } },
      {
        title: `Mean loss increase at radius ${radius} (${directions} directions, ±1 sd)`,
        width: 260,
        height: 240,
        layer: [
          { mark: 'bar', encoding: { x: axisX, y: { field: 'radiusMean', type: 'quantitative', title: 'L(θ0 + r d) - L(θ0)' }, color: { field: 'label', type: 'nominal', legend: null } } },
          { mark: { type: 'rule', color: 'black' }, encoding: { x: axisX, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        ],
      },
    ],
  } as VegaLiteSpec;
}
