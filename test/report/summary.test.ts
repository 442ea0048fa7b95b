/** The summary table with spreads: cells, the gain column, the plain-language comparison lines. */
import t from 'tap';
import type { BootstrapResult, ModelSpread, PairSpread } from '../../src/eval/bootstrap.js';
import { bootstrap } from '../../src/eval/bootstrap.js';
import { describeComparison, formatSummaryMarkdown, formatSummaryTable, isReal, signedPct, type SummaryInput } from '../../src/report/summary.js';
import type { CocoDataset, CocoDetection } from '../../src/eval/index.js';

const stats = (ap: number) => [ap, ap + 0.3, ap - 0.05, ap - 0.1, ap, ap + 0.1, 0.2, 0.3, 0.4, -1, 0.4, 0.5];
const model = (name: string, ap: number, lo: number, hi: number): ModelSpread => ({ name, stats: stats(ap), lo: stats(lo), hi: stats(hi) });
const pair = (a: string, b: string, diff: number, lo: number, hi: number, above: number): PairSpread => ({
  a,
  b,
  diff: new Array(12).fill(diff),
  lo: new Array(12).fill(lo),
  hi: new Array(12).fill(hi),
  above: new Array(12).fill(above),
});
const boot: BootstrapResult = {
  resamples: 1000,
  seed: 0,
  level: 0.95,
  images: 200,
  statNames: ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'],
  models: [model('teacher', 0.4, 0.38, 0.42), model('ots', 0.3, 0.28, 0.32), model('direct', 0.312, 0.298, 0.326), model('mtpd', 0.323, 0.31, 0.336)],
  pairs: [
    pair('direct', 'ots', 0.012, 0.004, 0.02, 0.996),
    pair('mtpd', 'ots', 0.023, 0.015, 0.031, 1),
    pair('mtpd', 'direct', 0.011, 0.003, 0.019, 0.994),
    pair('direct', 'mtpd', -0.011, -0.019, -0.003, 0.006),
    pair('teacher', 'ots', 0.1, 0.08, 0.12, 1),
    pair('ots', 'direct', -0.012, -0.02, -0.004, 0.004),
  ],
};
const input: SummaryInput = {
  rows: [
    { label: 'teacher r34', model: 'teacher', stats: stats(0.4), gain: false },
    { label: 'student, off-the-shelf', model: 'ots', stats: stats(0.3) },
    { label: 'direct distillation', model: 'direct', stats: stats(0.312) },
    { label: 'progressive: r18 -> r34', model: 'mtpd', stats: stats(0.323) },
    { label: 'no detections kept', model: 'old', stats: stats(0.305) },
  ],
  bootstrap: boot,
  reference: 'ots',
  gainHeader: 'vs OTS',
  comparisons: [
    { a: 'mtpd', b: 'direct', label: 'progressive vs direct' },
    { a: 'direct', b: 'ots' },
  ],
};

t.test('plain text: AP with its interval, the other stats, the gain with its paired interval', async (t) => {
  const text = formatSummaryTable(input);
  const lines = text.split('\n');
  t.match(lines[0], /^model\s+AP\s+AP50\s+AP75\s+APs\s+APm\s+APl\s+vs OTS$/);
  t.match(lines[1], /^-+$/);
  t.match(lines[2], /^teacher r34\s+40\.0 \[38\.0, 42\.0\]\s+70\.0\s+35\.0\s+30\.0\s+40\.0\s+50\.0$/, 'teacher: no gain column');
  t.match(lines[3], /^student, off-the-shelf\s+30\.0 \[28\.0, 32\.0\]\s+60\.0\s+25\.0\s+20\.0\s+30\.0\s+40\.0$/, 'the reference has no gain');
  t.match(lines[4], /^direct distillation\s+31\.2 \[29\.8, 32\.6\]\s.*\s\+1\.2 \[\+0\.4, \+2\.0\]$/);
  t.match(lines[5], /^progressive: r18 -> r34\s+32\.3 \[31\.0, 33\.6\]\s.*\s\+2\.3 \[\+1\.5, \+3\.1\]$/);
  t.match(lines[6], /^no detections kept\s+30\.5\s.*\s\+0\.5$/, 'a model outside the bootstrap: no intervals, plain gain');
  // the columns line up
  const at = lines[0]!.indexOf('AP50') + 4;
  for (const l of lines.slice(2, 7)) t.equal(l[at - 1] !== ' ' && l[at] === ' ', true, `column end in "${l}"`);
  t.match(text, /95% percentile intervals of a paired bootstrap over the 200 validation images \(1000 resamples, seed 0\)/);
  t.match(text, /\nprogressive vs direct: \+1\.1 AP \[\+0\.3, \+1\.9\], real \(the interval excludes 0; above 0 in 99\.4% of resamples\)/);
  t.match(text, /\ndirect vs ots: \+1\.2 AP \[\+0\.4, \+2\.0\], real/);
});

