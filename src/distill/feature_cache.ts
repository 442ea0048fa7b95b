/**
 * Teacher features cached on disk, one safetensors file per (model, weights hash, image,
 * transform): for the cost matrix and for repeated distillation runs. A teacher is run on one
 * image at a time for the cache, so an entry does not depend on the batch it was first seen in;
 * a batch is assembled by zero-padding each level to the largest map (bottom/right, as the
 * detector pads images). The padded cells are never distilled (the step aligns maps image by
 * image and gets each image's size from the teacher's resize rule, Detector.evalImageSizes), so
 * the batch equals running the teacher on it exactly when each image pads to the batch's size on
 * its own, and approximates it near the padded borders otherwise (the convolutions there saw
 * zeros instead of padding features).
 *
 * Entries are written atomically but not fsynced (a cache is recomputed when an entry is missing):
 * a file that a crash of the machine left empty or truncated is not a safetensors file, and is
 * dropped and counted as a miss.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MtpdError } from '../errors.js';
import type { Module } from '../module.js';
import { type Tensor, toBytes, zeros } from '../tensor.js';
import { loadSafetensors, saveSafetensors } from '../weights/safetensors.js';
import type { FeatureMaps } from './binding.js';

export interface FeatureKey {
  /** Model name, e.g. "retinanet_resnet50_fpn@800". */
  model: string;
  /** Hash of the weights (see weightsHash). */
  weights: string;
  /** Image id (dataset id or file name). */
  image: string | number;
  /** Whatever else decides the input: min/max size, flip, normalization ("min800-max1333-noflip"). */
  transform: string;
}

/** sha256 of a module's state dict (names, dtypes, shapes and bytes), hex. */
export async function weightsHash(module: Module): Promise<string> {
  const h = createHash('sha256');
  for (const [name, t] of await module.stateDict()) {
    h.update(`${name}\0${t.dtype}\0${t.shape.join(',')}\0`);
    h.update(toBytes(t));
  }
  return h.digest('hex');
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.@-]/g, '_').slice(0, 80) || '_';
}

export class FeatureCache {
  hits = 0;
  misses = 0;

  constructor(readonly dir: string) {}

  /** File of one entry: <dir>/<model>/<sha256 of the whole key>.safetensors */
  path(key: FeatureKey): string {
    const digest = createHash('sha256').update(JSON.stringify([key.model, key.weights, String(key.image), key.transform])).digest('hex');
    return join(this.dir, safeName(key.model), `${digest}.safetensors`);
  }

  async get(key: FeatureKey): Promise<FeatureMaps | null> {
    return (await this.getEntry(key))?.features ?? null;
  }

  /**
   * An entry with the extra metadata `put` stored with it (null: not cached). `buffer`: read into
   * a buffer the caller reuses (see loadSafetensors); the maps then view it.
   */
  async getEntry(key: FeatureKey, options: { buffer?: (bytes: number) => Uint8Array } = {}): Promise<{ features: FeatureMaps; extra: Record<string, string> } | null> {
    const p = this.path(key);
    if (!existsSync(p)) {
      this.misses++;
      return null;
    }
    let f;
    try {
      f = await loadSafetensors(p, options);
    } catch (err) {
      // A file a machine crash left truncated (entries are not fsynced): recomputed.
      if ((err as { code?: string }).code !== 'ERR_MTPD_WEIGHTS') throw err;
      await rm(p, { force: true });
      this.misses++;
      return null;
    }
    const m = f.metadata;
    if (m['mtpd.weights'] !== key.weights || m['mtpd.image'] !== String(key.image) || m['mtpd.transform'] !== key.transform) {
      throw new MtpdError('ERR_MTPD_DATA', `${p}: feature cache entry does not match its key (hash collision or edited file)`);
    }
    this.hits++;
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(m)) if (k.startsWith('mtpd.extra.')) extra[k.slice('mtpd.extra.'.length)] = v;
    return { features: Object.fromEntries(f.tensors), extra };
  }

  /** Stores an entry; `extra` strings (e.g. where each image lies in the maps) come back from getEntry. */
  async put(key: FeatureKey, features: FeatureMaps, extra: Record<string, string> = {}): Promise<void> {
    const p = this.path(key);
    await mkdir(join(this.dir, safeName(key.model)), { recursive: true });
    await saveSafetensors(p, new Map(Object.entries(features)), {
      'mtpd.model': key.model,
      'mtpd.weights': key.weights,
      'mtpd.image': String(key.image),
      'mtpd.transform': key.transform,
      ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`mtpd.extra.${k}`, v])),
    }, { sync: false });
  }

  /**
   * Features of a batch: cached per image, computed with `compute([image])` (batch of one) for
   * the misses, then padded into one batch per level.
   */
  async batch(
    keys: FeatureKey[],
    images: Tensor[],
    compute: (images: Tensor[]) => Promise<FeatureMaps>,
  ): Promise<FeatureMaps> {
    if (keys.length !== images.length) throw new MtpdError('ERR_MTPD_ARGUMENT', `${keys.length} keys for ${images.length} images`);
    const per: FeatureMaps[] = [];
    for (const [i, key] of keys.entries()) {
      let f = await this.get(key);
      if (!f) {
        f = await compute([images[i] as Tensor]);
        await this.put(key, f);
      }
      per.push(f);
    }
    return padBatch(per);
  }
}

/** Stacks per-image maps (1, C, H_i, W_i) into (N, C, max H, max W), zero-padding bottom/right. */
export function padBatch(per: FeatureMaps[]): FeatureMaps {
  const first = per[0];
  if (!first) throw new MtpdError('ERR_MTPD_ARGUMENT', 'padBatch needs at least one image');
  const out: FeatureMaps = {};
  for (const tap of Object.keys(first)) {
    const maps = per.map((f, i) => {
      const t = f[tap];
      if (!t || t.dtype !== 'float32' || t.shape.length !== 4 || t.shape[0] !== 1) {
        throw new MtpdError('ERR_MTPD_DATA', `features[${i}].${tap} must be a float32 (1, C, H, W) map`);
      }
      return t;
    });
    const c = maps[0]!.shape[1] as number;
    const h = Math.max(...maps.map((t) => t.shape[2] as number));
    const w = Math.max(...maps.map((t) => t.shape[3] as number));
    const res = zeros('float32', [maps.length, c, h, w]);
    maps.forEach((t, n) => {
      const [, tc, th, tw] = t.shape as [number, number, number, number];
      if (tc !== c) throw new MtpdError('ERR_MTPD_DATA', `features[${n}].${tap} has ${tc} channels, expected ${c}`);
      const src = t.data as Float32Array;
      for (let ch = 0; ch < c; ch++)
        for (let y = 0; y < th; y++) {
          const from = (ch * th + y) * tw;
          res.data.set(src.subarray(from, from + tw), ((n * c + ch) * h + y) * w);
        }
    });
    out[tap] = res;
  }
  return out;
}
