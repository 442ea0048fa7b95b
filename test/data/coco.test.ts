import t from 'tap';
import { mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CocoDataset } from '../../src/data/coco.js';
import { CategoryMap } from '../../src/data/categories.js';
import { streamTopLevelJson } from '../../src/data/jsonstream.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mtpd-coco-'));
let n = 0;
function writeJson(obj: unknown, text?: string): string {
  const f = path.join(dir, `ann${n++}.json`);
  writeFileSync(f, text ?? JSON.stringify(obj, null, 1));
  return f;
}

const base = () => ({
  info: { description: 'test' },
  images: [
    { id: 10, file_name: 'a.png', width: 100, height: 50 },
    { id: 11, file_name: 'b.png', width: 40, height: 40 },
    { id: 12, file_name: 'empty.png', width: 30, height: 30 },
  ],
  categories: [
    { id: 7, name: 'seven' },
    { id: 1, name: 'one', supercategory: 'n' },
    { id: 90, name: 'ninety' },
  ],
  annotations: [
    { id: 1, image_id: 10, category_id: 90, bbox: [10, 5, 20, 10], area: 150, iscrowd: 0, segmentation: [[10, 5, 30, 5, 30, 15, 10, 15]] },
    { id: 2, image_id: 10, category_id: 1, bbox: [0, 0, 100.5, 50], area: 4000, iscrowd: 1, segmentation: { counts: [0, 5000], size: [50, 100] } },
    { id: 3, image_id: 11, category_id: 7, bbox: [1, 2, 3, 4], area: 12, iscrowd: 0, segmentation: { counts: 'Z14T1000n\\1', size: [40, 40] } },
    { id: 900100581904, image_id: 10, category_id: 7, bbox: [50, 20, 10, 10], iscrowd: 0, segmentation: [[50, 20, 60, 20, 60, 30], [50, 25, 55, 25, 55, 30]] },
  ],
});

t.test('category mapping: sparse ids to contiguous labels and back', async (t) => {
  const m = new CategoryMap([{ id: 7, name: 'b' }, { id: 1, name: 'a' }, { id: 90, name: 'c' }]);
  t.same(m.ids, [1, 7, 90]);
  t.same(m.names, ['a', 'b', 'c']);
  t.equal(m.labelOf(1), 0);
  t.equal(m.labelOf(90), 2);
  t.equal(m.labelOf(2), -1);
  t.equal(m.categoryIdOf(1), 7);
  t.same(Array.from(m.categoryIdsOf([2, 0, 1])), [90, 1, 7]);
  t.throws(() => m.categoryIdOf(3), /outside 0\.\.2/);
  t.throws(() => new CategoryMap([{ id: 1, name: 'a' }, { id: 1, name: 'b' }]), /appears twice/);
});

t.test('reads images, categories, annotations; crowd kept out of training targets', async (t) => {
  for (const chunkSize of [1 << 20, 7, 1]) {
    const ds = await CocoDataset.load({ annotationFile: writeJson(base()), imageDir: dir, chunkSize });
    t.equal(ds.length, 3);
    t.same(ds.categories.ids, [1, 7, 90]);
    t.same(ds.extra.info, { description: 'test' });
    const im = ds.image(0);
    t.same(im, { index: 0, id: 10, fileName: 'a.png', path: path.join(dir, 'a.png'), width: 100, height: 50 });
    const tr = ds.targets(0);
    t.same(Array.from(tr.annotationIds), [1, 900100581904]);
    t.same(Array.from(tr.labels), [2, 1]);
    t.same(Array.from(tr.boxes), [10, 5, 30, 15, 50, 20, 60, 30]);
    t.same(Array.from(tr.areas), [150, 100]); // missing area falls back to w*h
    t.same(tr.segmentations[1], [[50, 20, 60, 20, 60, 30], [50, 25, 55, 25, 55, 30]]);
    const all = ds.targets(0, { includeCrowd: true });
    t.same(Array.from(all.annotationIds), [1, 2, 900100581904]);
    t.same(Array.from(all.iscrowd), [0, 1, 0]);
    t.same(all.segmentations[1], { counts: [0, 5000], size: [50, 100] });
    // crowd box reaching 0.5 px outside is within tolerance and clipped
    t.same(Array.from(all.boxes.subarray(4, 8)), [0, 0, 100, 50]);
    t.same(ds.targets(1).segmentations[0], { counts: 'Z14T1000n\\1', size: [40, 40] });
    t.equal(ds.targets(2).labels.length, 0);
    t.equal(ds.indexOfImageId(11), 1);
    t.equal(ds.indexOfImageId(99), -1);
  }
});

