/** Data-parallel: stop a 2-process run, resume it with 1 process (see common.ts). */
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { haveAddon } from '../helpers.js';
import { config, maxDiff, MODELS, port, run, setup, tail, weights, writeConfig } from './common.js';

t.test('data-parallel: a run stopped with 2 processes x batch 2 resumes with 1 process x batch 4 to the uninterrupted weights', async (t) => {
  if (!haveAddon(t)) return;
  const { dir, teachers, data } = await setup(t);
  const one = writeConfig(dir, 'one', config(dir, data, teachers, { batchSize: 4, output: join(dir, 'one') }));
  const r1 = await run(['train', '--config', one, '--quiet']).done;
  t.equal(r1.code, 0, `1 process x batch 4 ran${tail(r1)}`);
  if (r1.code !== 0) return;
  const w1 = await weights(join(dir, 'one'));
  // Stop a 2-process run after its first checkpoints, resume it with 1 process x batch 4.
  const out3 = join(dir, 'three');
  const three = writeConfig(dir, 'three', config(dir, data, teachers, { batchSize: 2, output: out3 }));
  const p3 = run(['train', '--config', three, '--quiet', '--nproc', '2', '--master-port', String(port())]);
  const ckpts = join(out3, 'checkpoints');
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      const n = existsSync(ckpts) ? readdirSync(ckpts).filter((f) => /_\d{7}$/.test(f)).length : 0;
      if (n >= 2 || p3.child.exitCode !== null) {
        clearInterval(iv);
        resolve();
      }
    }, 200);
  });
  p3.child.kill('SIGINT');
  const r3 = await p3.done;
  t.ok(r3.code === 130 || r3.code === 0, `the 2-process run stopped cleanly (code ${r3.code})${r3.code === 130 || r3.code === 0 ? '' : tail(r3)}`);
  const resumed = writeConfig(dir, 'three-resume', config(dir, data, teachers, { batchSize: 4, output: out3 }));
  const r4 = await run(['train', '--config', resumed, '--quiet', '--resume']).done;
  t.equal(r4.code, 0, `resumed with 1 process x batch 4${tail(r4)}`);
  if (r4.code === 0) {
    const w4 = await weights(out3);
    for (const m of MODELS) {
      const { diff, key } = maxDiff(w4.get(m) as Map<string, Float32Array>, w1.get(m) as Map<string, Float32Array>);
      t.ok(diff < 2e-4, `${m}: stopped with 2 processes, resumed with 1: matches the uninterrupted run (max |diff| ${diff.toExponential(2)} at ${key})`);
    }
  }

});
