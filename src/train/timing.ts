/**
 * Where a run's time goes: the wall-clock and CPU seconds (user + system, every thread of the
 * process) of each phase of the pipeline (the dataset, each model's evaluation, the cost matrix,
 * each stage's training and evaluation, the bootstrap, the report), logged as each phase ends and
 * kept in `<output>/timings.json` with the whole run's table. A phase skipped because its result
 * already exists in the run folder is not timed (it took no time in this run).
 */
import process from 'node:process';

export interface PhaseTime {
  phase: string;
  /** Wall-clock seconds. */
  wallS: number;
  /** CPU seconds of the process (user + system) over the phase. */
  cpuS: number;
  /** System (kernel) CPU seconds: page faults, file writes, thread wake-ups. */
  sysS: number;
}

export class PhaseTimer {
  readonly entries: PhaseTime[] = [];
  /** Other processes of the run (config jobs: one per part), their whole times; their CPU counts in the total. */
  readonly processes: PhaseTime[] = [];
  private readonly started = { wall: process.hrtime.bigint(), cpu: process.cpuUsage() };

  constructor(private readonly log: (line: string) => void = () => undefined) {}

  /** Runs `fn` as phase `phase`: its times are logged and kept however it ends. */
  async time<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    const w0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    try {
      return await fn();
    } finally {
      const c = process.cpuUsage(c0);
      const e: PhaseTime = { phase, wallS: Number(process.hrtime.bigint() - w0) / 1e9, cpuS: (c.user + c.system) / 1e6, sysS: c.system / 1e6 };
      this.entries.push(e);
      this.log(`time: ${phase}: ${fmt(e)}`);
    }
  }

  /** A process of the run that ran beside this one (its own phases were logged as it ran). */
  addProcess(name: string, total: PhaseTime): void {
    this.processes.push({ ...total, phase: name });
  }

  /** The whole run so far (from the timer's creation), with the CPU time of its other processes. */
  total(): PhaseTime {
    const c = process.cpuUsage(this.started.cpu);
    const others = this.processes.reduce((a, p) => ({ cpuS: a.cpuS + p.cpuS, sysS: a.sysS + p.sysS }), { cpuS: 0, sysS: 0 });
    return { phase: 'total', wallS: Number(process.hrtime.bigint() - this.started.wall) / 1e9, cpuS: (c.user + c.system) / 1e6 + others.cpuS, sysS: c.system / 1e6 + others.sysS };
  }

  /** One line per phase, then the total and what no phase covered (setup, logging, ...). */
  table(): string {
    const all = this.total();
    const covered = this.entries.reduce((s, e) => s + e.wallS, 0);
    const rows = [...this.entries, ...this.processes, all];
    const w = Math.max(5, ...rows.map((r) => r.phase.length));
    const line = (r: PhaseTime) => `${r.phase.padEnd(w)}  ${r.wallS.toFixed(1).padStart(7)}  ${r.cpuS.toFixed(1).padStart(7)}  ${r.sysS.toFixed(1).padStart(7)}  ${((100 * r.wallS) / Math.max(all.wallS, 1e-9)).toFixed(0).padStart(4)}%`;
    const head = `${'phase'.padEnd(w)}  ${'wall s'.padStart(7)}  ${'CPU s'.padStart(7)}  ${'sys s'.padStart(7)}  ${'wall'.padStart(5)}`;
    const within = this.processes.length ? ' (the processes ran within the phases)' : '';
    return [head, '-'.repeat(head.length), ...rows.map(line), `(${(all.wallS - covered).toFixed(1)} s of wall time outside the phases${within})`].join('\n');
  }

  toJSON(): { phases: PhaseTime[]; processes?: PhaseTime[]; total: PhaseTime } {
    return { phases: this.entries, ...(this.processes.length ? { processes: this.processes } : {}), total: this.total() };
  }
}

function fmt(e: PhaseTime): string {
  return `${e.wallS.toFixed(1)} s wall, ${e.cpuS.toFixed(1)} s CPU (${e.sysS.toFixed(1)} s system)`;
}