t.test('emptyImages: skip drops images with no non-crowd annotation', async (t) => {
  const j = base();
  j.annotations = j.annotations.filter((a) => a.id !== 3);
  const ds = await CocoDataset.load({ annotationFile: writeJson(j), imageDir: dir, emptyImages: 'skip' });
  t.same(Array.from(ds.imageIds()), [10]);
  t.equal(ds.indexOfImageId(11), -1);
});

t.test('keys in any order, BOM, escapes in strings', async (t) => {
  const j = base();
  const text = '\ufeff{"annotations": ' + JSON.stringify(j.annotations) + ', "weird \\"key\\"": [1, {"a": "]}\\\\"}], "categories": ' + JSON.stringify(j.categories) + ', "n": -1.5e3, "s": "x\\"}", "images": ' + JSON.stringify(j.images.map((i) => ({ ...i, file_name: i.file_name === 'a.png' ? 'dir/é "q".png' : i.file_name }))) + '}';
  for (const chunkSize of [1 << 16, 3]) {
    const ds = await CocoDataset.load({ annotationFile: writeJson(null, text), imageDir: dir, chunkSize });
    t.equal(ds.image(0).fileName, 'dir/é "q".png');
    t.same(ds.extra['weird "key"'], [1, { a: ']}\\' }]);
    t.equal(ds.extra.n, -1500);
    t.equal(ds.extra.s, 'x"}');
    t.equal(ds.targets(0, { includeCrowd: true }).labels.length, 3);
  }
});

t.test('malformed and truncated JSON name the file and the place', async (t) => {
  const good = JSON.stringify(base(), null, 1);
  const cut = writeJson(null, good.slice(0, Math.floor(good.length * 0.6)));
  await t.rejects(CocoDataset.load({ annotationFile: cut, imageDir: dir }), { code: 'ERR_MTPD_DATA', message: new RegExp(`${cut.replace(/[.]/g, '\\.')}: unexpected end of file inside 'annotations'\\[\\d+\\] \\(truncated file\\?\\)`) });
  const bad = writeJson(null, good.replace('"image_id": 11', '"image_id": 11,,'));
  await t.rejects(CocoDataset.load({ annotationFile: bad, imageDir: dir }), { message: /malformed JSON in 'annotations'\[2\] starting here: .*\(line \d+\)/ });
  await t.rejects(CocoDataset.load({ annotationFile: writeJson(null, '[1,2]'), imageDir: dir }), /expected a JSON object at the top level/);
  await t.rejects(CocoDataset.load({ annotationFile: writeJson(null, '{"images": {}}'), imageDir: dir }), /'images' must be an array/);
  await t.rejects(CocoDataset.load({ annotationFile: writeJson(null, good + 'x'), imageDir: dir }), /unexpected data after the top-level object/);
  await t.rejects(CocoDataset.load({ annotationFile: writeJson(null, '{"images": []}'), imageDir: dir }), /no 'categories' array/);
  await t.rejects(CocoDataset.load({ annotationFile: path.join(dir, 'nope.json'), imageDir: dir }), /nope\.json: annotation file not found/);
});

