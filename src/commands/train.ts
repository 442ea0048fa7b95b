import type { CommandModule } from 'yargs';
import { nonEmptyPath } from './paths.js';

interface TrainArgs {
  config: string;
  set: string[];
  baseline?: 'longer' | 'direct' | 'ensemble';
  jobs?: number;
  resume: boolean;
  quiet: boolean;
  nproc?: number;
  nnodes: number;
  'node-rank': number;
  'master-addr'?: string;
  'master-port'?: number;
}

/** The command line a worker of `--nproc` runs: this one without the launcher's options. */
function workerArgs(argv: string[]): string[] {
  const drop = new Set(['--nproc', '--nnodes', '--node-rank', '--master-addr', '--master-port']);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [key] = a.split('=', 1);
    if (drop.has(key as string)) {
      if (!a.includes('=')) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'the whole pipeline: teachers, student, costs, BGS order, progressive distillation, baselines, report',
  builder: (y) =>
    y
      .option('config', { type: 'string', coerce: nonEmptyPath('config'), demandOption: true, describe: 'run config (YAML or JSON); mtpd init writes one' })
      .option('set', { type: 'string', array: true, requiresArg: true, default: [] as string[], describe: 'override a config value: --set schedule.lr=0.02' })
      .option('baseline', { choices: ['longer', 'direct', 'ensemble'] as const, describe: 'run only this baseline (same budget as the curriculum)' })
      .option('jobs', { type: 'number', describe: 'train this many independent parts at once (the curriculum, each baseline), each in its own process: config jobs' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted stage from its last complete checkpoint (with any number of processes)' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
      .option('nproc', { type: 'number', describe: 'data-parallel: worker processes on this machine (one per GPU with device cuda); data.batchSize is per process' })
      .option('nnodes', { type: 'number', default: 1, describe: 'data-parallel: machines in the job (each runs mtpd train --nproc N)' })
      .option('node-rank', { type: 'number', default: 0, describe: "data-parallel: this machine's index, 0..nnodes-1" })
      .option('master-addr', { type: 'string', describe: "data-parallel: address of node 0, which hosts the rendezvous (default 127.0.0.1, or MASTER_ADDR)" })
      .option('master-port', { type: 'number', describe: 'data-parallel: rendezvous port on node 0 (default 29500, or MASTER_PORT)' })
      .check((a) => {
        for (const key of ['nproc', 'nnodes', 'jobs'] as const) {
          const v = a[key];
          if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`--${key} must be a positive integer, got ${v}`);
        }
        const nr = a['node-rank'];
        if (!Number.isInteger(nr) || nr < 0 || nr >= a.nnodes) throw new Error(`--node-rank must be in 0..${a.nnodes - 1}, got ${nr}`);
        if (a.nnodes > 1 && a.nproc === undefined) throw new Error('--nnodes needs --nproc (worker processes per machine)');
        return true;
      }),
  handler: async (argv) => {
    const { loadConfig } = await import('../config/load.js');
    const { config } = await loadConfig(argv.config, argv.set);
    if (argv.jobs !== undefined) config.jobs = argv.jobs;
    if (argv.nproc !== undefined && !process.env.WORLD_SIZE) {
      // The launcher: N workers of this very command, torchrun style.
      const { launch } = await import('../dist/launch.js');
      const r = await launch({
        nproc: argv.nproc,
        nnodes: argv.nnodes,
        nodeRank: argv['node-rank'],
        masterAddr: argv['master-addr'] ?? process.env.MASTER_ADDR ?? '127.0.0.1',
        masterPort: argv['master-port'] ?? Number(process.env.MASTER_PORT ?? 29500),
        args: [process.argv[1] as string, ...workerArgs(process.argv.slice(2))],
        graceMs: Math.min(config.dist.heartbeatTimeout, config.dist.timeout) * 1000 + 5000,
      });
      process.exitCode = r.code;
      return;
    }
    const { train, formatResults, formatRunSummary } = await import('../train/pipeline.js');
    const { distEnv, initDist, endDist, isMainRank } = await import('../dist/context.js');
    const env = distEnv();
    if (env && env.worldSize > 1) {
      await initDist(env, { timeoutMs: config.dist.timeout * 1000, heartbeatTimeoutMs: config.dist.heartbeatTimeout * 1000, cuda: config.device.startsWith('cuda') });
      // One GPU per process: cuda means cuda:LOCAL_RANK.
      if (config.device === 'cuda') config.device = `cuda:${env.localRank}`;
    }
    const ac = new AbortController();
    const stop = () => {
      if (isMainRank()) process.stderr.write('\nmtpd: stopping after the current step (a checkpoint will be written); press Ctrl-C again to exit at once\n');
      ac.abort();
      process.once('SIGINT', () => process.exit(130));
    };
    process.once('SIGINT', stop);
    // Known before train(): the job ends inside it (every rank leaves before rank 0 writes the report).
    const main = isMainRank();
    const report = await train(config, { signal: ac.signal, resume: argv.resume, quiet: argv.quiet, ...(argv.baseline ? { only: argv.baseline } : {}) });
    await endDist(true);
    if (main) process.stdout.write(`\nteacher order: ${report.order.join(' -> ')}\n\n${formatRunSummary(report)}\n\nevery model:\n${formatResults(report.results)}\n\nrun folder: ${report.output}\n`);
    if (report.aborted) {
      process.stderr.write('mtpd: stopped before the end; continue with --resume\n');
      process.exitCode = 130;
    }
  },
};
