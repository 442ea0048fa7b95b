// The release workflow (.github/workflows/release.yml) against the code it drives, checked
// without a CI runner: each prebuild job's name is the folder scripts/prebuild.mjs makes from that
// job's runner and libtorch (prebuilds/<platform>-<arch>-<tag>), the loader on a machine with that
// libtorch picks that folder out of the package that merges them all, the package job takes every
// prebuild artifact, and every script the workflow runs exists.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { packageRoot, prebuildCandidates, prebuildTag } from '../src/native.js';
import { tempDir } from './helpers.js';

interface Entry {
  name: string;
  runner: string;
  container: string;
  libtorch: string;
}
interface Step {
  run?: string;
  uses?: string;
  with?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  strategy?: { matrix: { include: Entry[] } };
  steps: Step[];
}
const workflow = parse(readFileSync(join(packageRoot, '.github', 'workflows', 'release.yml'), 'utf8')) as { jobs: Record<string, Job> };
const prebuild = workflow.jobs.prebuild as Job;
const entries = prebuild.strategy?.matrix.include ?? [];

/** The platform and arch a GitHub-hosted runner label stands for. */
function runnerPlatform(runner: string): { platform: string; arch: string } {
  if (/^ubuntu-/.test(runner)) return { platform: 'linux', arch: runner.endsWith('-arm') ? 'arm64' : 'x64' };
  const mac = /^macos-(\d+)/.exec(runner);
  if (mac) return { platform: 'darwin', arch: Number(mac[1]) >= 14 ? 'arm64' : 'x64' };
  throw new Error(`unknown runner ${runner}`);
}

/** What the job builds against: Debian 12's libtorch-dev (1.13.1, CPU) or a PyTorch libtorch zip, read off its URL. */
function libtorchOf(spec: string): { torchVersion: string; cuda: boolean; cudaVersion?: string } {
  if (spec === 'debian') return { torchVersion: '1.13.1', cuda: false };
  const m = /libtorch-[\w-]*?(\d+\.\d+\.\d+)(?:%2B(cu(\d+)(\d)|cpu))?\.zip$/.exec(spec);
  if (!m) throw new Error(`cannot read a libtorch version off ${spec}`);
  return m[3] ? { torchVersion: m[1] as string, cuda: true, cudaVersion: `${m[3]}.${m[4]}` } : { torchVersion: m[1] as string, cuda: false };
}

t.test('the release builds the four prebuilds the README promises', async (t) => {
  t.same(entries.map((e) => e.name).sort(), ['darwin-arm64-torch2.2-cpu', 'linux-arm64-torch1.13-cpu', 'linux-x64-torch1.13-cpu', 'linux-x64-torch2.1-cu121']);
});

t.test("each prebuild job's name is the folder prebuild.mjs makes there, and the loader picks it", async (t) => {
  const root = tempDir(t, 'mtpd-release-');
  for (const e of entries) {
    mkdirSync(join(root, 'prebuilds', e.name), { recursive: true });
    writeFileSync(join(root, 'prebuilds', e.name, 'mtpd.node'), '');
  }
  for (const e of entries) {
    const { platform, arch } = runnerPlatform(e.runner);
    const lt = libtorchOf(e.libtorch);
    t.equal(`${platform}-${arch}-${prebuildTag(lt)}`, e.name, `${e.runner} with ${e.libtorch === 'debian' ? "Debian's libtorch" : e.libtorch.split('/').pop()}`);
    const installed = { version: lt.torchVersion, where: '/somewhere', cuda: lt.cuda, ...(lt.cudaVersion ? { cudaVersion: lt.cudaVersion } : {}) };
    const first = prebuildCandidates(root, platform, arch, installed)[0] ?? '';
    t.equal(first, join(root, 'prebuilds', e.name, 'mtpd.node'), `a ${platform}-${arch} machine with libtorch ${lt.torchVersion}${lt.cuda ? ' CUDA' : ' CPU'} loads ${e.name}`);
  }
});

t.test('every prebuild is uploaded and the package job merges them all', async (t) => {
  const upload = prebuild.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'));
  t.equal(upload?.with?.name, 'prebuild-${{ matrix.name }}');
  t.equal(upload?.with?.path, 'prebuilds/');
  const pack = workflow.jobs.package as Job;
  t.same([pack.needs].flat(), ['prebuild']);
  const download = pack.steps.find((s) => s.uses?.startsWith('actions/download-artifact'));
  t.equal(download?.with?.pattern, 'prebuild-*');
  t.equal(download?.with?.path, 'prebuilds');
  t.equal(String(download?.with?.['merge-multiple']), 'true');
});

t.test('every script the workflow runs is in the repository', async (t) => {
  const runs = Object.values(workflow.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ''));
  const scripts = [...new Set(runs.flatMap((r) => [...r.matchAll(/\bscripts\/[\w./-]+\.m?js\b/g)].map((m) => m[0])))];
  t.ok(scripts.length >= 2, `scripts named: ${scripts.join(', ')}`);
  for (const s of scripts) t.ok(existsSync(join(packageRoot, s)), `${s} exists`);
});
