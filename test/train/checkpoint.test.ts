import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../src/native.js';
import { tensor } from '../../src/tensor.js';
import { CheckpointManager } from '../../src/train/checkpoint.js';
import { tempDir } from '../helpers.js';

const weights = (v: number) => ({ student: new Map([['w', tensor('float32', [3], [v, v + 1, v + 2])]]) });

t.test('save, list, load the last; stage-end checkpoints survive pruning', async (t) => {
  const run = tempDir(t);
  const ck = new CheckpointManager(run, 2);
  t.equal(await ck.loadLast(), null);
  await ck.save('stage1_end', { weights: weights(0), state: { stage: 1, iter: 10 }, permanent: true });
  for (let i = 1; i <= 4; i++) await ck.save(`stage2_iter${i}`, { weights: weights(i), state: { stage: 2, iter: i } });
  t.same(await ck.list(), ['stage1_end', 'stage2_iter3', 'stage2_iter4']);
  const last = await ck.loadLast();
  t.equal(last?.name, 'stage2_iter4');
  t.same(last?.state, { stage: 2, iter: 4 });
  t.same(Array.from(((await last?.weights('student'))?.get('w')?.data ?? []) as ArrayLike<number>), [4, 5, 6]);
  await t.rejects(async () => last?.weights('nope'), { message: /has no weight set "nope"/ });
  t.equal(readFileSync(ck.pointer, 'utf8').trim(), 'stage2_iter4');
});

t.test('a damaged newest checkpoint falls back to the newest complete one', async (t) => {
  const run = tempDir(t);
  const ck = new CheckpointManager(run, 5);
  await ck.save('a', { weights: weights(1), state: { n: 1 } });
  await ck.save('b', { weights: weights(2), state: { n: 2 } });
  const f = join(ck.dir, 'b', 'student.safetensors');
  const bytes = readFileSync(f);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
  writeFileSync(f, bytes);
  t.notOk(await ck.verify('b'));
  const last = await ck.loadLast();
  t.equal(last?.name, 'a');
});

t.test('kill -9 during checkpoint writes never leaves a checkpoint that fails to load', async (t) => {
  const run = tempDir(t);
  // A child that writes ~4 MB checkpoints back to back, killed at random moments.
  const script = `
    import { CheckpointManager } from ${JSON.stringify(join(packageRoot, 'src', 'train', 'checkpoint.ts'))};
    const ck = new CheckpointManager(${JSON.stringify(run)}, 2);
    const big = new Float32Array(1 << 20);
    for (let i = 0; ; i++) {
      big.fill(i);
      await ck.save('iter' + String(i).padStart(6, '0'), { weights: { student: new Map([['w', { dtype: 'float32', shape: [big.length], data: big }]]) }, state: { iter: i } });
      if (i === 0) console.log('first');
    }
  `;
  let lastSeen = -1;
  for (let round = 0; round < 5; round++) {
    const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 300)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const ck = new CheckpointManager(run, 2);
    const last = await ck.loadLast();
    t.ok(last, `round ${round}: a checkpoint loads`);
    const st = last?.state as { iter: number };
    const w = (await last?.weights('student'))?.get('w');
    t.equal(w?.data[123], st.iter, `round ${round}: weights match their state (iter ${st.iter})`);
    t.ok(st.iter >= 0);
    lastSeen = st.iter;
  }
  t.ok(lastSeen >= 0);
  const ck = new CheckpointManager(run, 2);
  await ck.save('after', { weights: weights(9), state: {} });
  t.notOk(readdirSync(ck.dir).some((e) => e.startsWith('.tmp-')), 'leftovers are cleaned by the next save');
});

t.test('a kill between the two renames of a replacing save does not lose that checkpoint', async (t) => {
  const run = tempDir(t);
  const ck = new CheckpointManager(run, 3);
  await ck.save('older', { weights: weights(1), state: { n: 1 } });
  await ck.save('stage_end', { weights: weights(2), state: { n: 2 } });
  // What save('stage_end', ...) leaves when killed right after renaming the old copy aside.
  renameSync(join(ck.dir, 'stage_end'), join(ck.dir, '.old-stage_end-0123abcd'));
  const last = await ck.loadLast();
  t.equal(last?.name, 'stage_end', 'the pointer target is found again');
  t.same(last?.state, { n: 2 });
  renameSync(join(ck.dir, 'stage_end'), join(ck.dir, '.old-stage_end-0123abcd'));
  await ck.save('next', { weights: weights(3), state: { n: 3 } });
  t.same(await ck.list(), ['older', 'stage_end', 'next'], 'a later save restores it instead of deleting it');
});
