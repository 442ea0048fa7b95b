#!/usr/bin/env node
// npm install hook: use a compatible prebuilt addon when the package ships one, else build
// from source with cmake-js against the libtorch found on this machine (LIBTORCH, Torch_DIR,
// or Debian's libtorch-dev). Set MTPD_SKIP_NATIVE_BUILD=1 to skip (TS-only work).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

if (process.env.MTPD_SKIP_NATIVE_BUILD === '1') {
  console.log('mtpd: MTPD_SKIP_NATIVE_BUILD=1, not building the native addon');
  process.exit(0);
}

const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'mtpd.node');
if (existsSync(prebuilt)) {
  // Probe in a child process: a binary for another libtorch must not take this one down.
  const probe = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', `import { loadAddon } from ${JSON.stringify(join(root, 'dist', 'native.js'))}; loadAddon();`],
    { stdio: 'pipe', encoding: 'utf8' },
  );
  if (probe.status === 0) {
    console.log(`mtpd: using the prebuilt addon ${prebuilt}`);
    process.exit(0);
  }
  console.log(`mtpd: the prebuilt addon does not fit this machine, building from source:\n${probe.stderr.trim()}`);
}

const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const bin = existsSync(cmakeJs) ? cmakeJs : null;
const args = bin ? [bin, 'compile'] : ['-e', "require('cmake-js/bin/cmake-js')", '--', 'compile'];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(
    '\nmtpd: building the native addon failed. It needs libtorch and a C++17 compiler with CMake:\n' +
      '  Debian/Ubuntu: sudo apt-get install -y libtorch-dev libopenblas0-openmp nlohmann-json3-dev cmake g++\n' +
      '  Elsewhere: unpack libtorch from pytorch.org and set LIBTORCH=/path/to/libtorch\n' +
      '  (or Torch_DIR=/path/to/libtorch/share/cmake/Torch), then npm rebuild mtpd.',
  );
  process.exit(result.status ?? 1);
}
