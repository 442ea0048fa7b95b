/**
 * The losses of metrics.jsonl, split for plotting: the detection loss (the detector's own terms,
 * classification + box regression) of every student stage on one axis, the distillation loss
 * (the `distill.*` terms) of the distilling stages, and the total loss of the models trained
 * from scratch (`train:<name>`). Student stages lie on the teacher-budget axis in steps: the
 * progressive stages mtpd1, mtpd2, ... one after the other as one series, each baseline from 0.
 * Every series is a moving average over `window` steps (per-step losses are noisy).
 */
import type { MetricsRecord } from '../train/metrics.js';

export interface LossPoint {
  x: number;
  y: number;
  series: string;
}

export interface SplitLosses {
  detection: LossPoint[];
  distillation: LossPoint[];
  /** Total loss of the teachers / off-the-shelf student trained here. */
  scratch: LossPoint[];
  window: number;
}

const META = new Set(['time', 'stage', 'iter', 'lr', 'loss']);

/** The detection and distillation parts of one step's record. */
export function lossParts(r: MetricsRecord): { detection: number; distillation: number } {
  let detection = 0, distillation = 0;
  for (const [k, v] of Object.entries(r)) {
    if (META.has(k) || typeof v !== 'number') continue;
    if (k.startsWith('distill.')) distillation += v;
    else detection += v;
  }
  return { detection, distillation };
}

/** Series name and step offset of a student stage, or null for anything else. */
export function studentSeries(stage: string, progressiveOffsets: Map<number, number>): { series: string; offset: number } | null {
  const m = /^mtpd(\d+)-/.exec(stage);
  if (m) return { series: 'progressive', offset: progressiveOffsets.get(Number(m[1])) ?? 0 };
  if (/^(longer|direct|ensemble)-/.test(stage)) return { series: stage, offset: 0 };
  return null;
}

function smooth(points: LossPoint[], window: number): LossPoint[] {
  const out: LossPoint[] = [];
  const bySeries = new Map<string, LossPoint[]>();
  for (const p of points) bySeries.set(p.series, [...(bySeries.get(p.series) ?? []), p]);
  for (const ps of bySeries.values()) {
    ps.sort((a, b) => a.x - b.x);
    let sum = 0;
    for (let i = 0; i < ps.length; i++) {
      sum += (ps[i] as LossPoint).y;
      if (i >= window) sum -= (ps[i - window] as LossPoint).y;
      out.push({ ...(ps[i] as LossPoint), y: sum / Math.min(i + 1, window) });
    }
  }
  return out;
}

export function splitLosses(records: readonly MetricsRecord[], options: { window?: number } = {}): SplitLosses {
  const steps = records.filter((r) => typeof r.iter === 'number' && typeof r.loss === 'number' && typeof r.stage === 'string');
  // Progressive stage k starts where stages 1..k-1 ended.
  const lengths = new Map<number, number>();
  for (const r of steps) {
    const m = /^mtpd(\d+)-/.exec(r.stage as string);
    if (m) lengths.set(Number(m[1]), Math.max(lengths.get(Number(m[1])) ?? 0, r.iter as number));
  }
  const offsets = new Map<number, number>();
  let acc = 0;
  for (const k of [...lengths.keys()].sort((a, b) => a - b)) {
    offsets.set(k, acc);
    acc += lengths.get(k) as number;
  }
  const detection: LossPoint[] = [], distillation: LossPoint[] = [], scratch: LossPoint[] = [];
  for (const r of steps) {
    const stage = r.stage as string;
    const s = studentSeries(stage, offsets);
    if (s) {
      const parts = lossParts(r);
      const x = s.offset + (r.iter as number);
      detection.push({ x, y: parts.detection, series: s.series });
      if (Object.keys(r).some((k) => k.startsWith('distill.'))) distillation.push({ x, y: parts.distillation, series: s.series });
    } else if (stage.startsWith('train:')) scratch.push({ x: r.iter as number, y: r.loss as number, series: stage.slice('train:'.length) });
  }
  const longest = Math.max(1, ...detection.map((p) => p.x));
  const window = options.window ?? Math.max(1, Math.round(longest / 25));
  return { detection: smooth(detection, window), distillation: smooth(distillation, window), scratch: smooth(scratch, window), window };
}
