import type { CommandModule } from 'yargs';

interface EvalArgs {
  gt: string;
  dets: string;
  'iou-type': 'bbox' | 'segm';
  json: boolean;
  strict: boolean;
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'COCO evaluation of a results file (identical to pycocotools COCOeval)',
  builder: (y) =>
    y
      .option('gt', { type: 'string', demandOption: true, describe: 'ground truth, COCO instances JSON' })
      .option('dets', { type: 'string', demandOption: true, describe: 'detections, COCO results JSON (an array)' })
      .option('iou-type', { choices: ['bbox', 'segm'] as const, default: 'bbox' as const, describe: 'what IoU is computed on' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object {stats, perCategory, ignoredCategories}' })
      .option('strict', { type: 'boolean', default: false, describe: 'refuse detections of categories the ground truth does not list, and ground-truth annotations of images or categories it does not list (default: leave them out with a warning, as pycocotools does)' }),
  handler: async (argv) => {
    const { evaluateFiles, formatSummary, ignoredCategoriesWarning, ignoredAnnotationsWarning } = await import('../eval/index.js');
    const r = evaluateFiles(argv.gt, argv.dets, { iouType: argv['iou-type'], unknownCategories: argv.strict ? 'error' : 'ignore' });
    const gtWarning = ignoredAnnotationsWarning(r.ignoredAnnotations, argv.gt);
    if (gtWarning) process.stderr.write(`${gtWarning} (--strict refuses them)\n`);
    const warning = ignoredCategoriesWarning(r.ignoredCategories, argv.dets);
    if (warning) process.stderr.write(`${warning} (--strict refuses them)\n`);
    if (argv.json) {
      const perCategory: Record<string, unknown> = {};
      for (const [id, c] of Object.entries(r.perCategory)) perCategory[id] = { name: c.name, ...c.stats };
      process.stdout.write(`${JSON.stringify({ stats: r.stats, perCategory, ignoredCategories: r.ignoredCategories ?? {} })}\n`);
      return;
    }
    let text = formatSummary(r);
    const rows = Object.entries(r.perCategory);
    const w = Math.max(8, ...rows.map(([, c]) => c.name.length));
    text += `\nper category (AP @[ IoU=0.50:0.95 | area=all | maxDets=100 ]):\n`;
    for (const [id, c] of rows) {
      const ap = c.stats.AP;
      text += `  ${id.padStart(5)} ${c.name.padEnd(w)} ${ap < 0 ? '    -' : ap.toFixed(3)}\n`;
    }
    process.stdout.write(text);
  },
};
