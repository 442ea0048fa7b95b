/**
 * Atomic file writes: a temp file in the same folder, fsync, rename over the target, fsync the folder.
 * `sync: false` (caches: anything that is recomputed when missing) skips both fsyncs: readers still
 * never see a half-written file while the machine runs (the rename is atomic), but after a power
 * loss the file may be empty or truncated, so a reader must treat such a file as missing.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function writeFileAtomic(path: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options: { sync?: boolean } = {}): Promise<void> {
  const sync = options.sync ?? true;
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'w');
  try {
    for await (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off);
        off += bytesWritten;
      }
    }
    if (sync) await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (!sync) return;
  try {
    const dir = await open(dirname(path), 'r');
    await dir.sync().catch(() => undefined);
    await dir.close();
  } catch {
    // Some filesystems refuse opening folders; the rename is still atomic.
  }
}
