/** The summary table of mask models: mask AP with its interval, its gain, and a mask line per comparison. */
import t from 'tap';
import type { BootstrapResult, ModelSpread, PairSpread } from '../../src/eval/bootstrap.js';
import { formatSummaryMarkdown, formatSummaryTable, type SummaryInput } from '../../src/report/summary.js';

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
const base = { resamples: 1000, seed: 0, level: 0.95, images: 200, statNames: ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] };
const box: BootstrapResult = { ...base, models: [model('ots', 0.3, 0.28, 0.32), model('mtpd', 0.323, 0.31, 0.336)], pairs: [pair('mtpd', 'ots', 0.023, 0.015, 0.031, 1)] };
const mask: BootstrapResult = { ...base, models: [model('ots', 0.25, 0.23, 0.27), model('mtpd', 0.254, 0.24, 0.27)], pairs: [pair('mtpd', 'ots', 0.004, -0.006, 0.014, 0.71)] };

const input: SummaryInput = {
  rows: [
    { label: 'teacher t', model: 't', stats: stats(0.5), gain: false },
    { label: 'student ots', model: 'ots', stats: stats(0.3), segm: stats(0.25) },
    { label: 'progressive', model: 'mtpd', stats: stats(0.323), segm: stats(0.254) },
  ],
  bootstrap: box,
  maskBootstrap: mask,
  reference: 'ots',
  gainHeader: 'vs OTS',
  comparisons: [{ a: 'mtpd', b: 'ots', label: 'progressive vs off-the-shelf' }],
};

t.test('mask AP with its interval and gain beside the box columns', async (t) => {
  const s = formatSummaryTable(input);
  const lines = s.split('\n');
  t.match(lines[0], /AP50 +AP75 +APs +APm +APl +vs OTS +mask AP +mask vs OTS$/);
  t.match(s, /progressive +32\.3 \[31\.0, 33\.6\] .* \+2\.3 \[\+1\.5, \+3\.1\] +25\.4 \[24\.0, 27\.0\] +\+0\.4 \[-0\.6, \+1\.4\]$/m);
  t.match(s, /teacher t +50\.0 .*\d$/m, 'a row without masks has empty mask cells');
  t.notMatch(s.split('\n').find((l) => l.startsWith('teacher t')) ?? '', /\[/);
  t.match(s, /COCO bbox stats and mask AP \(segm\) in %/);
  t.match(s, /^progressive vs off-the-shelf: \+2\.3 AP \[\+1\.5, \+3\.1\], real/m);
  t.match(s, /^progressive vs off-the-shelf, mask: \+0\.4 AP \[-0\.6, \+1\.4\], not distinguishable from noise \(the interval includes 0; above 0 in 71\.0% of resamples\)$/m);
  const md = formatSummaryMarkdown(input);
  t.match(md, /^\| model \| AP \| AP50 \| AP75 \| APs \| APm \| APl \| vs OTS \| mask AP \| mask vs OTS \|$/m);
  t.match(md, /^\| progressive \| 32\.3 \[31\.0, 33\.6\] \|.*\| \+2\.3 \[\+1\.5, \+3\.1\] \| 25\.4 \[24\.0, 27\.0\] \| \+0\.4 \[-0\.6, \+1\.4\] \|$/m);
});

t.test('without mask rows the table is the box table', async (t) => {
  const plain = { ...input, rows: input.rows.map(({ segm: _segm, ...r }) => r) };
  const s = formatSummaryTable(plain);
  t.notMatch(s, /mask/);
  t.match(s, /COCO bbox stats in %;/);
});
