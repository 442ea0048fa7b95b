#!/usr/bin/env node
// Packs the built addon as a prebuilt binary: prebuilds/<platform>-<arch>/mtpd.node plus
// mtpd.json, which records the libtorch version, CUDA, C++ ABI and N-API version it was built
// against. The loader refuses a prebuilt binary whose libtorch does not match the machine's.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'build', 'Release', 'mtpd.node');
if (!existsSync(src)) {
  console.error('mtpd prebuild: build/Release/mtpd.node is missing; run `npm run build:native` first');
  process.exit(1);
}
const meta = JSON.parse(readFileSync(join(root, 'build', 'Release', 'mtpd.json'), 'utf8'));
const dest = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dest, { recursive: true });
copyFileSync(src, join(dest, 'mtpd.node'));
const tagged = {
  ...meta,
  platform: process.platform,
  arch: process.arch,
  napiVersion: 8,
  node: process.version,
  mtpd: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
  builtAt: new Date().toISOString(),
};
delete tagged.torchDir;
writeFileSync(join(dest, 'mtpd.json'), `${JSON.stringify(tagged, null, 2)}\n`);
console.log(`mtpd prebuild: ${join(dest, 'mtpd.node')} (libtorch ${meta.torchVersion}${meta.cuda ? ' CUDA' : ' CPU'}, cxx11 abi ${meta.cxx11Abi})`);
