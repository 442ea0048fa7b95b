import type { CommandModule } from 'yargs';
import { nonEmptyPath } from './paths.js';

interface PredictArgs {
  arch: string;
  'num-classes': number;
  weights: string;
  'score-thresh'?: number;
  'min-size'?: number;
  'max-size'?: number;
  'width-mult'?: number;
  device: string;
  threads?: number;
  json: boolean;
  images: string[];
}

export const predictCommand: CommandModule<object, PredictArgs> = {
  command: 'predict <images..>',
  describe: 'detect objects in images with a trained detector',
  builder: (y) =>
    y
      .positional('images', { type: 'string', array: true, demandOption: true, describe: 'image files (JPEG, PNG, WebP, ...)' })
      .option('arch', { type: 'string', demandOption: true, describe: 'retinanet_resnet50_fpn, retinanet_resnet18_fpn, retinanet_swin_t_fpn, ..._v2' })
      .option('num-classes', { type: 'number', demandOption: true, describe: 'number of classes of the model (torchvision COCO: 91)' })
      .option('weights', { type: 'string', coerce: nonEmptyPath('weights'), demandOption: true, describe: 'weights file (.safetensors or torch.save .pth)' })
      .option('score-thresh', { type: 'number', describe: 'drop detections scoring below this (default 0.05)' })
      .option('min-size', { type: 'number', describe: 'resize the short side to this (default 800)' })
      .option('max-size', { type: 'number', describe: 'cap the long side at this (default 1333)' })
      .option('width-mult', { type: 'number', describe: 'width multiplier the model was built with (default 1)' })
      .option('device', { type: 'string', default: 'cpu', describe: 'cpu, cuda or cuda:N' })
      .option('threads', { type: 'number', describe: 'intra-op threads (default: all cores)' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON array of {file, bbox: [x, y, w, h], score, category_id}' })
      .check((a) => {
        const n = a['num-classes'];
        if (!Number.isInteger(n) || n < 1) throw new Error(`--num-classes must be a positive integer, got ${n}`);
        const st = a['score-thresh'];
        if (st !== undefined && !(st >= 0 && st <= 1)) throw new Error(`--score-thresh must be in 0..1, got ${st}`);
        const wm = a['width-mult'];
        if (wm !== undefined && !(Number.isFinite(wm) && wm > 0)) throw new Error(`--width-mult must be a positive number, got ${wm}`);
        for (const k of ['min-size', 'max-size'] as const) {
          const v = a[k];
          if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`--${k} must be a positive integer, got ${v}`);
        }
        return true;
      }),
  handler: async (argv) => {
    const { predictFiles } = await import('../predict.js');
    const results = await predictFiles({
      arch: argv.arch,
      numClasses: argv['num-classes'],
      weights: argv.weights,
      files: argv.images,
      device: argv.device,
      ...(argv.threads !== undefined ? { threads: argv.threads } : {}),
      ...(argv['score-thresh'] !== undefined ? { scoreThresh: argv['score-thresh'] } : {}),
      ...(argv['min-size'] !== undefined ? { minSize: argv['min-size'] } : {}),
      ...(argv['max-size'] !== undefined ? { maxSize: argv['max-size'] } : {}),
      ...(argv['width-mult'] !== undefined ? { widthMult: argv['width-mult'] } : {}),
    });
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(results)}\n`);
      return;
    }
    const byFile = new Map<string, typeof results>();
    for (const r of results) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
    for (const f of argv.images) {
      const rs = byFile.get(f) ?? [];
      process.stdout.write(`${f}: ${rs.length} detection${rs.length === 1 ? '' : 's'}\n`);
      for (const r of rs) {
        const [x, y, w, h] = r.bbox.map((v) => v.toFixed(1));
        process.stdout.write(`  class ${r.category_id}  score ${r.score.toFixed(3)}  box x=${x} y=${y} w=${w} h=${h}\n`);
      }
    }
  },
};
