/**
 * The process of one part of a run with `jobs` > 1 (parallel-stages.ts): it receives the run's
 * config and its part, runs train() for that part alone and sends back its events, how it ended
 * and its phase times. Ctrl-C reaches the whole process group: the part ignores SIGINT and stops
 * when the parent tells it (after its current step, a checkpoint written), or when the parent
 * goes away.
 */
import process from 'node:process';
import type { PartMessage, PartRequest } from './parallel-stages.js';
import { PhaseTimer } from './timing.js';

const send = (m: PartMessage) => new Promise<void>((resolve) => (process.connected ? process.send?.(m, undefined, {}, () => resolve()) : resolve()));

process.on('SIGINT', () => undefined);
const ac = new AbortController();
process.on('disconnect', () => ac.abort());

process.once('message', (req: PartRequest) => {
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') ac.abort();
  });
  void (async () => {
    try {
      const { train } = await import('./pipeline.js');
      const timer = new PhaseTimer((s) => process.stderr.write(`${s}\n`));
      const report = await train(req.config, {
        only: req.part,
        part: true,
        resume: req.resume,
        signal: ac.signal,
        timer,
        onEvent: (event) => void send({ type: 'event', event }),
      });
      const t = timer.toJSON();
      await send({ type: 'done', aborted: report.aborted, phases: t.phases, total: t.total });
    } catch (err) {
      const e = err as Error & { code?: string };
      // Stopped (the parent asked): a checkpoint was written, as a stopped sequential run ends.
      if (e.code === 'ERR_MTPD_ABORTED') {
        await send({ type: 'done', aborted: true, phases: [], total: { phase: 'total', wallS: 0, cpuS: 0, sysS: 0 } });
        process.disconnect?.();
        return;
      }
      await send({ type: 'error', message: e.message, ...(typeof e.code === 'string' ? { code: e.code } : {}) });
      process.exitCode = 1;
    }
    process.disconnect?.();
  })();
});
