import type { CommandModule } from 'yargs';
import { nonEmptyPath } from './paths.js';

interface DemoArgs {
  out: string;
  retrain: boolean;
  threads: number;
  'retrain-only'?: string[];
  weights?: string;
  resume: boolean;
  quiet: boolean;
  task: 'detection' | 'instance';
}

export const demoCommand: CommandModule<object, DemoArgs> = {
  command: 'demo',
  describe: 'the whole method on the built-in demo dataset: shipped teachers, BGS order, progressive distillation and the baselines, ending with one table',
  builder: (y) =>
    y
      .option('out', { type: 'string', default: 'mtpd-demo', describe: 'working folder (data/, run/, weights/)' })
      .option('retrain', { type: 'boolean', default: false, describe: 'train the teachers and the off-the-shelf student here first (as the shipped weights were made) instead of using the shipped weights' })
      .option('retrain-only', { type: 'string', array: true, describe: 'with --retrain: train only these pool models and stop (to spread --retrain over processes)' })
      .option('weights', { type: 'string', coerce: nonEmptyPath('weights'), describe: 'folder with the pool\'s weights (default: the shipped demo/weights)' })
      .option('task', { choices: ['detection', 'instance'] as const, default: 'detection' as const, describe: 'detection: RetinaNet students; instance: a Mask R-CNN student taught by the same RetinaNet pool (box and mask AP)' })
      .option('threads', { type: 'number', default: 0, describe: 'intra-op threads (0: all cores)' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted demo from its last complete checkpoint' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' }),
  handler: async (argv) => {
    const { runDemo } = await import('../demo.js');
    const ac = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('\nmtpd: stopping after the current step (a checkpoint will be written); press Ctrl-C again to exit at once\n');
      ac.abort();
      process.once('SIGINT', () => process.exit(130));
    });
    const r = await runDemo({ out: argv.out, retrain: argv.retrain, threads: argv.threads, ...(argv['retrain-only'] ? { retrainOnly: argv['retrain-only'] } : {}), ...(argv.weights ? { weightsDir: argv.weights } : {}), resume: argv.resume, quiet: argv.quiet, task: argv.task, signal: ac.signal });
    process.stdout.write(`\nteacher order (BGS): ${r.order.join(' -> ')}\n\n${r.summary}\n\nrun folder: ${r.output} (report.md, metrics.jsonl, costs.png, loss.png, ap.png)\n`);
    if (r.aborted) {
      process.stderr.write('mtpd: stopped before the end; continue with mtpd demo --resume\n');
      process.exitCode = 130;
    }
  },
};
