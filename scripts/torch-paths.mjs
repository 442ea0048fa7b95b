#!/usr/bin/env node
// Prints libtorch paths for binding.gyp (node-gyp), found the same way CMakeLists.txt finds
// them: $LIBTORCH, then $Torch_DIR, then the system (Debian's libtorch-dev).
//   node scripts/torch-paths.mjs include   -> include folders, one per line
//   node scripts/torch-paths.mjs libdir    -> the folder with libtorch.so
//   node scripts/torch-paths.mjs libs      -> linker flags
//   node scripts/torch-paths.mjs abi       -> 0 or 1 (_GLIBCXX_USE_CXX11_ABI)
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

function fail() {
  console.error(
    'mtpd: libtorch was not found.\n' +
      '  Debian/Ubuntu: sudo apt-get install libtorch-dev\n' +
      '  Elsewhere: download libtorch, unpack it and set LIBTORCH=/path/to/libtorch',
  );
  process.exit(1);
}

function locate() {
  const roots = [];
  if (process.env.LIBTORCH) roots.push(resolve(process.env.LIBTORCH));
  if (process.env.Torch_DIR) roots.push(resolve(process.env.Torch_DIR, '..', '..', '..'));
  for (const r of roots) {
    if (existsSync(join(r, 'include', 'torch'))) {
      return { include: [join(r, 'include'), join(r, 'include', 'torch', 'csrc', 'api', 'include')], libdir: join(r, 'lib'), cmake: join(r, 'share', 'cmake', 'Torch', 'TorchConfig.cmake') };
    }
  }
  for (const triplet of ['x86_64-linux-gnu', 'aarch64-linux-gnu']) {
    const cfg = `/usr/lib/${triplet}/cmake/Torch/TorchConfig.cmake`;
    if (existsSync(cfg)) return { include: ['/usr/include', '/usr/include/torch/csrc/api/include'], libdir: `/usr/lib/${triplet}`, cmake: cfg };
  }
  return fail();
}

const t = locate();
const what = process.argv[2];
if (what === 'include') console.log(t.include.join('\n'));
else if (what === 'libdir') console.log(t.libdir);
else if (what === 'libs') {
  const libs = ['-L' + t.libdir, `-Wl,-rpath,${t.libdir}`, '-ltorch', '-ltorch_cpu', '-lc10'];
  // Nothing in the addon calls into libtorch_cuda directly, so a linker that defaults to
  // --as-needed (Ubuntu's) would drop it, and CUDA would look absent at run time ("Cannot
  // initialize CUDA without ATen_cuda library"). TorchConfig.cmake does the same for CMake builds.
  if (existsSync(join(t.libdir, 'libc10_cuda.so'))) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
  console.log(libs.join('\n'));
} else if (what === 'abi') {
  let abi = '1';
  try {
    if (/_GLIBCXX_USE_CXX11_ABI=0/.test(readFileSync(t.cmake, 'utf8'))) abi = '0';
  } catch {
    // keep the default
  }
  console.log(abi);
} else {
  console.error('usage: torch-paths.mjs include|libdir|libs|abi');
  process.exit(2);
}
