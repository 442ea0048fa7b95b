import { existsSync } from 'node:fs';
import type { CommandModule } from 'yargs';

export const initCommand: CommandModule<object, { out: string; force: boolean; schema: boolean }> = {
  command: 'init [out]',
  describe: 'write an annotated default config (the paper\'s RetinaNet-R50 setting on COCO)',
  builder: (y) =>
    y
      .positional('out', { type: 'string', default: 'mtpd.yaml', describe: 'where to write it' })
      .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing file' })
      .option('schema', { type: 'boolean', default: false, describe: 'print the JSON Schema of the config instead' }),
  handler: async (argv) => {
    const { MtpdError } = await import('../errors.js');
    if (argv.schema) {
      const { configJsonSchema } = await import('../config/schema.js');
      process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
      return;
    }
    if (existsSync(argv.out) && !argv.force) throw new MtpdError('ERR_MTPD_CONFIG', `${argv.out} exists; pass --force to overwrite it`);
    const { annotatedConfigYaml } = await import('../config/init.js');
    const { writeFileAtomic } = await import('../weights/atomic.js');
    await writeFileAtomic(argv.out, [Buffer.from(annotatedConfigYaml(), 'utf8')]);
    process.stdout.write(`wrote ${argv.out}\n`);
  },
};
