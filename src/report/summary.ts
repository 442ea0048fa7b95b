/**
 * The final table of a run with its spreads: AP with its 95% interval, AP50, AP75, APs, APm,
 * APl, the AP gain over a reference row (the off-the-shelf student) with its paired interval,
 * and one plain-language line per comparison saying whether the difference is real.
 *
 *   formatSummaryTable({ rows, bootstrap, reference: 'student', comparisons: [{ a: 'mtpd2', b: 'direct1', label: 'progressive vs direct' }] })
 *
 * Rows and comparisons name models as the bootstrap does; nothing here knows how a pipeline
 * names its runs. Numbers are COCO stats in percent with one decimal.
 */
import { pairOf, type BootstrapResult, type PairSpread } from '../eval/bootstrap.js';

export interface SummaryRow {
  /** The first column, e.g. "progressive: r18 -> r34". */
  label: string;
  /** The model's name in the bootstrap (a row whose model it lacks is shown without intervals). */
  model: string;
  /** The 12 COCO stats (STAT_NAMES order). */
  stats: readonly number[];
  /** Show the gain over the reference row (default true; never on the reference row itself). */
  gain?: boolean;
  /** A mask model's 12 COCO segm stats (mask AP); any row with them adds the mask columns. */
  segm?: readonly number[];
}

export interface Comparison {
  /** Model names in the bootstrap; the difference is a - b. */
  a: string;
  b: string;
  /** How the line names the pair (default "a vs b"). */
  label?: string;
}

export interface SummaryInput {
  rows: readonly SummaryRow[];
  bootstrap?: BootstrapResult | null;
  /** Model name of the row the gain column is measured from. */
  reference?: string;
  /** Header of the gain column (default "gain"). */
  gainHeader?: string;
  comparisons?: readonly Comparison[];
  /** The paired bootstrap of the rows' mask (segm) detections: intervals of mask AP and its gain. */
  maskBootstrap?: BootstrapResult | null;
}

const HEAD = ['AP50', 'AP75', 'APs', 'APm', 'APl'];

/** A stat in percent, one decimal; '-' where undefined. */
export function pct(v: number): string {
  return v < 0 || !Number.isFinite(v) ? '-' : (100 * v).toFixed(1);
}

/** A difference in percent points with its sign; 0.0 never shows as -0.0. */
export function signedPct(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const s = (100 * v).toFixed(1);
  if (Number(s) === 0) return '0.0';
  return v > 0 ? `+${s}` : s;
}

function pairFor(b: BootstrapResult | null | undefined, a: string, ref: string): PairSpread | null {
  if (!b || a === ref) return null;
  if (!b.models.some((m) => m.name === a) || !b.models.some((m) => m.name === ref)) return null;
  return pairOf(b, a, ref);
}

/** True when the interval of a difference excludes 0. */
export function isReal(lo: number, hi: number): boolean {
  return lo > 0 || hi < 0;
}

/** "progressive vs direct: +1.1 AP [+0.3, +1.9], real (the interval excludes 0; above 0 in 99.6% of resamples)" */
export function describeComparison(b: BootstrapResult | null | undefined, c: Comparison, stats?: { a?: readonly number[]; b?: readonly number[] }): string {
  const label = c.label ?? `${c.a} vs ${c.b}`;
  const p = pairFor(b, c.a, c.b);
  if (!p) {
    const d = (stats?.a?.[0] ?? NaN) - (stats?.b?.[0] ?? NaN);
    return `${label}: ${Number.isFinite(d) ? `${signedPct(d)} AP, ` : ''}no interval (the bootstrap has no detections of ${[c.a, c.b].filter((n) => !b?.models.some((m) => m.name === n)).join(' and ') || 'them'})`;
  }
  const lo = p.lo[0]!;
  const hi = p.hi[0]!;
  const share = `${(100 * p.above[0]!).toFixed(1)}% of resamples`;
  const verdict = isReal(lo, hi) ? `real (the interval excludes 0; above 0 in ${share})` : `not distinguishable from noise (the interval includes 0; above 0 in ${share})`;
  return `${label}: ${signedPct(p.diff[0]!)} AP [${signedPct(lo)}, ${signedPct(hi)}], ${verdict}`;
}

interface Cells {
  label: string;
  ap: string;
  rest: string[];
  gain: string;
  /** Mask AP with its interval and its gain (empty for rows without masks). */
  mask: string;
  maskGain: string;
}

/** AP with its interval and the gain over the reference, from `stats` and bootstrap `b`. */
function apCells(b: BootstrapResult | null, r: SummaryRow, stats: readonly number[] | undefined, ref: string | undefined, refStats: readonly number[] | undefined): { ap: string; gain: string } {
  if (!stats) return { ap: '', gain: '' };
  const m = b?.models.find((x) => x.name === r.model);
  const ap = m && stats[0]! >= 0 ? `${pct(stats[0]!)} [${pct(m.lo[0]!)}, ${pct(m.hi[0]!)}]` : pct(stats[0] ?? -1);
  let gain = '';
  if (ref !== undefined && r.model !== ref && (r.gain ?? true)) {
    const p = pairFor(b, r.model, ref);
    if (p) gain = `${signedPct(p.diff[0]!)} [${signedPct(p.lo[0]!)}, ${signedPct(p.hi[0]!)}]`;
    else if (refStats) gain = signedPct(stats[0]! - refStats[0]!);
  }
  return { ap, gain };
}

