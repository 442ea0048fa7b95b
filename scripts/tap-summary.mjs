#!/usr/bin/env node
// Reads tap's output and prints the closing line CI looks for: "N passed, N failed".
import { readFileSync } from 'node:fs';

const text = readFileSync(process.argv[2] ?? '/dev/stdin', 'utf8');
const m = [...text.matchAll(/^# \{ ([^}]*) \}\s*$/gm)].pop();
const counts = {};
for (const part of (m?.[1] ?? '').split(',')) {
  const [k, v] = part.split(':').map((s) => s.trim());
  if (k && v && /^\d+$/.test(v)) counts[k] = Number(v);
}
const total = counts.total ?? 0;
const passed = counts.pass ?? 0;
const skipped = (counts.skip ?? 0) + (counts.todo ?? 0);
const failed = m ? Math.max(counts.fail ?? 0, total - passed - skipped) : 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