t.test('markdown: the same cells as a table, comparisons as a list', async (t) => {
  const md = formatSummaryMarkdown(input);
  const lines = md.split('\n');
  t.equal(lines[0], '| model | AP | AP50 | AP75 | APs | APm | APl | vs OTS |');
  t.equal(lines[1], '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  t.equal(lines[2], '| teacher r34 | 40.0 [38.0, 42.0] | 70.0 | 35.0 | 30.0 | 40.0 | 50.0 |  |');
  t.equal(lines[5], '| progressive: r18 -> r34 | 32.3 [31.0, 33.6] | 62.3 | 27.3 | 22.3 | 32.3 | 42.3 | +2.3 [+1.5, +3.1] |');
  t.match(md, /\n- progressive vs direct: \+1\.1 AP \[\+0\.3, \+1\.9\], real/);
  t.ok(md.endsWith('\n'));
});

t.test('comparison lines: real, noise, negative, and without an interval', async (t) => {
  const b: BootstrapResult = {
    ...boot,
    pairs: [...boot.pairs, pair('teacher', 'mtpd', 0.004, -0.003, 0.011, 0.83), pair('ots', 'mtpd', -0.023, -0.031, -0.015, 0)],
  };
  t.equal(describeComparison(b, { a: 'teacher', b: 'mtpd', label: 't vs p' }), 't vs p: +0.4 AP [-0.3, +1.1], not distinguishable from noise (the interval includes 0; above 0 in 83.0% of resamples)');
  t.equal(describeComparison(b, { a: 'ots', b: 'mtpd' }), 'ots vs mtpd: -2.3 AP [-3.1, -1.5], real (the interval excludes 0; above 0 in 0.0% of resamples)');
  t.equal(describeComparison(b, { a: 'mtpd', b: 'gone' }, { a: stats(0.323), b: stats(0.3) }), 'mtpd vs gone: +2.3 AP, no interval (the bootstrap has no detections of gone)');
  t.equal(describeComparison(null, { a: 'x', b: 'y' }), 'x vs y: no interval (the bootstrap has no detections of x and y)');
  t.ok(isReal(0.001, 0.002) && isReal(-0.002, -0.001) && !isReal(0, 0.01) && !isReal(-0.01, 0) && !isReal(0, 0));
  t.equal(signedPct(-0.0004), '0.0', 'no -0.0');
  t.equal(signedPct(0.0004), '0.0');
  t.equal(signedPct(0.0123), '+1.2');
  t.equal(signedPct(-0.0123), '-1.2');
});

t.test('without a bootstrap: plain numbers, plain gains, and a footnote that says so', async (t) => {
  const text = formatSummaryTable({ ...input, bootstrap: null, comparisons: [] });
  t.match(text, /\ndirect distillation\s+31\.2\s.*\s\+1\.2\n/);
  t.notMatch(text, /\[/);
  t.match(text, /no bootstrap: no intervals/);
  const bare = formatSummaryTable({ rows: input.rows.slice(0, 2) });
  t.notMatch(bare.split('\n')[0]!, /gain/, 'no reference: no gain column');
});

t.test('on a real bootstrap: identical models are noise at 0.0', async (t) => {
  const gt: CocoDataset = {
    images: Array.from({ length: 30 }, (_, i) => ({ id: i + 1, width: 100, height: 100 })),
    categories: [{ id: 1, name: 'a' }],
    annotations: Array.from({ length: 30 }, (_, i) => ({ id: i + 1, image_id: i + 1, category_id: 1, bbox: [10, 10, 40 + (i % 7), 40], area: 1600, iscrowd: 0 })),
  };
  const dets: CocoDetection[] = gt.annotations.map((a, i) => ({ image_id: a.image_id, category_id: 1, score: (i * 37) % 30 / 30, bbox: [10 + (i % 5) * 3, 10, 40, 40] }));
  const b = bootstrap(gt, [
    { name: 'x', detections: dets },
    { name: 'y', detections: dets },
  ], { resamples: 50 });
  t.match(describeComparison(b, { a: 'x', b: 'y' }), /^x vs y: 0\.0 AP \[0\.0, 0\.0\], not distinguishable from noise/);
  const text = formatSummaryTable({ rows: b.models.map((m) => ({ label: m.name, model: m.name, stats: m.stats })), bootstrap: b, reference: 'x' });
  t.match(text, /\ny\s+\d+\.\d \[\d+\.\d, \d+\.\d\].*\s0\.0 \[0\.0, 0\.0\]\n/);
});
