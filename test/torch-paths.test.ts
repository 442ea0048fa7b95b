// scripts/torch-paths.mjs feeds binding.gyp (node-gyp builds): where libtorch is and how to link it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../src/native.js';
import { tempDir } from './helpers.js';

const script = join(packageRoot, 'scripts', 'torch-paths.mjs');
const run = (what: string, env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [script, what], { encoding: 'utf8', env: { ...process.env, ...env } });

function fakeLibtorch(t: Parameters<typeof tempDir>[0], cuda: boolean): string {
  const root = tempDir(t, 'mtpd-libtorch-');
  mkdirSync(join(root, 'include', 'torch'), { recursive: true });
  mkdirSync(join(root, 'lib'));
  for (const l of ['libtorch.so', 'libtorch_cpu.so', 'libc10.so', ...(cuda ? ['libtorch_cuda.so', 'libc10_cuda.so'] : [])]) writeFileSync(join(root, 'lib', l), '');
  return root;
}

t.test('a CUDA libtorch is linked with --no-as-needed so libtorch_cuda is loaded', async (t) => {
  const root = fakeLibtorch(t, true);
  const r = run('libs', { LIBTORCH: root });
  t.equal(r.status, 0, r.stderr);
  const libs = r.stdout.trim().split('\n');
  const noAsNeeded = libs.indexOf('-Wl,--no-as-needed');
  t.ok(noAsNeeded >= 0 && noAsNeeded < libs.indexOf('-ltorch_cuda'), `--no-as-needed precedes -ltorch_cuda: ${libs.join(' ')}`);
  t.ok(libs.includes(`-Wl,-rpath,${join(root, 'lib')}`));
  t.equal(run('include', { LIBTORCH: root }).stdout.trim().split('\n')[0], join(root, 'include'));
});

t.test('a CPU libtorch links without the CUDA libraries', async (t) => {
  const root = fakeLibtorch(t, false);
  const libs = run('libs', { LIBTORCH: root }).stdout.trim().split('\n');
  t.notOk(libs.some((l) => /cuda/.test(l)), libs.join(' '));
});
