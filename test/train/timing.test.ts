// Phase timings (src/train/timing.ts): each phase's wall and CPU seconds logged as it ends and
// kept, also when it throws; the table lists every phase and the total.
import t from 'tap';
import { PhaseTimer } from '../../src/train/timing.js';

t.test('phases are timed, logged and tabled', async (t) => {
  const lines: string[] = [];
  const timer = new PhaseTimer((l) => lines.push(l));
  // Busy for 50 ms of CPU time, however loaded the machine is.
  const spin = (ms: number) => {
    const c0 = process.cpuUsage();
    for (;;) {
      const c = process.cpuUsage(c0);
      if (c.user + c.system >= ms * 1e3) return;
    }
  };
  t.equal(await timer.time('busy', async () => (spin(50), 7)), 7, 'the phase returns its value');
  await timer.time('idle', () => new Promise((r) => setTimeout(r, 60)));
  await t.rejects(timer.time('failing', async () => {
    throw new Error('boom');
  }), /boom/);
  t.same(timer.entries.map((e) => e.phase), ['busy', 'idle', 'failing'], 'every phase kept, the failing one too');
  const [busy, idle] = timer.entries;
  t.ok(busy!.cpuS >= 0.05 && busy!.wallS >= 0.9 * busy!.cpuS, `a busy phase takes CPU time and as much wall time (${busy!.wallS} s, ${busy!.cpuS} s CPU)`);
  t.ok(idle!.wallS >= 0.055 && idle!.cpuS < idle!.wallS, `an idle phase takes wall time, little CPU (${idle!.wallS} s, ${idle!.cpuS} s CPU)`);
  t.equal(lines.length, 3);
  t.match(lines[0], /^time: busy: \d+\.\d s wall, \d+\.\d s CPU \(\d+\.\d s system\)$/);
  const table = timer.table();
  for (const p of ['busy', 'idle', 'failing', 'total']) t.match(table, new RegExp(`^${p} `, 'm'), `the table has ${p}`);
  const json = timer.toJSON();
  t.ok(json.total.wallS >= busy!.wallS + idle!.wallS, 'the total covers the phases');
});
