import type { CommandModule } from 'yargs';
import { nonEmptyPath } from './paths.js';

interface OrdersArgs {
  config: string;
  set: string[];
  iterations?: number;
  k?: number;
  resume: boolean;
  quiet: boolean;
}

export const ordersCommand: CommandModule<object, OrdersArgs> = {
  command: 'orders',
  describe: "the paper's Table 2, small: the student distilled through every order of the pool's teachers (1..k of them) with a short budget each, every order's AP best first, and where the BGS order ranks",
  builder: (y) =>
    y
      .option('config', { type: 'string', coerce: nonEmptyPath('config'), demandOption: true, describe: 'run config (YAML or JSON); the run folder is shared with mtpd train (teachers, student, costs are reused)' })
      .option('set', { type: 'string', array: true, requiresArg: true, default: [] as string[], describe: 'override a config value: --set schedule.lr=0.02' })
      .option('iterations', { type: 'number', describe: 'steps per teacher, linear LR (default: a quarter of the stage schedule)' })
      .option('k', { type: 'number', describe: 'longest order (default: order.k of the config)' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted stage from its last complete checkpoint' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
      .check((a) => {
        for (const key of ['iterations', 'k'] as const) {
          const v = a[key];
          if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`--${key} must be a positive integer, got ${v}`);
        }
        return true;
      }),
  handler: async (argv) => {
    const { loadConfig } = await import('../config/load.js');
    const { runOrders, formatOrders } = await import('../train/orders.js');
    const { config } = await loadConfig(argv.config, argv.set);
    const ac = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('\nmtpd: stopping after the current step (a checkpoint will be written); press Ctrl-C again to exit at once\n');
      ac.abort();
      process.once('SIGINT', () => process.exit(130));
    });
    const r = await runOrders(config, {
      signal: ac.signal,
      resume: argv.resume,
      quiet: argv.quiet,
      ...(argv.iterations !== undefined ? { iterations: argv.iterations } : {}),
      ...(argv.k !== undefined ? { k: argv.k } : {}),
    });
    if (r.aborted) {
      process.stderr.write('mtpd: stopped before the end; continue with --resume\n');
      process.exitCode = 130;
      return;
    }
    process.stdout.write(`\n${formatOrders(r)}\n\nrun folder: ${r.output} (orders.json, orders.md)\n`);
  },
};
