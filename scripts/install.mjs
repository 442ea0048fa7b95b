#!/usr/bin/env node
// npm install hook: use a prebuilt addon that fits this machine's libtorch when the package ships
// one (prebuilds/<platform>-<arch>-<torch tag>/), else build from source with cmake-js against the
// libtorch found here (LIBTORCH, Torch_DIR, or Debian's libtorch-dev). Set MTPD_SKIP_NATIVE_BUILD=1
// to skip (TS-only work).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

if (process.env.MTPD_SKIP_NATIVE_BUILD === '1') {
  console.log('mtpd: MTPD_SKIP_NATIVE_BUILD=1, not building the native addon');
  process.exit(0);
}

const plat = `${process.platform}-${process.arch}`;
let shipped = [];
try {
  shipped = readdirSync(join(root, 'prebuilds')).filter((n) => n === plat || n.startsWith(`${plat}-`));
} catch {
  shipped = [];
}
const loader = join(root, 'dist', 'native.js');
if (shipped.length > 0 && existsSync(loader)) {
  // Probe in a child process: a binary for another libtorch must not take this one down. The
  // loader picks the prebuild whose tag fits the libtorch it finds and says why it refuses others.
  const probe = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { loadAddon } from ${JSON.stringify(loader)}; const a = loadAddon(); if (a.kind !== 'prebuild') throw new Error('loaded ' + a.path); console.log(a.path);`,
    ],
    { stdio: 'pipe', encoding: 'utf8' },
  );
  if (probe.status === 0) {
    console.log(`mtpd: using the prebuilt addon ${probe.stdout.trim()}`);
    process.exit(0);
  }
  console.log(
    `mtpd: no prebuilt addon fits this machine (shipped: ${shipped.join(', ')}), building from source:\n${probe.stderr.trim()}`,
  );
} else {
  console.log(`mtpd: no prebuilt addon for ${plat} in this package, building from source`);
}

// A source build needs CMake and a C++17 compiler: say so plainly when they are missing.
const missing = [];
const has = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
if (!has('cmake', ['--version'])) missing.push('cmake');
const cxx = process.env.CXX || (process.platform === 'darwin' ? 'clang++' : 'c++');
if (!has(cxx, ['--version']) && !has('g++', ['--version']) && !has('clang++', ['--version'])) missing.push(`a C++17 compiler (${cxx}, g++ or clang++)`);
const help =
  'It needs libtorch and a C++17 compiler with CMake:\n' +
  '  Debian/Ubuntu: sudo apt-get install -y libtorch-dev libgloo-dev libopenblas0-openmp nlohmann-json3-dev cmake g++\n' +
  '  Elsewhere: unpack libtorch from pytorch.org and set LIBTORCH=/path/to/libtorch\n' +
  '  (or Torch_DIR=/path/to/libtorch/share/cmake/Torch), then npm rebuild mtpd.';
if (missing.length > 0) {
  console.error(`\nmtpd: cannot build the native addon from source: ${missing.join(' and ')} not found on the PATH.\n${help}`);
  process.exit(1);
}

const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const bin = existsSync(cmakeJs) ? cmakeJs : null;
const args = bin ? [bin, 'compile'] : ['-e', "require('cmake-js/bin/cmake-js')", '--', 'compile'];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(`\nmtpd: building the native addon failed. ${help}`);
  process.exit(result.status ?? 1);
}
