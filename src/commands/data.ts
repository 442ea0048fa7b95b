import type { Argv, CommandModule } from 'yargs';

interface SynthArgs {
  out: string;
  images: number;
  'val-images'?: number;
  size: number;
  seed: number;
  difficulty: 'hard' | 'clear';
  workers?: number;
  json: boolean;
}

interface CheckArgs {
  ann: string;
  images: string;
  'bad-data': 'error' | 'skip';
  decode: boolean;
  json: boolean;
}

const synthCommand: CommandModule<object, SynthArgs> = {
  command: 'synth',
  describe: 'write the synthetic shapes dataset (COCO format: PNGs, instances_train.json, instances_val.json)',
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'output folder' })
      .option('images', { type: 'number', default: 400, describe: 'training images' })
      .option('val-images', { type: 'number', describe: 'validation images (default: images / 4)' })
      .option('size', { type: 'number', default: 224, describe: 'longest image side; sides are drawn from [0.75*size, size]' })
      .option('seed', { type: 'number', default: 0, describe: 'random seed; the output is a pure function of it' })
      .option('difficulty', { choices: ['hard', 'clear'] as const, default: 'hard' as const, describe: "scene difficulty: 'hard' (clutter, occlusion, crowds, tiny objects) or 'clear' (the demo's)" })
      .option('workers', { type: 'number', describe: 'worker threads (default: cores, at most 4)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' }),
  handler: async (argv) => {
    const { writeSynthDataset } = await import('../data/synth.js');
    const t0 = Date.now();
    const tty = process.stderr.isTTY;
    const s = await writeSynthDataset({
      out: argv.out,
      images: argv.images,
      valImages: argv['val-images'],
      size: argv.size,
      seed: argv.seed,
      difficulty: argv.difficulty,
      workers: argv.workers,
      onProgress: tty ? (done, total) => process.stderr.write(`\r${done}/${total} images${done === total ? '\n' : ''}`) : undefined,
    });
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(s)}\n`);
      return;
    }
    for (const sp of s.splits) {
      process.stdout.write(
        `${sp.name}: ${sp.images} images, ${sp.annotations} annotations (small ${sp.small}, medium ${sp.medium}, large ${sp.large}, crowd ${sp.crowd}) -> ${sp.annotationFile}, ${sp.imageDir}/\n`,
      );
    }
    process.stdout.write(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  },
};

const checkCommand: CommandModule<object, CheckArgs> = {
  command: 'check',
  describe: 'read a COCO dataset and report what it holds and what is wrong with it',
  builder: (y) =>
    y
      .option('ann', { type: 'string', demandOption: true, describe: 'instances JSON' })
      .option('images', { type: 'string', demandOption: true, describe: 'image folder' })
      .option('bad-data', { choices: ['error', 'skip'] as const, default: 'skip' as const, describe: 'stop at the first problem or count them all' })
      .option('decode', { type: 'boolean', default: false, describe: 'also decode every image' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }),
  handler: async (argv) => {
    const { CocoDataset } = await import('../data/coco.js');
    const { prepareSample } = await import('../data/pipeline.js');
    const ds = await CocoDataset.load({ annotationFile: argv.ann, imageDir: argv.images, badData: argv['bad-data'] });
    if (argv.decode) {
      for (let i = 0; i < ds.length; i++) {
        const im = ds.image(i);
        const s = await prepareSample({ position: i, index: i, imageId: im.id, path: im.path, width: im.width, height: im.height, boxes: new Float32Array(0), labels: new Int32Array(0), segmentations: null, flip: false, resize: 'none', minSize: 1, maxSize: 1, output: 'uint8' });
        if (s.bad) ds.bad.record(s.bad.kind, s.bad.message);
      }
    }
    const report = { images: ds.length, annotations: ds.annotationCount, categories: ds.categories.toJSON(), skipped: ds.bad.toJSON() };
    if (argv.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      process.stdout.write(`${ds.length} images, ${ds.annotationCount} annotations, ${ds.categories.size} categories (${ds.categories.names.join(', ')})\n`);
      process.stdout.write(ds.bad.total ? `${ds.bad.summary()}\n` : 'no bad data found\n');
    }
    if (ds.bad.total) process.exitCode = 1;
  },
};

export const dataCommand: CommandModule<object, object> = {
  command: 'data <command>',
  describe: 'datasets: make the synthetic demo dataset, check a COCO dataset',
  builder: (y: Argv) => y.command(synthCommand).command(checkCommand).demandCommand(1),
  handler: () => {},
};
