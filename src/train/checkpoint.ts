/**
 * Checkpoints (detectron2/fvcore style): a folder per checkpoint under <run>/checkpoints, written
 * under a temporary name and renamed into place only when complete, then a `last_checkpoint`
 * pointer replaced atomically. Every file is listed with its size and SHA-256 in manifest.json,
 * so a reader can tell a complete checkpoint from a damaged one. A kill -9 at any moment leaves
 * the previous checkpoint and pointer intact; leftovers of an interrupted write are removed by
 * the next save.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MtpdError } from '../errors.js';
import { writeFileAtomic } from '../weights/atomic.js';
import { encodeSafetensors, loadSafetensors, type StateDict } from '../weights/safetensors.js';

export interface CheckpointPayload {
  /** Named weight sets: "student", "distiller", "optimizer", ... each written as safetensors. */
  weights: Record<string, StateDict>;
  /** Anything JSON: stage, iteration, data position, RNG state, scheduler state, metrics. */
  state: unknown;
  /** Stage-end checkpoints are kept when old ones are pruned. */
  permanent?: boolean;
}

interface Manifest {
  name: string;
  created: string;
  permanent: boolean;
  files: Record<string, { bytes: number; sha256: string }>;
}

export interface LoadedCheckpoint {
  name: string;
  dir: string;
  state: unknown;
  /** Reads one weight set (safetensors) of the checkpoint. */
  weights(set: string): Promise<StateDict>;
  sets: string[];
}

async function writeAndSync(path: string, chunks: Uint8Array[]): Promise<{ bytes: number; sha256: string }> {
  const fh = await open(path, 'w');
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) {
        const { bytesWritten } = await fh.write(c, off, c.byteLength - off);
        off += bytesWritten;
      }
      hash.update(c);
      bytes += c.byteLength;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    await fh.sync().catch(() => undefined);
    await fh.close();
  } catch {
    // not supported on this filesystem
  }
}

export class CheckpointManager {
  readonly dir: string;

  constructor(
    runDir: string,
    readonly keep = 3,
  ) {
    this.dir = join(runDir, 'checkpoints');
  }

  get pointer(): string {
    return join(this.dir, 'last_checkpoint');
  }

  /** Writes a complete checkpoint named `name` and points last_checkpoint at it. */
  async save(name: string, payload: CheckpointPayload): Promise<string> {
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) throw new MtpdError('ERR_MTPD_ARGUMENT', `bad checkpoint name "${name}"`);
    await mkdir(this.dir, { recursive: true });
    await this.restoreReplaced();
    await this.removeLeftovers();
    const tmp = join(this.dir, `.tmp-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp);
    const manifest: Manifest = { name, created: new Date().toISOString(), permanent: payload.permanent ?? false, files: {} };
    for (const [set, dict] of Object.entries(payload.weights)) {
      if (!/^[A-Za-z0-9_.-]+$/.test(set)) throw new MtpdError('ERR_MTPD_ARGUMENT', `bad weight set name "${set}"`);
      manifest.files[`${set}.safetensors`] = await writeAndSync(join(tmp, `${set}.safetensors`), encodeSafetensors(dict));
    }
    manifest.files['state.json'] = await writeAndSync(join(tmp, 'state.json'), [Buffer.from(JSON.stringify(payload.state))]);
    await writeAndSync(join(tmp, 'manifest.json'), [Buffer.from(JSON.stringify(manifest, null, 1))]);
    await syncDir(tmp);
    const final = join(this.dir, name);
    if (existsSync(final)) {
      const old = join(this.dir, `.old-${name}-${randomBytes(4).toString('hex')}`);
      await rename(final, old);
      await rename(tmp, final);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    await syncDir(this.dir);
    await writeFileAtomic(this.pointer, [Buffer.from(`${name}\n`)]);
    await this.prune(name);
    return final;
  }

  /** Names of complete checkpoints, oldest first. */
  async list(): Promise<string[]> {
    if (!existsSync(this.dir)) return [];
    const entries = await readdir(this.dir, { withFileTypes: true });
    const out: { name: string; created: string }[] = [];
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const m = await this.readManifest(e.name).catch(() => null);
      if (m) out.push({ name: e.name, created: m.created });
    }
    return out.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.name < b.name ? -1 : 1)).map((x) => x.name);
  }

  private async readManifest(name: string): Promise<Manifest> {
    return JSON.parse(await readFile(join(this.dir, name, 'manifest.json'), 'utf8')) as Manifest;
  }

  /** Checks sizes (and with `deep`, SHA-256) of every file against the manifest. */
  async verify(name: string, deep = true): Promise<boolean> {
    try {
      const m = await this.readManifest(name);
      for (const [f, info] of Object.entries(m.files)) {
        const p = join(this.dir, name, f);
        const s = await stat(p);
        if (s.size !== info.bytes) return false;
        if (deep) {
          const h = createHash('sha256').update(await readFile(p)).digest('hex');
          if (h !== info.sha256) return false;
        }
      }
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The newest complete checkpoint: the one last_checkpoint names when it verifies, else the
   * newest that does. null when there is none.
   */
  async loadLast(): Promise<LoadedCheckpoint | null> {
    if (existsSync(this.dir)) await this.restoreReplaced();
    const candidates: string[] = [];
    if (existsSync(this.pointer)) candidates.push((await readFile(this.pointer, 'utf8')).trim());
    candidates.push(...(await this.list()).reverse());
    for (const name of candidates) {
      if (!name || !(await this.verify(name))) continue;
      const dir = join(this.dir, name);
      const m = await this.readManifest(name);
      const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as unknown;
      const sets = Object.keys(m.files)
        .filter((f) => f.endsWith('.safetensors'))
        .map((f) => f.slice(0, -'.safetensors'.length));
      return {
        name,
        dir,
        state,
        sets,
        weights: async (set: string) => {
          if (!sets.includes(set)) throw new MtpdError('ERR_MTPD_WEIGHTS', `checkpoint ${name} has no weight set "${set}" (has ${sets.join(', ')})`);
          return (await loadSafetensors(join(dir, `${set}.safetensors`))).tensors;
        },
      };
    }
    return null;
  }

  /**
   * Replacing checkpoint X renames X to .old-X-<hex> before renaming the new one into place. A
   * kill between the two renames leaves X only under its .old- name: put it back (it was
   * complete), instead of letting removeLeftovers delete the newest checkpoint.
   */
  private async restoreReplaced(): Promise<void> {
    for (const e of await readdir(this.dir)) {
      const m = /^\.old-(.+)-[0-9a-f]{8}$/.exec(e);
      if (m?.[1] && !existsSync(join(this.dir, m[1]))) await rename(join(this.dir, e), join(this.dir, m[1]));
    }
  }

  private async removeLeftovers(): Promise<void> {
    for (const e of await readdir(this.dir)) {
      if (e.startsWith('.tmp-') || e.startsWith('.old-') || (e.startsWith('.last_checkpoint.tmp-'))) {
        await rm(join(this.dir, e), { recursive: true, force: true });
      }
    }
  }

  private async prune(current: string): Promise<void> {
    const names = await this.list();
    const regular: string[] = [];
    for (const n of names) {
      const m = await this.readManifest(n).catch(() => null);
      if (m && !m.permanent && n !== current) regular.push(n);
    }
    const excess = regular.length - (this.keep - 1);
    for (let i = 0; i < excess; i++) await rm(join(this.dir, regular[i] as string), { recursive: true, force: true });
  }
}