const badCases: [string, (j: ReturnType<typeof base>) => void, RegExp, string][] = [
  ['unknown category', (j) => { j.annotations[0]!.category_id = 5; }, /annotation id 1 has category_id 5 which is not in 'categories'/, 'unknown-category'],
  ['missing image', (j) => { j.annotations[2]!.image_id = 77; }, /annotation id 3 points at image id 77 which is not in 'images'/, 'missing-image'],
  ['zero-area box', (j) => { j.annotations[0]!.bbox = [10, 5, 0, 10]; }, /annotation id 1 \(image a\.png\) has a box of zero area/, 'zero-area-box'],
  ['box outside', (j) => { j.annotations[2]!.bbox = [30, 30, 20, 5]; }, /annotation id 3 has box \[30, 30, 20, 5\] outside its 40x40 image b\.png/, 'box-outside-image'],
  ['bad bbox field', (j) => { (j.annotations[0] as { bbox: unknown }).bbox = [1, 2, 3]; }, /annotation id 1 \(annotations\[0\]\): bbox must be/, 'malformed-annotation'],
  ['bad polygon', (j) => { j.annotations[0]!.segmentation = [[1, 2, 3, 4]]; }, /annotation id 1 \(annotations\[0\]\): segmentation\[0\] must be a polygon/, 'malformed-annotation'],
  ['rle wrong size', (j) => { (j.annotations[1] as { segmentation: unknown }).segmentation = { counts: [0, 10], size: [2, 5] }; }, /annotation id 2: RLE size \[2, 5\] differs/, 'malformed-annotation'],
  ['duplicate annotation id', (j) => { j.annotations[1]!.id = 1; }, /annotation id 1 appears twice/, 'duplicate-annotation-id'],
  // 2^32 + 1 wrapped to category 1 in the Int32Array column: a silent wrong label
  ['category_id past int32', (j) => { j.annotations[0]!.category_id = 2 ** 32 + 1; }, /annotation id 1 \(annotations\[0\]\) needs .*integer category_id .*got category_id 4294967297/, 'malformed-annotation'],
  ['RLE count past uint32', (j) => { (j.annotations[1] as { segmentation: unknown }).segmentation = { counts: [2 ** 32, 5000], size: [50, 100] }; }, /annotation id 2 \(annotations\[1\]\): RLE counts must be a string or a list of integers in 0\.\.4294967295/, 'malformed-annotation'],
  ['corrupt compressed RLE', (j) => { (j.annotations[2] as { segmentation: unknown }).segmentation = { counts: 'Z1~T1000n', size: [40, 40] }; }, /annotation id 3: RLE counts: compressed RLE string has invalid character "~" at 2/, 'malformed-annotation'],
  ['truncated compressed RLE', (j) => { (j.annotations[2] as { segmentation: unknown }).segmentation = { counts: 'PPYo0P', size: [40, 40] }; }, /annotation id 3: RLE counts: compressed RLE string ends inside a number/, 'malformed-annotation'],
  ['compressed RLE of the wrong area', (j) => { (j.annotations[2] as { segmentation: unknown }).segmentation = { counts: '0', size: [40, 40] }; }, /annotation id 3: RLE counts sum to 0, expected 40\*40=1600/, 'malformed-annotation'],
  ['polygon vertex far outside the image', (j) => { j.annotations[0]!.segmentation = [[10, 5, 30, 5, 3e8, 15]]; }, /annotation id 1: segmentation\[0\] has vertex \(300000000, 15\), far outside its 100x50 image a\.png/, 'malformed-annotation'],
];

