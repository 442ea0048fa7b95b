/** Data-parallel: a killed rank is named by the others (see common.ts). */
import t, { type Test } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointManager } from '../../src/train/checkpoint.js';
import { haveAddon } from '../helpers.js';
import { config, port, run, setup, writeConfig } from './common.js';

async function stopOneRank(t: Test, signal: 'SIGKILL' | 'SIGSTOP'): Promise<void> {
  const { dir, teachers, data } = await setup(t);
  const out5 = join(dir, 'five');
  const five = writeConfig(dir, 'five', config(dir, data, teachers, { batchSize: 2, output: out5, iterations: 400 }));
  const mp = String(port());
  const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: mp });
  const rank0 = run(['train', '--config', five, '--quiet'], env(0));
  const rank1 = run(['train', '--config', five, '--quiet'], env(1));
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      const c = join(out5, 'checkpoints');
      if ((existsSync(c) && readdirSync(c).some((f) => f.startsWith('train_student_'))) || rank0.child.exitCode !== null) {
        clearInterval(iv);
        resolve();
      }
    }, 200);
  });
  const stoppedAt = Date.now();
  rank1.child.kill(signal);
  const timer = setTimeout(() => rank0.child.kill('SIGKILL'), 60_000);
  const r0 = await rank0.done;
  clearTimeout(timer);
  rank1.child.kill('SIGKILL');
  await rank1.done;
  const secs = (Date.now() - stoppedAt) / 1000;
  const what = signal === 'SIGKILL' ? 'dies' : 'hangs (SIGSTOP)';
  t.not(r0.code, 0, `rank 0 fails when rank 1 ${what}`);
  t.equal(r0.signal, null, 'rank 0 ends by itself (not killed by the test)');
  t.match(r0.out, /rank 1 stopped/, `rank 0's error names rank 1${/rank 1 stopped/.test(r0.out) ? '' : `\n${r0.out.slice(-1500)}`}`);
  t.match(r0.out, /ERR_MTPD_DIST/, 'with the distributed error code');
  // dist.heartbeatTimeout is 5 s (common.ts); a dead peer's sockets close at once.
  t.ok(secs < 30, `within the heartbeat timeout, not the 60 s collective timeout (${secs.toFixed(1)} s)`);
  // The watchdog ends the process at once (no teardown), yet the last checkpoint is whole: a
  // checkpoint is renamed into place only when complete, and last_checkpoint names it.
  const last = await new CheckpointManager(out5, 2).loadLast();
  t.equal((last?.state as { stage?: string } | undefined)?.stage, 'train:student', `the last checkpoint is complete and loads (${last?.name ?? 'none'})`);
  if (last) t.ok((await last.weights('model')).size > 0, 'with its weights');
}

t.test('data-parallel: killing one rank stops the other with an error naming it', async (t) => {
  if (!haveAddon(t)) return;
  await stopOneRank(t, 'SIGKILL');
});

t.test('data-parallel: a hung rank (SIGSTOP) stops the other through the heartbeat watchdog', async (t) => {
  if (!haveAddon(t)) return;
  await stopOneRank(t, 'SIGSTOP');
});
