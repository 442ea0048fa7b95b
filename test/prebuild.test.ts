import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot, prebuildTag } from '../src/native.js';
import { haveAddon, tempDir } from './helpers.js';

// Packs the package with a prebuilt addon, installs the tarball elsewhere with no compiler or
// CMake on the PATH, and loads it there without compiling anything.
t.test('npm pack + install uses the prebuilt addon', async (t) => {
  if (!haveAddon(t)) return;
  const work = tempDir(t, 'mtpd-pack-');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(process.execPath, [join(packageRoot, 'scripts', 'prebuild.mjs')], { cwd: packageRoot, stdio: 'pipe' });
  const meta = JSON.parse(readFileSync(join(packageRoot, 'build', 'Release', 'mtpd.json'), 'utf8')) as { torchVersion: string; cuda: boolean; cudaVersion?: string };
  const tag = `${process.platform}-${process.arch}-${prebuildTag(meta)}`;
  const nocc = execFileSync(process.execPath, [join(packageRoot, 'scripts', 'no-compiler-path.mjs'), join(work, 'bin')], { encoding: 'utf8' }).trim();
  for (const tool of ['cc', 'c++', 'g++', 'cmake']) t.notOk(existsSync(join(nocc, tool)), `${tool} is not on the install's PATH`);
  const env = { ...process.env, PATH: nocc };
  const packed = execFileSync(npm, ['pack', '--silent', '--pack-destination', work], { cwd: packageRoot, encoding: 'utf8' }).trim().split('\n').pop() ?? '';
  const tgz = join(work, packed);
  t.ok(existsSync(tgz), `packed ${packed}`);

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const install = spawnSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], {
    cwd: app,
    encoding: 'utf8',
    env: { ...env, npm_config_foreground_scripts: 'true' },
  });
  t.equal(install.status, 0, install.stderr);
  t.match(install.stdout + install.stderr, /using the prebuilt addon/, 'the install script took the prebuilt binary');
  const pkg = join(app, 'node_modules', 'mtpd');
  t.notOk(existsSync(join(pkg, 'build')), 'nothing was compiled');
  t.same(readdirSync(join(pkg, 'prebuilds', tag)).sort(), ['mtpd.json', 'mtpd.node']);

  const run = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "import { systemInfo } from 'mtpd'; console.log(JSON.stringify(systemInfo()));"],
    { cwd: app, encoding: 'utf8', env },
  );
  t.equal(run.status, 0, run.stderr);
  const info = JSON.parse(run.stdout) as { addon: { kind: string; path: string } };
  t.equal(info.addon.kind, 'prebuild');
  t.match(info.addon.path, `node_modules/mtpd/prebuilds/${tag}/mtpd.node`);

  const cli = spawnSync(join(app, 'node_modules', '.bin', 'mtpd'), ['info'], { cwd: app, encoding: 'utf8', env });
  t.equal(cli.status, 0, cli.stderr);
  t.match(cli.stdout, /libtorch\s+1\.\d+/);
});
