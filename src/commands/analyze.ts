import type { CommandModule } from 'yargs';

interface AnalyzeArgs {
  run: string;
  subset: number;
  grid: number;
  extent: number;
  radius: number;
  directions: number;
  seed: number;
  iterations: number;
  threads?: number;
  out?: string;
  'skip-landscape': boolean;
  quiet: boolean;
  json: boolean;
}

export const analyzeCommand: CommandModule<object, AnalyzeArgs> = {
  command: 'analyze <run>',
  describe:
    "the paper's generalization analysis on a finished run folder: training detection loss (eval mode, fixed training subset) and validation AP per stage, loss landscapes around the progressive and the longer-trained student (1-D and 2-D, filter-normalized directions), sharpness (largest Hessian eigenvalue, loss increase at a radius), and whether the paper's three observations hold (report.md, analysis.json and plots in RUN/analysis)",
  builder: (y) =>
    y
      .positional('run', { type: 'string', demandOption: true, describe: 'run folder of mtpd train or mtpd demo (config.yaml, report.json, models/, eval/)' })
      .option('subset', { type: 'number', default: 32, describe: 'training images the losses are measured on' })
      .option('grid', { type: 'number', default: 9, describe: 'the 2-D landscape is grid x grid points; the 1-D slice 2 grid - 1' })
      .option('extent', { type: 'number', default: 0.5, describe: 'the slices span [-extent, extent] along each direction (1: as large as each filter)' })
      .option('radius', { type: 'number', default: 0.1, describe: 'radius of the mean loss increase' })
      .option('directions', { type: 'number', default: 8, describe: 'random directions of the mean loss increase' })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the subset draw and of the directions' })
      .option('iterations', { type: 'number', default: 10, describe: 'power iterations (Hessian-vector products) for the largest eigenvalue' })
      .option('threads', { type: 'number', describe: 'libtorch threads (default: the run config\'s)' })
      .option('out', { type: 'string', describe: 'output folder (default RUN/analysis)' })
      .option('skip-landscape', { type: 'boolean', default: false, describe: 'only the per-stage table and its figure' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
      .option('json', { type: 'boolean', default: false, describe: 'print analysis.json instead of the report' })
      .check((a) => {
        for (const key of ['subset', 'grid', 'directions', 'iterations', 'threads'] as const) {
          const v = a[key];
          if (v !== undefined && (!Number.isInteger(v) || v < (key === 'grid' ? 2 : 1))) throw new Error(`--${key} must be an integer >= ${key === 'grid' ? 2 : 1}, got ${v}`);
        }
        if (!Number.isInteger(a.seed) || a.seed < 0) throw new Error(`--seed must be an integer >= 0, got ${a.seed}`);
        for (const key of ['extent', 'radius'] as const) if (!(a[key] > 0)) throw new Error(`--${key} must be a positive number, got ${a[key]}`);
        return true;
      }),
  handler: async (argv) => {
    const { analyze, formatAnalysisMarkdown } = await import('../analyze/index.js');
    const r = await analyze(argv.run, {
      subset: argv.subset,
      grid: argv.grid,
      extent: argv.extent,
      radius: argv.radius,
      directions: argv.directions,
      seed: argv.seed,
      iterations: argv.iterations,
      skipLandscape: argv['skip-landscape'],
      quiet: argv.quiet,
      ...(argv.threads !== undefined ? { threads: argv.threads } : {}),
      ...(argv.out !== undefined ? { out: argv.out } : {}),
    });
    process.stdout.write(argv.json ? `${JSON.stringify(r, null, 1)}\n` : `${formatAnalysisMarkdown(r)}\nwritten to ${r.out} (report.md, analysis.json, ${r.plots.filter((p) => p.endsWith('.png')).join(', ')})\n`);
  },
};
