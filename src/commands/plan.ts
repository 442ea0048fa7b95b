import type { CommandModule } from 'yargs';

interface PlanArgs {
  costs: string;
  student: string;
  k?: number;
  json: boolean;
}

export const planCommand: CommandModule<object, PlanArgs> = {
  command: 'plan',
  describe: 'order the teachers by Backward Greedy Selection over an adaptation-cost matrix',
  builder: (y) =>
    y
      .option('costs', { type: 'string', demandOption: true, describe: 'costs.json: {"models": {NAME: {"ap": n}}, "costs": {A: {B: d(A->B)}}}' })
      .option('student', { type: 'string', demandOption: true, describe: 'the student model (one of models)' })
      .option('k', { type: 'number', describe: 'longest teacher sequence (default: the whole pool)' })
      .option('json', { type: 'boolean', default: false, describe: 'print {"order": [...]} only' })
      .check((a) => {
        if (a.k !== undefined && (!Number.isInteger(a.k) || a.k < 1)) throw new Error(`--k must be a positive integer, got ${a.k}`);
        return true;
      }),
  handler: async (argv) => {
    const { readCostTable } = await import('../order/costs-file.js');
    const { backwardGreedySelection, orderByAp } = await import('../order/bgs.js');
    const table = await readCostTable(argv.costs);
    const result = backwardGreedySelection(table, argv.student, argv.k);
    if (argv.json) {
      process.stdout.write(`${JSON.stringify({ order: result.order })}\n`);
      return;
    }
    const rows = result.order.map((t, i) => {
      const next = result.order[i + 1];
      const step = result.steps.find((s) => s.teacher === t);
      return [String(i + 1), t, (table.models[t]?.ap ?? NaN).toFixed(3), next ?? '(final)', step?.cost?.toPrecision(4) ?? '-', step?.studentCost?.toPrecision(4) ?? '-'];
    });
    const head = ['stage', 'teacher', 'AP', 'next', 'd(teacher->next)', 'd(student->next)'];
    const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
    const fmt = (r: string[]) => r.map((v, c) => v.padEnd(widths[c] as number)).join('  ');
    const why = { k: `reached k=${argv.k}`, pool: 'the pool is exhausted', 'student-closer': 'the student is closer to the next teacher than any remaining teacher' }[result.stop];
    process.stdout.write(
      `${fmt(head)}\n${rows.map(fmt).join('\n')}\n\nBGS order for student ${argv.student}: ${result.order.join(' -> ')} (stopped: ${why})\n` +
        `order by AP (for comparison): ${orderByAp(table, argv.student, argv.k ?? result.order.length).join(' -> ')}\n`,
    );
  },
};