t.test('image sizes past int32 are malformed, not wrapped', async (t) => {
  // width 2^32 + 40 was stored as 40 (Int32Array) and the image passed as 40 wide
  const j = base();
  j.images[1]!.width = 2 ** 32 + 40;
  const f = writeJson(j);
  await t.rejects(CocoDataset.load({ annotationFile: f, imageDir: dir }), { code: 'ERR_MTPD_DATA', message: /images\[1\] \(id 11\) needs .*positive integer width and height \(at most 2147483647\) \[malformed-image-entry/ });
  const ds = await CocoDataset.load({ annotationFile: f, imageDir: dir, badData: 'skip' });
  t.equal(ds.bad.counts.get('malformed-image-entry'), 1);
  t.equal(ds.totalImages, 2);
});

t.test('category ids past int32 are refused where they are defined', async (t) => {
  const j = base();
  j.categories[0]!.id = 2 ** 32 + 7;
  await t.rejects(CocoDataset.load({ annotationFile: writeJson(j), imageDir: dir }), { code: 'ERR_MTPD_DATA', message: /categories\[0\] needs an integer id/ });
});

t.test('polygons within one image size of the image are kept', async (t) => {
  const j = base();
  j.annotations[0]!.segmentation = [[-100, -50, 200, 5, 30, 100]];
  const ds = await CocoDataset.load({ annotationFile: writeJson(j), imageDir: dir });
  t.equal(ds.annotationCount, 4);
});

for (const [name, edit, msg, kind] of badCases) {
  t.test(`bad data: ${name} (error, then counted skip)`, async (t) => {
    const j = base();
    edit(j);
    const f = writeJson(j);
    await t.rejects(CocoDataset.load({ annotationFile: f, imageDir: dir }), { code: 'ERR_MTPD_DATA', message: msg });
    const err = await CocoDataset.load({ annotationFile: f, imageDir: dir }).catch((e: Error) => e);
    t.match((err as Error).message, f, 'names the file');
    const ds = await CocoDataset.load({ annotationFile: f, imageDir: dir, badData: 'skip' });
    t.equal(ds.bad.counts.get(kind as never), 1);
    t.equal(ds.bad.total, 1);
    t.match(ds.bad.summary(), new RegExp(`skipped 1 bad item\\(s\\):\\n  ${kind}: 1 \\(e\\.g\\. `));
    t.equal(ds.annotationCount, 3, 'the bad annotation is dropped, the others stay');
  });
}

t.test('streams a large annotation file with compact storage', async (t) => {
  const f = path.join(dir, 'big.json');
  const nImages = 2000;
  const nAnn = 120_000;
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(f);
    out.on('error', reject);
    out.write('{"info": {"year": 2017}, "images": [');
    for (let i = 0; i < nImages; i++) out.write(`${i ? ',' : ''}{"id": ${i + 1}, "file_name": "${String(i + 1).padStart(12, '0')}.jpg", "width": 640, "height": 480}`);
    out.write('], "annotations": [\n');
    let chunk = '';
    for (let a = 0; a < nAnn; a++) {
      const x = a % 600;
      const y = (a * 7) % 440;
      chunk += `${a ? ',\n' : ''}{"segmentation": [[${x}.5, ${y}.25, ${x + 30}, ${y}, ${x + 30}, ${y + 30}, ${x}, ${y + 30}]], "area": 900, "iscrowd": 0, "image_id": ${(a % nImages) + 1}, "bbox": [${x}, ${y}, 30, 30], "category_id": ${1 + (a % 80)}, "id": ${a + 1}}`;
      if (chunk.length > 1 << 16) { out.write(chunk); chunk = ''; }
    }
    out.write(chunk);
    out.write('], "categories": [');
    for (let c = 1; c <= 80; c++) out.write(`${c > 1 ? ',' : ''}{"id": ${c}, "name": "c${c}", "supercategory": "s"}`);
    out.end(']}\n', () => resolve());
  });
  const t0 = Date.now();
  const ds = await CocoDataset.load({ annotationFile: f, imageDir: dir });
  const ms = Date.now() - t0;
  t.equal(ds.length, nImages);
  t.equal(ds.annotationCount, nAnn);
  const tr = ds.targets(4);
  t.equal(tr.labels.length, nAnn / nImages);
  t.same(Array.from(tr.annotationIds.subarray(0, 2)), [5, 2005]);
  t.same(tr.segmentations[0], [[4.5, 28.25, 34, 28, 34, 58, 4, 58]]);
  // columnar storage: ~130 bytes per annotation including 8 polygon coordinates (a JS object
  // per annotation with its arrays costs several hundred)
  t.ok(ds.byteSize / nAnn < 160, `bytes per annotation ${(ds.byteSize / nAnn).toFixed(1)}`);
  t.comment(`streamed ${nAnn} annotations in ${ms} ms`);
});

t.test('streamTopLevelJson element callbacks see every element in order', async (t) => {
  const f = writeJson({ a: [1, 'x', { b: [2] }, null, true], c: 3 });
  const seen: unknown[] = [];
  const other: [string, unknown][] = [];
  await streamTopLevelJson(f, { arrays: { a: (v, i) => seen.push([i, v]) }, other: (k, v) => other.push([k, v]) }, 5);
  t.same(seen, [[0, 1], [1, 'x'], [2, { b: [2] }], [3, null], [4, true]]);
  t.same(other, [['c', 3]]);
});
