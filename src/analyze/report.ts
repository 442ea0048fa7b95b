/**
 * The analysis report: whether the paper's three observations (section 3.5, Figure 5) hold for
 * this run, comparing the progressively distilled student with the one trained longer for the
 * same budget:
 *  1. a higher training detection loss (the distilled student fits the training set less),
 *  2. a higher validation AP (yet generalizes better),
 *  3. a flatter loss landscape (a smaller largest Hessian eigenvalue and a smaller mean loss
 *     increase at the fixed radius; "mixed" when the two measures disagree).
 * analysis.json holds every number; report.md says it in words.
 */
import type { Landscape1D, Landscape2D } from './landscape.js';
import type { RadiusSharpness } from './sharpness.js';

export interface StageMeasure {
  name: string;
  method: string;
  budget: number;
  ap: number;
  trainLoss: number;
  trainTerms: Record<string, number>;
}

export interface SharpnessMeasure {
  eigenvalue: number;
  iterations: number;
  converged: boolean;
  history: number[];
  radius: RadiusSharpness;
}

export interface ApComparison {
  /** AP(progressive) - AP(longer) on all validation images. */
  diff: number;
  lo: number;
  hi: number;
  /** Fraction of bootstrap resamples where progressive is above. */
  above: number;
  resamples: number;
}

export interface Observation {
  id: 'higher-train-loss' | 'higher-val-ap' | 'flatter-landscape';
  claim: string;
  /** true: holds; false: does not; 'mixed': the measures disagree. */
  holds: boolean | 'mixed';
  detail: string;
}

export interface AnalysisResult {
  run: string;
  out: string;
  subset: { size: number; seed: number; imageIds: number[] };
  options: Record<string, unknown>;
  stages: StageMeasure[];
  pair: { progressive: string; longer: string } | null;
  landscape: { line: Record<string, Landscape1D>; plane: Record<string, Landscape2D> } | null;
  sharpness: Record<string, SharpnessMeasure> | null;
  apComparison: ApComparison | null;
  observations: Observation[];
  plots: string[];
}

const pct = (v: number) => (100 * v).toFixed(1);
const f4 = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 0.01 ? v.toFixed(4) : v.toExponential(3));

export function observations(r: Pick<AnalysisResult, 'stages' | 'pair' | 'sharpness' | 'apComparison'>): Observation[] {
  if (!r.pair) return [];
  const p = r.stages.find((s) => s.name === r.pair?.progressive);
  const l = r.stages.find((s) => s.name === r.pair?.longer);
  if (!p || !l) return [];
  const out: Observation[] = [];
  out.push({
    id: 'higher-train-loss',
    claim: 'the distilled student has a higher training detection loss than the student trained longer',
    holds: p.trainLoss > l.trainLoss,
    detail: `training detection loss (eval mode) ${f4(p.trainLoss)} (${p.name}) vs ${f4(l.trainLoss)} (${l.name}): ${p.trainLoss > l.trainLoss ? 'higher' : 'not higher'} by ${f4(p.trainLoss - l.trainLoss)} (${((100 * (p.trainLoss - l.trainLoss)) / l.trainLoss).toFixed(1)}%)`,
  });
  const ap = r.apComparison;
  const apNoise = ap ? (ap.lo > 0 || ap.hi < 0 ? 'outside noise: the 95% interval excludes 0' : 'not distinguishable from noise: the 95% interval includes 0') : 'no bootstrap (detections missing)';
  out.push({
    id: 'higher-val-ap',
    claim: 'the distilled student has a higher validation AP',
    holds: p.ap > l.ap,
    detail: `AP ${pct(p.ap)} vs ${pct(l.ap)}: ${pct(p.ap - l.ap)} AP${ap ? ` [${pct(ap.lo)}, ${pct(ap.hi)}] paired bootstrap over the validation images, above in ${(100 * ap.above).toFixed(1)}% of ${ap.resamples} resamples` : ''}; ${apNoise}`,
  });
  const sp = r.sharpness?.[p.name];
  const sl = r.sharpness?.[l.name];
  if (sp && sl) {
    const byEig = sp.eigenvalue < sl.eigenvalue;
    const byRadius = sp.radius.mean < sl.radius.mean;
    out.push({
      id: 'flatter-landscape',
      claim: 'the distilled student sits in a flatter region of the loss landscape',
      holds: byEig && byRadius ? true : !byEig && !byRadius ? false : 'mixed',
      detail:
        `largest Hessian eigenvalue ${f4(sp.eigenvalue)} vs ${f4(sl.eigenvalue)} (${byEig ? 'flatter' : 'sharper'}${sp.converged && sl.converged ? '' : '; power iteration not converged for ' + [sp.converged ? null : p.name, sl.converged ? null : l.name].filter(Boolean).join(', ')}); ` +
        `mean loss increase at radius ${sp.radius.radius} ${f4(sp.radius.mean)} ± ${f4(sp.radius.std)} vs ${f4(sl.radius.mean)} ± ${f4(sl.radius.std)} over ${sp.radius.increases.length} directions (${byRadius ? 'flatter' : 'sharper'})`,
    });
  }
  return out;
}

