import type { CommandModule } from 'yargs';

interface ImportArgs {
  checkpoint: string;
  out: string;
  json: boolean;
}

export const importCommand: CommandModule<object, ImportArgs> = {
  command: 'import <checkpoint>',
  describe: "convert an mmdetection checkpoint (RetinaNet, Mask R-CNN, Cascade Mask R-CNN: its model zoo's .pth) or a torchvision Mask/Faster R-CNN state dict (v1 or _v2) to safetensors in mtpd's names, printing what it found",
  builder: (y) =>
    y
      .positional('checkpoint', { type: 'string', demandOption: true, describe: 'mmdetection checkpoint ({meta, state_dict} .pth) or torchvision two-stage state dict (.pth)' })
      .option('out', { type: 'string', demandOption: true, describe: 'output .safetensors' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object instead of text' }),
  handler: async (argv) => {
    const { importCheckpoint } = await import('../zoo/import.js');
    const r = await importCheckpoint(argv.checkpoint, argv.out);
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      return;
    }
    const lines = [
      `${argv.checkpoint}: ${r.source === 'torchvision' ? 'torchvision' : 'mmdetection'} ${r.arch.startsWith('retinanet') ? 'RetinaNet' : 'two-stage'}, ${r.arch} (${r.numClasses} classes${r.classNames ? `: ${r.classNames.slice(0, 5).join(', ')}${r.classNames.length > 5 ? ', ...' : ''}` : ''})`,
      `  options: ${JSON.stringify(r.options)}`,
      `  loaded ${r.loaded} tensors (${r.ignored} bookkeeping tensors skipped: num_batches_tracked, relative_position_index); missing: ${r.missing.length ? r.missing.join(', ') : 'none'}; unexpected: ${r.unexpected.length ? r.unexpected.join(', ') : 'none'}`,
      `  wrote ${argv.out}; as a teacher: { arch: ${r.arch}, weights: ${argv.out}, classes: ${r.classes}, options: ${JSON.stringify(r.options)} }`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