function cells(input: SummaryInput): Cells[] {
  const ref = input.reference;
  const refRow = ref === undefined ? undefined : input.rows.find((r) => r.model === ref);
  return input.rows.map((r) => {
    const box = apCells(input.bootstrap ?? null, r, r.stats, ref, refRow?.stats);
    const mask = apCells(input.maskBootstrap ?? null, r, r.segm, ref, refRow?.segm);
    return { label: r.label, ap: box.ap, rest: [1, 2, 3, 4, 5].map((s) => pct(r.stats[s] ?? -1)), gain: box.gain, mask: mask.ap, maskGain: mask.gain };
  });
}

/** True when some row has mask stats (the table gets the mask columns). */
function hasMasks(input: SummaryInput): boolean {
  return input.rows.some((r) => r.segm !== undefined);
}

function footnote(input: SummaryInput): string {
  const b = input.bootstrap;
  const what = hasMasks(input) ? 'COCO bbox stats and mask AP (segm) in %' : 'COCO bbox stats in %';
  if (!b) return `${what}; no bootstrap: no intervals.`;
  return `${what}; [lo, hi]: ${Math.round(100 * b.level)}% percentile intervals of a paired bootstrap over the ${b.images} validation images (${b.resamples} resamples, seed ${b.seed}).`;
}

function comparisonLines(input: SummaryInput): string[] {
  const byModel = new Map(input.rows.map((r) => [r.model, r]));
  const lines: string[] = [];
  for (const c of input.comparisons ?? []) {
    const a = byModel.get(c.a);
    const b = byModel.get(c.b);
    lines.push(describeComparison(input.bootstrap, c, { a: a?.stats, b: b?.stats }));
    if (a?.segm && b?.segm) lines.push(describeComparison(input.maskBootstrap, { ...c, label: `${c.label ?? `${c.a} vs ${c.b}`}, mask` }, { a: a.segm, b: b.segm }));
  }
  return lines;
}

/** The table as plain text (for the terminal), its footnote and one line per comparison. */
export function formatSummaryTable(input: SummaryInput): string {
  const rows = cells(input);
  const gainHead = input.reference !== undefined ? (input.gainHeader ?? 'gain') : '';
  const wl = Math.max(5, ...rows.map((r) => r.label.length));
  const wa = Math.max(2, ...rows.map((r) => r.ap.length));
  const wg = Math.max(gainHead.length, ...rows.map((r) => r.gain.length));
  const masks = hasMasks(input);
  const maskGainHead = gainHead ? `mask ${gainHead}` : '';
  const wm = masks ? Math.max(7, ...rows.map((r) => r.mask.length)) : 0;
  const wmg = masks ? Math.max(maskGainHead.length, ...rows.map((r) => r.maskGain.length)) : 0;
  const line = (label: string, ap: string, rest: string[], gain: string, mask: string, maskGain: string) =>
    `${label.padEnd(wl)}  ${ap.padStart(wa)}  ${rest.map((v) => v.padStart(5)).join('  ')}${wg ? `  ${gain.padStart(wg)}` : ''}${wm ? `  ${mask.padStart(wm)}` : ''}${wmg ? `  ${maskGain.padStart(wmg)}` : ''}`.trimEnd();
  const head = line('model', 'AP', HEAD, gainHead, 'mask AP', maskGainHead);
  const out = [head, '-'.repeat(head.length), ...rows.map((r) => line(r.label, r.ap, r.rest, r.gain, r.mask, r.maskGain)), '', footnote(input)];
  const cmp = comparisonLines(input);
  if (cmp.length) out.push('', ...cmp);
  return out.join('\n');
}

/** The same as markdown (report.md): a table, the footnote, the comparisons as a list. */
export function formatSummaryMarkdown(input: SummaryInput): string {
  const rows = cells(input);
  const withGain = input.reference !== undefined;
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const masks = hasMasks(input);
  const gainHead = input.gainHeader ?? 'gain';
  const head = ['model', 'AP', ...HEAD, ...(withGain ? [gainHead] : []), ...(masks ? ['mask AP', ...(withGain ? [`mask ${gainHead}`] : [])] : [])];
  const out = [`| ${head.join(' | ')} |`, `| --- | ${head.slice(1).map(() => '---:').join(' | ')} |`];
  for (const r of rows) out.push(`| ${[esc(r.label), r.ap, ...r.rest, ...(withGain ? [r.gain] : []), ...(masks ? [r.mask, ...(withGain ? [r.maskGain] : [])] : [])].join(' | ')} |`);
  out.push('', footnote(input));
  const cmp = comparisonLines(input);
  if (cmp.length) out.push('', ...cmp.map((l) => `- ${esc(l)}`));
  return `${out.join('\n')}\n`;
}
