import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from './cli-helper.js';
import { haveAddon, tempDir } from './helpers.js';

t.test('mtpd plan prints the BGS order as JSON', async (t) => {
  const dir = tempDir(t);
  const costs = join(dir, 'costs.json');
  writeFileSync(
    costs,
    JSON.stringify({
      models: { student: { ap: 0.3 }, r101: { ap: 0.41 }, x101: { ap: 0.44 }, swin_t: { ap: 0.46 } },
      costs: {
        student: { r101: 5, x101: 6, swin_t: 9 },
        r101: { student: 1, x101: 2, swin_t: 7 },
        x101: { student: 1, r101: 1, swin_t: 3 },
        swin_t: { student: 1, r101: 1, x101: 1 },
      },
    }),
  );
  const r = runCli(['plan', '--costs', costs, '--student', 'student', '--json']);
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { order: ['r101', 'x101', 'swin_t'] });
  t.equal(r.stdout.trim().split('\n').length, 1, 'exactly one line of JSON');
  const k2 = runCli(['plan', '--costs', costs, '--student', 'student', '--k', '2', '--json']);
  t.same(JSON.parse(k2.stdout), { order: ['x101', 'swin_t'] });
  const table = runCli(['plan', '--costs', costs, '--student', 'student']);
  t.equal(table.status, 0);
  t.match(table.stdout, /BGS order for student student: r101 -> x101 -> swin_t/);
  t.match(table.stdout, /d\(teacher->next\)/);
});

t.test('mtpd plan: bad input is a clear error and a non-zero exit', async (t) => {
  const dir = tempDir(t);
  const costs = join(dir, 'c.json');
  writeFileSync(costs, JSON.stringify({ models: { s: { ap: 0.1 }, a: { ap: 0.2 }, b: { ap: 0.3 } }, costs: { s: { b: 1 }, a: {} } }));
  const missing = runCli(['plan', '--costs', costs, '--student', 's']);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /costs\["a"\]\["b"\]/);
  const unknown = runCli(['plan', '--costs', costs, '--student', 'nobody']);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /unknown student "nobody"/);
  const nofile = runCli(['plan', '--costs', join(dir, 'nope.json'), '--student', 's']);
  t.equal(nofile.status, 1);
  t.match(nofile.stderr, /nope\.json: cannot read \(ENOENT\)/);
  writeFileSync(join(dir, 'bad.json'), '{not json');
  const bad = runCli(['plan', '--costs', join(dir, 'bad.json'), '--student', 's']);
  t.match(bad.stderr, /bad\.json: not valid JSON/);
  const noargs = runCli(['plan']);
  t.equal(noargs.status, 2);
  t.match(noargs.stderr, /Missing required arguments?: costs, student/);
  const badk = runCli(['plan', '--costs', costs, '--student', 's', '--k', '0']);
  t.equal(badk.status, 2);
  t.match(badk.stderr, /--k must be a positive integer/);
  const typo = runCli(['plna']);
  t.equal(typo.status, 2);
});

t.test('mtpd info', async (t) => {
  if (!haveAddon(t)) return;
  const r = runCli(['info', '--json', '--threads', '1']);
  t.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { libtorch: { runtime: string; loadedFrom: string }; threads: { intraOp: number }; addon: { path: string }; blas: { kind: string; path: string } | null };
  t.match(info.libtorch.runtime, /^\d+\.\d+/);
  // CI installs OpenBLAS as the README says (netlib's reference BLAS makes Linear layers 5-10x slower).
  if (process.env.CI) t.equal(info.blas?.kind, 'openblas', `BLAS: ${info.blas?.path}`);
  else t.ok(info.blas === null || ['openblas', 'mkl', 'reference', 'other'].includes(info.blas.kind));
  t.match(info.libtorch.loadedFrom, /libtorch_cpu/);
  t.equal(info.threads.intraOp, 1);
  const text = runCli(['info']);
  t.match(text.stdout, /libtorch loaded from/);
  t.match(text.stdout, /cuda\s+/);
  t.match(text.stdout, /blas\s+/);
});

t.test('--set without a value is an error, not an override silently dropped', async (t) => {
  for (const cmd of ['train', 'orders', 'cost']) {
    const r = runCli([cmd, '--config', 'missing.yaml', '--set']);
    t.not(r.status, 0, `${cmd}: non-zero exit`);
    t.match(r.stderr, /Not enough arguments following: set/, `${cmd}: names --set`);
  }
});

t.test('an empty path is an error naming the option (not the default, not ": cannot read")', async (t) => {
  for (const args of [['demo', '--weights', ''], ['export', '--weights', '', '--out', 'x.pth'], ['predict', '--weights', '', '--arch', 'retinanet_resnet18_fpn', '--num-classes', '3', 'x.png'], ['train', '--config', ''], ['orders', '--config', ''], ['cost', '--config', ' ']]) {
    const r = runCli(args);
    t.equal(r.status, 2, `${args[0]}: exit 2`);
    t.match(r.stderr, new RegExp(`--${args[1]!.slice(2)}: needs a path, got an empty string`), `${args[0]}: names ${args[1]}`);
  }
});
