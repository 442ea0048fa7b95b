/** Shared test helpers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { loadAddon } from '../src/native.js';

let addonError: Error | null | undefined;

/**
 * True when the native addon loads. Otherwise the test is skipped with the loader's message,
 * except in CI (CI=true), where a missing addon fails the test: nothing is silently skipped there.
 */
export function haveAddon(t: Test): boolean {
  if (addonError === undefined) {
    try {
      loadAddon();
      addonError = null;
    } catch (err) {
      addonError = err as Error;
    }
  }
  if (addonError === null) return true;
  if (process.env.CI) t.fail(`native addon missing in CI: ${addonError.message}`);
  else t.plan(0, `native addon not built: ${addonError.message.split('\n')[0]}`);
  return false;
}

/** A temp folder removed when the test ends. */
export function tempDir(t: Test, prefix = 'mtpd-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
