import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { detectInstalledLibtorch, loadAddon, packageRoot, prebuildCandidates, prebuildTag } from '../src/native.js';
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
  t.match(err?.message, new RegExp(`prebuilds/${plat}-<torch tag>/mtpd\\.node: no prebuilt binary for ${plat}`));
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
  const dir = join(root, 'prebuilds', `${plat}-torch9.9-cu121`);
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
  const meta = JSON.parse(readFileSync(join(packageRoot, 'build', 'Release', 'mtpd.json'), 'utf8')) as { torchVersion: string; cuda: boolean };
  // Beside the fitting binary, one for the other flavour of the same libtorch: the loader must take the fitting one.
  const other = prebuildTag({ ...meta, cuda: !meta.cuda, cudaVersion: '12.1' });
  const fitting = prebuildTag(meta);
  for (const tag of [other, fitting]) {
    const dir = join(root, 'prebuilds', `${plat}-${tag}`);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(packageRoot, 'build', 'Release', 'mtpd.node'), join(dir, 'mtpd.node'));
    writeFileSync(join(dir, 'mtpd.json'), JSON.stringify({ ...meta, cuda: tag === fitting ? meta.cuda : !meta.cuda, tag, platform: process.platform, arch: process.arch }));
  }
  const code = `import { loadAddon } from ${JSON.stringify(join(packageRoot, 'src', 'native.ts'))};
    const a = loadAddon({ root: ${JSON.stringify(root)}, env: {} });
    console.log(JSON.stringify({ kind: a.kind, path: a.path, torch: a.binding.runtimeInfo().torchVersion }));`;
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { kind: string; path: string; torch: string };
  t.equal(out.kind, 'prebuild');
  t.equal(out.path, join(root, 'prebuilds', `${plat}-${fitting}`, 'mtpd.node'), 'the binary whose tag fits the libtorch');
  t.match(out.torch, /^\d+\.\d+/);
});

t.test('prebuild tags name the libtorch version and flavour', async (t) => {
  t.equal(prebuildTag({ torchVersion: '1.13.0', cuda: false }), 'torch1.13-cpu');
  t.equal(prebuildTag({ torchVersion: '2.1.2', cuda: true, cudaVersion: '12.1' }), 'torch2.1-cu121');
  t.equal(prebuildTag({ torchVersion: '2.4.0+cu124', cuda: true }), 'torch2.4-cu124');
});

t.test('the installed libtorch: version and CUDA flavour from a libtorch folder', async (t) => {
  const cu = tempDir(t);
  mkdirSync(join(cu, 'lib'));
  writeFileSync(join(cu, 'build-version'), '2.1.2+cu121\n');
  t.same(detectInstalledLibtorch({ LIBTORCH: cu }), { version: '2.1.2+cu121', where: cu, cuda: true, cudaVersion: '12.1' });
  const cpu = tempDir(t);
  mkdirSync(join(cpu, 'lib'));
  writeFileSync(join(cpu, 'build-version'), '2.1.2+cpu\n');
  t.same(detectInstalledLibtorch({ LIBTORCH: cpu }), { version: '2.1.2+cpu', where: cpu, cuda: false });
  const withLib = tempDir(t);
  mkdirSync(join(withLib, 'lib'));
  writeFileSync(join(withLib, 'build-version'), '2.1.2\n');
  writeFileSync(join(withLib, 'lib', 'libtorch_cuda.so'), '');
  t.equal(detectInstalledLibtorch({ LIBTORCH: withLib })?.cuda, true, 'libtorch_cuda beside libtorch_cpu');
});

t.test('prebuild candidates: the tag that fits the installed libtorch first, other platforms never', async (t) => {
  const root = tempDir(t);
  const mk = (name: string): void => {
    mkdirSync(join(root, 'prebuilds', name), { recursive: true });
    writeFileSync(join(root, 'prebuilds', name, 'mtpd.node'), '');
  };
  for (const n of ['linux-x64-torch2.1-cu121', 'linux-x64-torch1.13-cpu', 'linux-arm64-torch1.13-cpu', 'darwin-arm64-torch2.1-cpu', 'linux-x64']) mk(n);
  mkdirSync(join(root, 'prebuilds', 'linux-x64-torch9.9-cpu'));
  const names = (installed: Parameters<typeof prebuildCandidates>[3]): string[] =>
    prebuildCandidates(root, 'linux', 'x64', installed).map((p) => p.slice(join(root, 'prebuilds').length + 1, -'/mtpd.node'.length));
  t.same(names({ version: '1.13.1', where: '/usr/lib', cuda: false }), ['linux-x64-torch1.13-cpu', 'linux-x64-torch2.1-cu121', 'linux-x64']);
  t.same(names({ version: '2.1.2+cu121', where: '/opt/libtorch', cuda: true, cudaVersion: '12.1' }), ['linux-x64-torch2.1-cu121', 'linux-x64-torch1.13-cpu', 'linux-x64']);
  t.same(names(null).at(-1), 'linux-x64', 'the untagged folder of older packages last');
});

t.test('a prebuilt binary for the other flavour of the same libtorch is refused, naming both', async (t) => {
  if (!haveAddon(t)) return;
  const installed = detectInstalledLibtorch();
  if (!installed) return t.fail('this machine has a libtorch the loader can see');
  const root = tempDir(t);
  writeFileSync(join(root, 'package.json'), '{"name":"x"}');
  const tag = prebuildTag({ torchVersion: installed.version, cuda: !installed.cuda, cudaVersion: '12.1' });
  const dir = join(root, 'prebuilds', `${plat}-${tag}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(packageRoot, 'build', 'Release', 'mtpd.node'), join(dir, 'mtpd.node'));
  writeFileSync(join(dir, 'mtpd.json'), JSON.stringify({ torchVersion: installed.version, cuda: !installed.cuda, cxx11Abi: true, tag, platform: process.platform, arch: process.arch }));
  t.throws(() => loadAddon({ root, env: {} }), {
    code: 'ERR_MTPD_ADDON_INCOMPATIBLE',
    message: new RegExp(`${tag}/mtpd\\.node: built against libtorch .* \\(${installed.cuda ? 'CPU' : 'CUDA'}\\), but this machine's libtorch .* is a ${installed.cuda ? 'CUDA' : 'CPU-only'} build`),
  });
});
