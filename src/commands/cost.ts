import type { CommandModule } from 'yargs';
import { nonEmptyPath } from './paths.js';

interface CostArgs {
  config: string;
  set: string[];
  fitter: 'closed-form' | 'sgd' | 'both' | undefined;
}

export const costCommand: CommandModule<object, CostArgs> = {
  command: 'cost',
  describe: "the adaptation-cost matrix of a config's student and teachers: costs.json and a heatmap in the run folder",
  builder: (y) =>
    y
      .option('config', { type: 'string', coerce: nonEmptyPath('config'), demandOption: true, describe: 'run config (YAML or JSON)' })
      .option('set', { type: 'string', array: true, requiresArg: true, default: [] as string[], describe: 'override a config value: --set order.costs.fitter=sgd' })
      .option('fitter', { choices: ['closed-form', 'sgd', 'both'] as const, describe: 'which fitter (default: order.costs.fitter); both compares them' }),
  handler: async (argv) => {
    const { loadConfig } = await import('../config/load.js');
    const { setThreads } = await import('../runtime.js');
    const { runCosts, rankAgreement } = await import('../order/run-costs.js');
    const { config } = await loadConfig(argv.config, argv.set);
    setThreads(config.threads);
    const { ampWarning } = await import('../train/amp.js');
    const ampSlow = ampWarning(config);
    if (ampSlow) process.stderr.write(`warning: ${ampSlow}\n`);
    const fitters = argv.fitter === 'both' ? (['closed-form', 'sgd'] as const) : argv.fitter ? [argv.fitter] : [config.order.costs.fitter];
    const r = await runCosts(config, { fitters: [...fitters] });
    const names = [config.student.name, ...config.teachers.map((t) => t.name)];
    for (const [fitter, m] of Object.entries(r.matrices)) {
      const w = Math.max(8, ...names.map((n) => n.length));
      const head = ['d(row -> col)'.padEnd(w + 6), ...names.map((n) => n.padStart(w))].join(' ');
      const rows = names.map((a) => [a.padEnd(w + 6), ...names.map((b) => (a === b ? '-' : (m.costs[a]?.[b]?.toPrecision(4) ?? '?')).padStart(w))].join(' '));
      process.stdout.write(`\n${fitter} (features ${m.seconds.features.toFixed(1)} s, fits ${m.seconds.fit.toFixed(1)} s)\n${head}\n${rows.join('\n')}\n`);
      process.stdout.write(`AP: ${names.map((n) => `${n} ${(m.models[n]?.ap ?? 0).toFixed(4)}`).join(', ')}\n`);
    }
    if (r.matrices['closed-form'] && r.matrices.sgd) {
      process.stdout.write(`rank agreement of the two fitters (Spearman): ${rankAgreement(r.matrices['closed-form'], r.matrices.sgd).toFixed(3)}\n`);
    }
    process.stdout.write(`\nBGS order (k=${config.order.k}): ${r.order.join(' -> ')}\nwrote ${r.files.join(', ')}\n`);
  },
};
