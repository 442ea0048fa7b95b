#!/usr/bin/env node
// Makes a folder of links to every program on the PATH except compilers and build tools (cc, c++,
// gcc, g++, clang, cmake, make, ninja, ...), and prints it: with PATH set to it alone, an install
// can only succeed from a prebuilt binary. CI installs the packed tarball this way.
// Usage: node scripts/no-compiler-path.mjs DIR
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

const BUILD_TOOLS = /^(cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+|cmake|ctest|cpack|ccmake|make|gmake|ninja|ccache|ld|ld\.\w+|as|nvcc|cl)(-[\d.]+)?$|^([\w-]+-)?(gcc|g\+\+|c\+\+|cc|cpp|clang|clang\+\+|ld|as)(-[\d.]+)?$/;

const out = process.argv[2];
if (!out) {
  console.error('usage: node scripts/no-compiler-path.mjs DIR');
  process.exit(2);
}
const dir = resolve(out);
mkdirSync(dir, { recursive: true });
for (const d of (process.env.PATH ?? '').split(delimiter)) {
  let names;
  try {
    names = readdirSync(d);
  } catch {
    continue;
  }
  for (const n of names) {
    if (BUILD_TOOLS.test(n) || existsSync(join(dir, n))) continue;
    const p = join(d, n);
    try {
      if (!statSync(p).isFile()) continue;
    } catch {
      continue;
    }
    symlinkSync(p, join(dir, n));
  }
}
console.log(dir);
