import type { CommandModule } from 'yargs';

interface TrainArgs {
  config: string;
  set: string[];
  baseline?: 'longer' | 'direct' | 'ensemble';
  resume: boolean;
  quiet: boolean;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'the whole pipeline: teachers, student, costs, BGS order, progressive distillation, baselines, report',
  builder: (y) =>
    y
      .option('config', { type: 'string', demandOption: true, describe: 'run config (YAML or JSON); mtpd init writes one' })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a config value: --set schedule.lr=0.02' })
      .option('baseline', { choices: ['longer', 'direct', 'ensemble'] as const, describe: 'run only this baseline (same budget as the curriculum)' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted stage from its last complete checkpoint' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' }),
  handler: async (argv) => {
    const { loadConfig } = await import('../config/load.js');
    const { train, formatResults, formatRunSummary } = await import('../train/pipeline.js');
    const { config } = await loadConfig(argv.config, argv.set);
    const ac = new AbortController();
    const stop = () => {
      process.stderr.write('\nmtpd: stopping after the current step (a checkpoint will be written); press Ctrl-C again to exit at once\n');
      ac.abort();
      process.once('SIGINT', () => process.exit(130));
    };
    process.once('SIGINT', stop);
    const report = await train(config, { signal: ac.signal, resume: argv.resume, quiet: argv.quiet, ...(argv.baseline ? { only: argv.baseline } : {}) });
    process.stdout.write(`\nteacher order: ${report.order.join(' -> ')}\n\n${formatRunSummary(report)}\n\nevery model:\n${formatResults(report.results)}\n\nrun folder: ${report.output}\n`);
    if (report.aborted) {
      process.stderr.write('mtpd: stopped before the end; continue with --resume\n');
      process.exitCode = 130;
    }
  },
};
