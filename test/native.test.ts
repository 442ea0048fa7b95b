import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { detectInstalledLibtorch, loadAddon, packageRoot } from '../src/native.js';
import { haveAddon, tempDir } from './helpers.js';

const plat = `${process.platform}-${process.arch}`;

t.test('no addon anywhere: the error lists every place tried and the machine libtorch', async (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, 'package.json'), '{"name":"x","type":"module"}');
  const err = (() => {
    try {
      loadAddon({ root, env: { MTPD_ADDON: join(root, 'nowhere.node') } });
      return null;
    } catch (e) {
      return e as Error & { code: string };
    }
  })();
  t.ok(err);
  t.equal(err?.code, 'ERR_MTPD_ADDON_NOT_FOUND');
  t.match(err?.message, /could not load the native addon\. Tried:/);
  t.match(err?.message, /nowhere\.node: not found \(from MTPD_ADDON\)/);
  t.match(err?.message, new RegExp(`build/Release/mtpd\\.node: not found`));
  t.match(err?.message, new RegExp(`prebuilds/${plat}/mtpd\\.node: not found`));
  t.match(err?.message, /libtorch on this machine: /);
  t.match(err?.message, /apt-get install libtorch-dev/);
});

t.test('a file that is not a shared library is reported, not a crash', async (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'build', 'Release'), { recursive: true });
  writeFileSync(join(root, 'build', 'Release', 'mtpd.node'), 'not an ELF file');
  writeFileSync(join(root, 'package.json'), '{"name":"x"}');
  t.throws(() => loadAddon({ root, env: {} }), { code: 'ERR_MTPD_ADDON_NOT_FOUND', message: /build\/Release\/mtpd\.node \(built against an unknown libtorch\): .*(invalid ELF|too short|file too short)/ });
});

t.test('a prebuilt binary for another libtorch is refused with a clear message', async (t) => {
  if (!haveAddon(t)) return;
  const installed = detectInstalledLibtorch();
  t.ok(installed, 'this machine has a libtorch the loader can see');
  const root = tempDir(t);
  writeFileSync(join(root, 'package.json'), '{"name":"x"}');
  const dir = join(root, 'prebuilds', plat);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(packageRoot, 'build', 'Release', 'mtpd.node'), join(dir, 'mtpd.node'));
  writeFileSync(join(dir, 'mtpd.json'), JSON.stringify({ torchVersion: '9.9.0', cuda: true, cxx11Abi: true, platform: process.platform, arch: process.arch }));
  t.throws(() => loadAddon({ root, env: {} }), {
    code: 'ERR_MTPD_ADDON_INCOMPATIBLE',
    message: /built against libtorch 9\.9\.0 \(CUDA\), but this machine has libtorch 1\.13/,
  });
  writeFileSync(join(dir, 'mtpd.json'), JSON.stringify({ torchVersion: '1.13.0', cuda: false, cxx11Abi: true, platform: 'win32', arch: 'arm64' }));
  t.throws(() => loadAddon({ root, env: {} }), { code: 'ERR_MTPD_ADDON_INCOMPATIBLE', message: /built for win32-arm64/ });
});

t.test('a matching prebuilt binary loads (in a child process)', async (t) => {
  if (!haveAddon(t)) return;
  const root = tempDir(t);
  writeFileSync(join(root, 'package.json'), '{"name":"x"}');
  const dir = join(root, 'prebuilds', plat);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(packageRoot, 'build', 'Release', 'mtpd.node'), join(dir, 'mtpd.node'));
  copyFileSync(join(packageRoot, 'build', 'Release', 'mtpd.json'), join(dir, 'mtpd.json'));
  const code = `import { loadAddon } from ${JSON.stringify(join(packageRoot, 'src', 'native.ts'))};
    const a = loadAddon({ root: ${JSON.stringify(root)}, env: {} });
    console.log(JSON.stringify({ kind: a.kind, torch: a.binding.runtimeInfo().torchVersion }));`;
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { kind: string; torch: string };
  t.equal(out.kind, 'prebuild');
  t.match(out.torch, /^\d+\.\d+/);
});
