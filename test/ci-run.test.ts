// .ci/run must print its closing "N passed, N failed" line when tests fail, too: that is when
// CI needs it most. Runs a copy of the script with stand-in npm/dpkg on PATH (nothing installed).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../src/native.js';
import { tempDir } from './helpers.js';

function fakeRepo(t: Parameters<typeof tempDir>[0], testsFail: boolean, packageFails = false): { root: string; env: NodeJS.ProcessEnv } {
  const root = tempDir(t, 'mtpd-ci-');
  mkdirSync(join(root, '.ci'));
  mkdirSync(join(root, 'scripts'));
  mkdirSync(join(root, 'bin'));
  copyFileSync(join(packageRoot, '.ci', 'run'), join(root, '.ci', 'run'));
  copyFileSync(join(packageRoot, 'scripts', 'tap-summary.mjs'), join(root, 'scripts', 'tap-summary.mjs'));
  // The prebuilt-package check (.ci/package) stands in too: it packs and installs the real build.
  writeFileSync(join(root, '.ci', 'package'), `#!/bin/sh\necho 'package check ran'\nexit ${packageFails ? 1 : 0}\n`);
  const summary = testsFail ? '# { total: 3, pass: 2, fail: 1 }' : '# { total: 3, pass: 3 }';
  writeFileSync(
    join(root, 'bin', 'npm'),
    `#!/bin/sh\nif [ "$1" = test ]; then echo 'ok 1 - a'; echo 'ok 2 - b'; echo '${testsFail ? 'not ok' : 'ok'} 3 - c'; echo '${summary}'; exit ${testsFail ? 1 : 0}; fi\nexit 0\n`,
  );
  writeFileSync(join(root, 'bin', 'dpkg'), '#!/bin/sh\nexit 0\n');
  for (const f of ['npm', 'dpkg']) chmodSync(join(root, 'bin', f), 0o755);
  return { root, env: { ...process.env, TMPDIR: root, PATH: `${join(root, 'bin')}:${process.env.PATH ?? ''}` } };
}

t.test('.ci/run ends with the summary line and fails when a test fails', async (t) => {
  const { root, env } = fakeRepo(t, true);
  const r = spawnSync('bash', [join(root, '.ci', 'run')], { env, encoding: 'utf8' });
  t.equal(r.status, 1, 'exit status is the test status');
  t.match(r.stdout, /^2 passed, 1 failed$/m, 'the closing line counts the failure');
  t.match(r.stdout, /ci: total \d+s\s*$/);
});

t.test('.ci/run passes when the tests pass', async (t) => {
  const { root, env } = fakeRepo(t, false);
  const r = spawnSync('bash', [join(root, '.ci', 'run')], { env, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^3 passed, 0 failed$/m);
});

t.test('.ci/run runs the prebuilt-package check after the tests and fails when it fails', async (t) => {
  const ok = fakeRepo(t, false);
  const r = spawnSync('bash', [join(ok.root, '.ci', 'run')], { env: ok.env, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /3 passed, 0 failed\n[\s\S]*package check ran\nci: prebuilt package ok/);
  const bad = fakeRepo(t, false, true);
  const f = spawnSync('bash', [join(bad.root, '.ci', 'run')], { env: bad.env, encoding: 'utf8' });
  t.equal(f.status, 1, 'a failed package check fails CI');
  t.match(f.stdout, /ci: prebuilt package FAILED/);
  t.match(f.stdout, /ci: total \d+s\s*$/);
});
