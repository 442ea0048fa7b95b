import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../src/native.js';
import { haveAddon, tempDir } from './helpers.js';

// Packs the package with a prebuilt addon, installs the tarball elsewhere, and loads it there
// without compiling anything.
t.test('npm pack + install uses the prebuilt addon', async (t) => {
  if (!haveAddon(t)) return;
  const work = tempDir(t, 'mtpd-pack-');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(process.execPath, [join(packageRoot, 'scripts', 'prebuild.mjs')], { cwd: packageRoot, stdio: 'pipe' });
  const packed = execFileSync(npm, ['pack', '--silent', '--pack-destination', work], { cwd: packageRoot, encoding: 'utf8' }).trim().split('\n').pop() ?? '';
  const tgz = join(work, packed);
  t.ok(existsSync(tgz), `packed ${packed}`);

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const install = spawnSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], {
    cwd: app,
    encoding: 'utf8',
    env: { ...process.env, npm_config_foreground_scripts: 'true' },
  });
  t.equal(install.status, 0, install.stderr);
  t.match(install.stdout + install.stderr, /using the prebuilt addon/, 'the install script took the prebuilt binary');
  const pkg = join(app, 'node_modules', 'mtpd');
  t.notOk(existsSync(join(pkg, 'build')), 'nothing was compiled');
  t.same(readdirSync(join(pkg, 'prebuilds', `${process.platform}-${process.arch}`)).sort(), ['mtpd.json', 'mtpd.node']);

  const run = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "import { systemInfo } from 'mtpd'; console.log(JSON.stringify(systemInfo()));"],
    { cwd: app, encoding: 'utf8' },
  );
  t.equal(run.status, 0, run.stderr);
  const info = JSON.parse(run.stdout) as { addon: { kind: string; path: string } };
  t.equal(info.addon.kind, 'prebuild');
  t.match(info.addon.path, /node_modules\/mtpd\/prebuilds\//);

  const cli = spawnSync(join(app, 'node_modules', '.bin', 'mtpd'), ['info'], { cwd: app, encoding: 'utf8' });
  t.equal(cli.status, 0, cli.stderr);
  t.match(cli.stdout, /libtorch\s+1\.\d+/);
});
