import type { CommandModule } from 'yargs';

export const infoCommand: CommandModule<object, { json: boolean; threads?: number }> = {
  command: 'info',
  describe: 'print versions, devices, threads and where the addon and libtorch were loaded from',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .option('threads', { type: 'number', describe: 'intra-op threads (default: all cores)' }),
  handler: async (argv) => {
    const { systemInfo, formatSystemInfo } = await import('../runtime.js');
    const info = systemInfo({ threads: argv.threads });
    process.stdout.write(argv.json ? `${JSON.stringify(info, null, 2)}\n` : formatSystemInfo(info));
  },
};
