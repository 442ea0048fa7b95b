/**
 * The `mtpd init` config on mmdetection checkpoints: the student (retinanet_r50_fpn) and the Swin-T
 * teacher (retinanet_swin-t-p4-w7_fpn) of the template, as seeded tiny checkpoints in mmdetection's
 * layout (scripts/golden/mmdet_retinanet.py, on the synthetic dataset's 8 classes), converted with
 * `mtpd import`; the template's options are what the import prints, and the pipeline runs on the
 * converted files (evaluation, cost matrix, order, a distillation stage).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { haveAddon, tempDir } from '../helpers.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zoo');

t.test("mtpd init's student and Swin-T teacher from mmdetection checkpoints: converted, then the pipeline runs", async (t) => {
  if (!haveAddon(t)) return;
  const { templateConfig } = await import('../../src/config/init.js');
  const { importMmdet } = await import('../../src/zoo/import.js');
  const { parseConfig } = await import('../../src/config/load.js');
  const { train } = await import('../../src/train/pipeline.js');
  const dir = tempDir(t);
  const tpl = templateConfig();
  const swin = tpl.teachers!.find((m) => m.name === 'swin_t')!;
  const convert = async (file: string, model: { arch: string; options?: Record<string, unknown> }) => {
    const out = join(dir, file.replace(/\.pth$/, '.safetensors'));
    const r = await importMmdet(join(fixtures, file), out);
    t.equal(r.arch, model.arch, `${file}: the template's architecture`);
    t.same([r.missing, r.unexpected], [[], []], `${file}: every tensor in place`);
    const { width_mult, ...rest } = r.options;
    t.same(rest, model.options, `${file}: the template's options are what mtpd import prints`);
    t.equal(r.classes, 'dataset', `${file}: its CLASSES are the dataset's`);
    return { weights: out, options: r.options };
  };
  const student = await convert('mmdet_retinanet_r50_tiny_synth.pth', tpl.student!);
  const teacher = await convert('mmdet_retinanet_swin_t_tiny_synth.pth', swin);
  const config = parseConfig({
    output: join(dir, 'run'),
    threads: 0,
    seed: 1,
    data: { root: join(dir, 'data'), minSize: 64, maxSize: 96, batchSize: 2, workers: 0, synth: { images: 6, size: 64, seed: 2 } },
    student: { ...tpl.student, ...student, classes: 'dataset' },
    teachers: [{ ...swin, ...teacher, classes: 'dataset' }],
    schedule: { iterations: 2, lr: 0.002, warmupIterations: 1 },
    distill: tpl.distill,
    order: { method: 'bgs', k: 1, costs: { trainImages: 4, valImages: 2 } },
    evaluation: { batchSize: 3 },
    baselines: [],
  });
  const report = await train(config, { quiet: true, log: () => undefined });
  const names = report.results.map((r) => r.name);
  t.ok(names.includes('student') && names.includes('swin_t'), 'both converted models are evaluated');
  t.same(report.order, ['swin_t']);
  t.ok(names.includes('mtpd1-swin_t'), 'the student is distilled from the converted Swin-T');
  for (const r of report.results) t.equal(r.stats.length, 12, `${r.name}: COCO stats`);
});
