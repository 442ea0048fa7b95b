/** `mtpd eval` end to end: table, --json (one object on stdout), and clear errors with exit 1. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const golden = JSON.parse(readFileSync(new URL('../fixtures/coco/eval_golden.json', import.meta.url), 'utf8')) as {
  gts: Record<string, unknown>;
  cases: { name: string; gt: string; dets: Record<string, unknown>[]; expected: { stats: number[]; perCategory: Record<string, number[]> } }[];
};
const dir = mkdtempSync(join(tmpdir(), 'mtpd-eval-'));
const c = golden.cases.find((x) => x.name === 'segm_with_bbox')!;
const gtPath = join(dir, 'instances.json');
const detsPath = join(dir, 'results.json');
writeFileSync(gtPath, JSON.stringify(golden.gts[c.gt]));
writeFileSync(detsPath, JSON.stringify(c.dets));

const run = (...args: string[]) => spawnSync(process.execPath, [...process.execArgv, cli, 'eval', ...args], { encoding: 'utf8' });

t.test('--json prints exactly one JSON object with the golden stats', async (t) => {
  const r = run('--gt', gtPath, '--dets', detsPath, '--iou-type', 'segm', '--json');
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { stats: number[]; perCategory: Record<string, { name: string; AP: number }> };
  t.same(Object.keys(out), ['stats', 'perCategory', 'ignoredCategories']);
  t.equal(out.stats.length, 12);
  out.stats.forEach((v, i) => t.ok(Math.abs(v - c.expected.stats[i]!) <= 1e-12, `stat ${i}`));
  for (const [id, s] of Object.entries(c.expected.perCategory)) t.ok(Math.abs(out.perCategory[id]!.AP - s[0]!) <= 1e-12, `AP of ${id}`);
});

t.test('the table is pycocotools summarize() text', async (t) => {
  const r = run('--gt', gtPath, '--dets', detsPath, '--iou-type', 'segm');
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.equal(lines[0], ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ${c.expected.stats[0]!.toFixed(3)}`);
  t.equal(lines[11], ` Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = ${c.expected.stats[11]!.toFixed(3)}`);
});

t.test('detections of categories the ground truth does not list: ignored with a warning naming them and their counts', async (t) => {
  const extra = [...c.dets.slice(0, 3).map((d) => ({ ...d, category_id: 999 })), { ...c.dets[0], category_id: 1234 }];
  const p = join(dir, 'extra.json');
  writeFileSync(p, JSON.stringify([...c.dets, ...extra]));
  const r = run('--gt', gtPath, '--dets', p, '--iou-type', 'segm', '--json');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /warning: .*extra\.json: 4 detections of 2 categories the ground truth does not list were ignored, as pycocotools does: category_id 999 \(3\), 1234 \(1\) \(--strict refuses them\)/);
  const out = JSON.parse(r.stdout) as { stats: number[]; ignoredCategories: Record<string, number> };
  t.same(out.ignoredCategories, { 999: 3, 1234: 1 });
  for (let i = 0; i < 12; i++) t.ok(Math.abs(out.stats[i]! - c.expected.stats[i]!) <= 1e-12, `stat ${i} as without them`);
});

t.test('ground-truth annotations of images or categories the file does not list: left out with a warning, as pycocotools', async (t) => {
  const gt = golden.gts[c.gt] as { images: { id: number }[]; annotations: Record<string, unknown>[] };
  const a0 = gt.annotations[0]!;
  const extra = [{ ...a0, id: 900001, image_id: 424242 }, { ...a0, id: 900002, category_id: 31337 }, { id: 900003, image_id: 424242, category_id: 31337 }];
  const p = join(dir, 'unlisted.json');
  writeFileSync(p, JSON.stringify({ ...gt, annotations: [...gt.annotations, ...extra] }));
  const r = run('--gt', p, '--dets', detsPath, '--iou-type', 'segm', '--json');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /warning: .*unlisted\.json: 2 annotations whose image_id is not in "images" \(424242 \(2\)\) and 1 annotation whose category_id is not in "categories" \(31337 \(1\)\) were left out, as pycocotools does \(--strict refuses them\)/);
  const out = JSON.parse(r.stdout) as { stats: number[] };
  for (let i = 0; i < 12; i++) t.ok(Math.abs(out.stats[i]! - c.expected.stats[i]!) <= 1e-12, `stat ${i} as without them`);
  const strict = run('--gt', p, '--dets', detsPath, '--iou-type', 'segm', '--strict');
  t.equal(strict.status, 1);
  t.match(strict.stderr, new RegExp(`unlisted\\.json: annotations\\[${gt.annotations.length}\\]\\.image_id 424242 is not in images`));
});

t.test('bad files: clear error, exit code 1', async (t) => {
  const bad = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const cases: [string, RegExp][] = [
    [bad('notjson.json', '[{"image_id": 1'), /notjson\.json is not valid JSON/],
    [bad('obj.json', '{"a": 1}'), /obj\.json: a results file must be a JSON array/],
    [bad('img.json', JSON.stringify([{ ...c.dets[0], image_id: 123456789 }])), /img\.json\[0\]\.image_id 123456789 is not an image/],
    [bad('box.json', JSON.stringify([{ ...c.dets[0], bbox: [1, 2, 'x', 4] }])), /box\.json\[0\]\.bbox must be 4 finite numbers/],
    [bad('mask.json', JSON.stringify([{ ...c.dets[0], segmentation: { size: [3, 3], counts: [1, 2] } }])), /mask\.json\[0\]\.segmentation: RLE counts sum to 3, expected h\*w = 9/],
    // 5x upsampled past int32: a RangeError (exit 2, no file named) at 5e8, a silently wrapped mask at 1e30
    [bad('poly.json', JSON.stringify([{ ...c.dets[0], segmentation: [[0, 0, 5e8, 0, 5e8, 5e8]] }])), /poly\.json\[0\]\.segmentation: frPoly: polygon coordinate 500000000 at index 2 is not a finite number within \+-429496729/],
    [bad('poly30.json', JSON.stringify([{ ...c.dets[0], segmentation: [[0, 0, 1e30, 0, 1e30, 1e30]] }])), /poly30\.json\[0\]\.segmentation: frPoly: polygon coordinate 1e\+30 at index 2/],
    [join(dir, 'missing.json'), /cannot read .*missing\.json: ENOENT/],
  ];
  for (const [p, re] of cases) {
    const r = run('--gt', gtPath, '--dets', p, '--iou-type', 'segm');
    t.equal(r.status, 1, `exit 1 for ${p}`);
    t.match(r.stderr, re);
    t.equal(r.stdout, '');
  }
  const strict = run('--gt', gtPath, '--dets', bad('cat.json', JSON.stringify([c.dets[0], { ...c.dets[0], category_id: 999 }])), '--iou-type', 'segm', '--strict');
  t.equal(strict.status, 1, '--strict refuses a category the ground truth does not list');
  t.match(strict.stderr, /cat\.json\[1\]\.category_id 999 is not a category/);
  const r = run('--gt', detsPath, '--dets', detsPath);
  t.equal(r.status, 1);
  t.match(r.stderr, /results\.json: expected a COCO object/);
});