function word(h: Observation['holds']): string {
  return h === true ? 'holds' : h === false ? 'does not hold' : 'mixed';
}

export function formatAnalysisMarkdown(r: AnalysisResult): string {
  const lines = ['# mtpd analysis: why distillation helps (the paper\'s section 3.5)', ''];
  lines.push(`run: ${r.run}`, '');
  if (r.pair) lines.push(`compared: the progressive student **${r.pair.progressive}** against the student trained longer for the same budget, **${r.pair.longer}**.`, '');
  lines.push(
    `training detection loss: classification + box regression, no distillation, on ${r.subset.size} training images (seeded draw, seed ${r.subset.seed}), model in eval mode (BatchNorm on its running statistics), no augmentation.`,
    '',
  );
  if (r.observations.length) {
    lines.push('| observation of the paper | on this run | numbers |', '| --- | --- | --- |');
    for (const o of r.observations) lines.push(`| ${o.claim} | **${word(o.holds)}** | ${o.detail} |`);
    lines.push('');
  } else lines.push('The run has no progressive student and longer baseline to compare; only the per-stage table is given.', '');
  lines.push('## Per stage (Figure 5a/b)', '', '| model | method | budget | val AP | train det loss | terms |', '| --- | --- | ---: | ---: | ---: | --- |');
  for (const s of r.stages) lines.push(`| ${s.name} | ${s.method} | ${s.budget} | ${pct(s.ap)} | ${f4(s.trainLoss)} | ${Object.entries(s.trainTerms).map(([k, v]) => `${k} ${f4(v)}`).join(', ')} |`);
  lines.push('');
  if (r.sharpness) {
    lines.push('## Sharpness', '', '| model | λ_max | power iterations | L(θ0) | mean L(θ0 + r d) - L(θ0) | sd |', '| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, s] of Object.entries(r.sharpness)) lines.push(`| ${name} | ${f4(s.eigenvalue)} | ${s.iterations}${s.converged ? '' : ' (not converged)'} | ${f4(s.radius.base)} | ${f4(s.radius.mean)} | ${f4(s.radius.std)} |`);
    lines.push('');
  }
  if (r.landscape) {
    lines.push('## Landscape (Figure 5c/d)', '');
    for (const [name, l] of Object.entries(r.landscape.plane)) {
      const flat = l.losses.flat();
      const centre = l.losses[Math.floor(l.betas.length / 2)]?.[Math.floor(l.alphas.length / 2)] ?? NaN;
      lines.push(`- ${name}: on the ${l.alphas.length}x${l.betas.length} plane (α, β in [${l.alphas[0]}, ${l.alphas.at(-1)}]), loss from ${f4(Math.min(...flat))} to ${f4(Math.max(...flat))}, mean rise over the centre ${f4(flat.reduce((a, b) => a + b, 0) / flat.length - centre)}`);
    }
    lines.push('');
  }
  const o = r.options;
  lines.push(
    `Directions: filter-normalized Gaussian (Li et al. 2018), 1-D parameters (norm layers, biases) not moved, the same seeds for every student. λ_max: power iteration on Hessian-vector products (double backward) of the same loss, at most ${String(o.iterations)} iterations, relative tolerance ${String(o.tol)} (from a random start the estimate rises towards λ_max, so a stopped iteration reads low). Moved and differentiated: the model's trainable parameters.`,
    '',
    `Figures: ${r.plots.join(', ')}.`,
    '',
  );
  return lines.join('\n');
}
