#!/usr/bin/env node
// Full-size parity with torchvision 0.14: builds RetinaNet R18 / R50 / ResNeXt-50 32x4d / Swin-T
// FPN at their real widths with Debian's /usr/bin/python3 (scripts/golden/torchvision_retinanet.py
// --set full), loads each torchvision state dict into mtpd by name, and compares FPN features,
// losses on the same targets and final detections (1e-4 relative). Needs `npm run build:ts`.
// Usage: node scripts/parity.mjs [--keep DIR] [--only name,name] [--tol 1e-4] [--device cpu]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkParity, goldenNames } from '../dist/parity.js';
import { setThreads } from '../dist/runtime.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : d;
};
const keep = opt('--keep');
const dir = keep ?? mkdtempSync(join(tmpdir(), 'mtpd-parity-'));
const tol = Number(opt('--tol', '1e-4'));
const device = opt('--device', 'cpu');
const only = opt('--only');
setThreads(0);

const py = spawnSync('/usr/bin/python3', [join(root, 'scripts/golden/torchvision_retinanet.py'), '--set', 'full', '--out', dir, ...(only ? ['--only', only] : [])], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
if (py.status !== 0) {
  console.error('torchvision side failed (needs Debian python3-torchvision 0.14 at /usr/bin/python3)');
  process.exit(2);
}
let failed = 0;
for (const name of goldenNames(dir)) {
  const r = await checkParity(dir, name, tol, device);
  const worst = r.checks.reduce((a, c) => (c.error > a.error ? c : a), { what: '-', error: 0 });
  console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${name}: ${r.load.loaded} tensors loaded by name, ${r.checks.length} checks, worst ${worst.what} ${worst.error.toExponential(2)}`);
  if (r.load.missing.length || r.load.unexpected.length || r.load.mismatched.length) console.log(`     load: ${JSON.stringify(r.load)}`);
  for (const c of r.checks) if (!c.ok) console.log(`     ${c.what}: ${c.error.toExponential(2)} ${c.detail ?? ''}`);
  if (!r.ok) failed++;
}
if (!keep) rmSync(dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
