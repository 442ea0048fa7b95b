#!/usr/bin/env node
// Packs the built addon as a prebuilt binary: prebuilds/<platform>-<arch>-<tag>/mtpd.node plus
// mtpd.json, which records the libtorch version, CUDA, C++ ABI and N-API version it was built
// against. The tag names the libtorch the binary needs, `torch1.13-cpu` or `torch2.1-cu121`; the
// loader takes the folder whose tag fits the machine's libtorch and refuses the others.
// Usage: node scripts/prebuild.mjs [--out DIR]   (default: the package's prebuilds/)
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--out');
const outRoot = outArg > 0 ? resolve(process.argv[outArg + 1] ?? '') : join(root, 'prebuilds');
const src = join(root, 'build', 'Release', 'mtpd.node');
if (!existsSync(src)) {
  console.error('mtpd prebuild: build/Release/mtpd.node is missing; run `npm run build:native` first');
  process.exit(1);
}
if (!existsSync(join(root, 'dist', 'native.js'))) {
  console.error('mtpd prebuild: dist/native.js is missing; run `npm run build:ts` first');
  process.exit(1);
}
const { prebuildTag } = await import(join(root, 'dist', 'native.js'));
const meta = JSON.parse(readFileSync(join(root, 'build', 'Release', 'mtpd.json'), 'utf8'));
const tag = prebuildTag(meta);
const dest = join(outRoot, `${process.platform}-${process.arch}-${tag}`);
mkdirSync(dest, { recursive: true });
copyFileSync(src, join(dest, 'mtpd.node'));
const tagged = {
  ...meta,
  tag,
  platform: process.platform,
  arch: process.arch,
  napiVersion: 8,
  node: process.version,
  mtpd: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
  builtAt: new Date().toISOString(),
};
delete tagged.torchDir;
writeFileSync(join(dest, 'mtpd.json'), `${JSON.stringify(tagged, null, 2)}\n`);
console.log(`mtpd prebuild: ${join(dest, 'mtpd.node')} (libtorch ${meta.torchVersion}${meta.cuda ? ` CUDA ${meta.cudaVersion ?? ''}` : ' CPU'}, cxx11 abi ${meta.cxx11Abi})`);
