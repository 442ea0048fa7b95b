/** Data-parallel: 2 processes x batch 2 end with the weights of 1 process x batch 4 after every stage kind (see common.ts). */
import t from 'tap';
import { join } from 'node:path';
import { loadSafetensors } from '../../src/weights/safetensors.js';
import { haveAddon } from '../helpers.js';
import { config, maxDiff, MODELS, port, run, setup, tail, weights, writeConfig } from './common.js';

t.test('data-parallel: 2 processes x batch 2 = 1 process x batch 4 after every stage kind', async (t) => {
  if (!haveAddon(t)) return;
  const { dir, teachers, data } = await setup(t);
  const one = writeConfig(dir, 'one', config(dir, data, teachers, { batchSize: 4, output: join(dir, 'one') }));
  const r1 = await run(['train', '--config', one, '--quiet']).done;
  t.equal(r1.code, 0, `1 process x batch 4 ran${tail(r1)}`);
  const two = writeConfig(dir, 'two', config(dir, data, teachers, { batchSize: 2, output: join(dir, 'two') }));
  const r2 = await run(['train', '--config', two, '--quiet', '--nproc', '2', '--master-port', String(port())]).done;
  t.equal(r2.code, 0, `2 processes x batch 2 ran${tail(r2)}`);
  if (r1.code !== 0 || r2.code !== 0) return;
  const w1 = await weights(join(dir, 'one'));
  const w2 = await weights(join(dir, 'two'));
  const ots = await loadSafetensors(join(dir, 'one', 'models', 'student.safetensors'));
  t.ok(ots.tensors.size > 0, 'the student was trained');
  for (const m of MODELS) {
    const { diff, key } = maxDiff(w2.get(m) as Map<string, Float32Array>, w1.get(m) as Map<string, Float32Array>);
    t.ok(diff < 2e-4, `${m}: 2 x 2 matches 1 x 4 (max |diff| ${diff.toExponential(2)} at ${key})`);
  }
  // The stages moved the weights (the comparison is not between two untouched copies).
  const moved = maxDiff(w1.get('longer-2x') as Map<string, Float32Array>, w1.get('student') as Map<string, Float32Array>);
  t.ok(moved.diff > 1e-3, `training changes the weights (longer-2x vs student: ${moved.diff.toExponential(2)})`);

});
