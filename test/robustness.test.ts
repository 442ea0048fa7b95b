import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../src/native.js';
import { haveAddon } from './helpers.js';

// Calls every exported native function (and every method of a native module) with hostile
// arguments in a child process. Each call must throw or reject a JS error; the process must
// never abort.
t.test('no input from JS aborts the process', async (t) => {
  if (!haveAddon(t)) return;
  const script = `
    import { native } from ${JSON.stringify(join(packageRoot, 'src', 'native.ts'))};
    const b = native();
    const f32 = (shape, n) => ({ dtype: 'float32', shape, data: new Float32Array(n) });
    const garbage = [undefined, null, 0, -1, 1e308, NaN, 'x', '', '{', [], [1, 2], {}, { dtype: 'float32' },
      f32([2], 2), f32([1e9, 1e9], 4), f32([-1], 1), { dtype: 'int64', shape: [1], data: new Float32Array(1) },
      Symbol('s'), () => 1, new Uint8Array(3), { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) }];
    let calls = 0, errors = 0;
    async function poke(fn, self) {
      for (const a of garbage) for (const c of [undefined, a, 'cpu', '{}']) for (const d of [undefined, 'cpu', 'cuda:99', true]) {
        calls++;
        try { await fn.call(self, a, c, d, a); } catch (e) { errors++; if (!(e instanceof Error)) throw new Error('non-Error thrown'); }
      }
    }
    for (const [k, v] of Object.entries(b)) if (typeof v === 'function' && k !== 'NativeModule') await poke(v, b);
    for (const v of Object.values(b.ops)) await poke(v, b.ops);
    for (const v of Object.values(b.order ?? {})) await poke(v, b.order);
    const m = await b.createModule('nn.Conv2d', JSON.stringify({ in_channels: 2, out_channels: 2 }), 'cpu');
    for (const k of ['info', 'setTraining', 'stateDict', 'loadStateDict', 'to', 'forward']) await poke(m[k], m);
    for (const opts of ['{"in_channels": 1e300, "out_channels": 1}', '{"in_channels": -3, "out_channels": 1}', '{"in_channels": 4294967296000, "out_channels": 4294967296000}', '[]', 'null']) {
      calls++;
      try { await b.createModule('nn.Conv2d', opts, 'cpu'); } catch { errors++; }
    }
    console.log(JSON.stringify({ calls, errors }));
  `;
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 300_000 });
  t.equal(r.signal, null, `no signal (stderr: ${r.stderr.slice(-500)})`);
  t.equal(r.status, 0, r.stderr.slice(-2000));
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { calls: number; errors: number };
  t.ok(out.calls > 1000, `${out.calls} calls`);
  t.ok(out.errors > out.calls / 2, `${out.errors} of them were clear errors`);
});
