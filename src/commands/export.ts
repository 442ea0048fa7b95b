import type { CommandModule } from 'yargs';
import { nonEmptyPath } from './paths.js';

interface ExportArgs {
  weights: string;
  out: string;
  arch?: string;
  'num-classes'?: number;
  'width-mult'?: number;
  key?: string;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe: "write a detector's weights as a torch.save .pth that torchvision's builder loads strictly, or as safetensors",
  builder: (y) =>
    y
      .option('weights', { type: 'string', coerce: nonEmptyPath('weights'), demandOption: true, describe: 'input weights (.safetensors or torch.save .pth)' })
      .option('out', { type: 'string', demandOption: true, describe: 'output file: .pth / .pt (torch.save format, torch.load(f, weights_only=True) reads it) or .safetensors' })
      .option('arch', { type: 'string', describe: 'retinanet_resnet50_fpn, retinanet_resnet18_fpn, ... (default: the input\'s mtpd metadata)' })
      .option('num-classes', { type: 'number', describe: 'number of classes of the model (default: the input\'s mtpd metadata)' })
      .option('width-mult', { type: 'number', describe: 'width multiplier the model was built with (default: the metadata, else 1)' })
      .option('key', { type: 'string', describe: 'for .pth inputs that nest the state dict: its key (model, state_dict, ...)' })
      .check((a) => {
        const n = a['num-classes'];
        if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new Error(`--num-classes must be a positive integer, got ${n}`);
        const wm = a['width-mult'];
        if (wm !== undefined && !(Number.isFinite(wm) && wm > 0)) throw new Error(`--width-mult must be a positive number, got ${wm}`);
        return true;
      }),
  handler: async (argv) => {
    const { exportWeights } = await import('../export.js');
    const r = await exportWeights({
      weights: argv.weights,
      out: argv.out,
      ...(argv.arch !== undefined ? { arch: argv.arch } : {}),
      ...(argv['num-classes'] !== undefined ? { numClasses: argv['num-classes'] } : {}),
      ...(argv['width-mult'] !== undefined ? { widthMult: argv['width-mult'] } : {}),
      ...(argv.key !== undefined ? { key: argv.key } : {}),
    });
    process.stdout.write(`${argv.out}: ${r.arch}, ${r.numClasses} classes${r.widthMult !== 1 ? `, width ${r.widthMult}` : ''}, ${r.tensors} tensors (${r.format})\n`);
  },
};
