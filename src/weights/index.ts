/** Weight files in and out: safetensors (read/write) and torch.save `.pth` files (read). */
import { open } from 'node:fs/promises';
import { MtpdError } from '../errors.js';
import { loadPth } from './pth.js';
import { loadSafetensors, type StateDict } from './safetensors.js';

export { loadPth, type PthFile } from './pth.js';
export { decodeSafetensors, encodeSafetensors, loadSafetensors, readSafetensorsHeader, saveSafetensors, type SafetensorsFile, type StateDict } from './safetensors.js';
export { writeFileAtomic } from './atomic.js';

export type WeightsFormat = 'safetensors' | 'pth';

/** Tells the format from the first bytes, not the file name. */
export async function sniffWeightsFormat(path: string): Promise<WeightsFormat> {
  let head: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      head = Buffer.alloc(16);
      const { bytesRead } = await fh.read(head, 0, 16, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new MtpdError('ERR_MTPD_WEIGHTS', `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'pth';
  // safetensors: an 8-byte little-endian header length (far below 2^32), then '{'.
  if (head.length >= 9 && head[8] === 0x7b && head.readUInt32LE(4) === 0) return 'safetensors';
  if (head.length >= 2 && head[0] === 0x80 && (head[1] ?? 0) <= 5) {
    throw new MtpdError(
      'ERR_MTPD_WEIGHTS',
      `${path}: is in the legacy torch.save format (PyTorch < 1.6); re-save it with a newer PyTorch (torch.save(torch.load(f), f))`,
    );
  }
  throw new MtpdError('ERR_MTPD_WEIGHTS', `${path}: is neither a safetensors file nor a torch.save .pth archive`);
}

export interface ReadWeightsOptions {
  /** For .pth checkpoints that nest the state dict: the top-level key ("model", "state_dict", ...). */
  key?: string;
  /** Strip this prefix from every key that has it (e.g. "module." from DataParallel checkpoints). */
  stripPrefix?: string;
}

/** Reads a state dict from a safetensors or .pth file. */
export async function readWeights(path: string, options: ReadWeightsOptions = {}): Promise<StateDict> {
  const format = await sniffWeightsFormat(path);
  let tensors: StateDict;
  if (format === 'pth') tensors = (await loadPth(path, options.key !== undefined ? { key: options.key } : {})).tensors;
  else tensors = (await loadSafetensors(path)).tensors;
  const prefix = options.stripPrefix;
  if (prefix) {
    const out: StateDict = new Map();
    for (const [k, v] of tensors) out.set(k.startsWith(prefix) ? k.slice(prefix.length) : k, v);
    tensors = out;
  }
  return tensors;
}
