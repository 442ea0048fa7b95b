/**
 * The frozen teachers' FPN maps of a run, computed once per (teacher, image, flip) and reused by
 * every stage and baseline that distils from that teacher (the progressive stages, direct,
 * ensemble, every node of `mtpd orders`), on disk through the feature cache in <output>/features.
 *
 * A training batch's teacher maps are decided by the image (the dataset's annotation file, by path
 * and content, and the image's id and decoded size), whether the loader flipped it, the teacher
 * (its weights, and its options, among them its resolution: a teacher runs in eval mode, so at its
 * last min size), and how it runs (mixed precision or float32, the device); the key holds all of
 * them, so a run folder reused with another `schedule.amp`, device or dataset never reads maps made
 * under the old one. The loader's own multi-scale choice only changes the student's input (the
 * detector resizes), never the teacher's.
 *
 * On a miss the teacher runs once on the batch's missing images together when they all resize to
 * the same size (each then pads to the batch's size on its own, so an image's maps do not depend
 * on the batch it came in), else on each missing image alone; the maps are then written image by
 * image. Reads and writes are the same values whether an entry was just computed or read, so a
 * stage gives the same steps on a resumed run as on an uninterrupted one.
 *
 * Bounded: once the folder holds `maxBytes`, no entry is added and further misses are computed
 * on each use (the run's results do not change, only its speed).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Detector } from '../detector.js';
import { FeatureCache, type FeatureKey, padBatch, weightsHash } from '../distill/feature_cache.js';
import type { FeatureMaps } from '../distill/binding.js';
import type { Tensor } from '../tensor.js';
import { imageHW } from './inputs.js';

/** What decides a training image's teacher input besides the teacher: the image and its flip. */
export interface TeacherImage {
  /** Dataset image id. */
  id: number;
  flipped: boolean;
}

/** How the teacher runs on a batch, beyond its weights and options. */
export interface TeacherRun {
  /** The teacher's forward pass under CUDA autocast (schedule.amp). */
  amp?: boolean;
}

/** sha256 of a file's bytes (hex), streamed; '' when there is no such file. */
async function fileHash(file: string): Promise<string> {
  if (!existsSync(file)) return '';
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function folderBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += folderBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

function bytesOf(f: FeatureMaps): number {
  let n = 0;
  for (const t of Object.values(f)) n += t.data.byteLength;
  return n;
}

/** Splits (N, C, H, W) maps into N entries of (1, C, H, W). */
function splitBatch(f: FeatureMaps, n: number): FeatureMaps[] {
  const out: FeatureMaps[] = Array.from({ length: n }, () => ({}));
  for (const [tap, t] of Object.entries(f)) {
    const [, c, h, w] = t.shape as [number, number, number, number];
    const per = c * h * w;
    const src = t.data as Float32Array;
    for (let i = 0; i < n; i++) (out[i] as FeatureMaps)[tap] = { dtype: 'float32', shape: [1, c, h, w], data: src.slice(i * per, (i + 1) * per) };
  }
  return out;
}

export class TeacherCache {
  readonly cache: FeatureCache;
  /** Entries computed but not written because the folder was full. */
  unwritten = 0;
  /** Wall seconds spent reading entries, running the teacher on misses, and writing entries. */
  readonly seconds = { read: 0, compute: 0, write: 0 };
  private bytes: number | null = null;
  private readonly identities = new Map<Detector, Promise<{ model: string; weights: string; options: string }>>();
  private datasetId: Promise<string> | null = null;

  /**
   * @param dir the cache folder (<output>/features)
   * @param maxBytes the most the folder may hold
   * @param dataset what names the images (the training annotation file): its path, and its
   *   content's hash when it is a file, are part of every key
   */
  constructor(
    readonly dir: string,
    readonly maxBytes: number,
    readonly dataset: string,
  ) {
    this.cache = new FeatureCache(dir);
  }

  get hits(): number {
    return this.cache.hits;
  }

  get misses(): number {
    return this.cache.misses;
  }

  /** A teacher's part of the key: its name, weights and options (resolution, anchors, ...). */
  private identity(name: string, teacher: Detector) {
    let id = this.identities.get(teacher);
    if (!id) {
      id = weightsHash(teacher).then((weights) => ({ model: name, weights, options: JSON.stringify(teacher.resolved) }));
      this.identities.set(teacher, id);
    }
    return id;
  }

  /** The dataset's part of the key: the annotation file's path and content hash (computed once). */
  private datasetKey(): Promise<string> {
    this.datasetId ??= fileHash(this.dataset).then((h) => (h ? `${this.dataset}@sha256:${h}` : this.dataset));
    return this.datasetId;
  }

  /** The keys of a batch's images, image by image. */
  private async keys(name: string, teacher: Detector, images: TeacherImage[], inputs: Tensor[], how: TeacherRun): Promise<FeatureKey[]> {
    const id = await this.identity(name, teacher);
    const dataset = await this.datasetKey();
    const precision = how.amp ? 'amp' : 'fp32';
    const device = teacher.config.device ?? 'cpu';
    return images.map((im, i) => {
      const x = inputs[i];
      // the decoded size as the teacher sees it, whatever the layout
      const size = x ? imageHW(x).join('x') : '?';
      return {
        model: id.model,
        weights: id.weights,
        image: `${dataset}#${im.id}`,
        transform: `${im.flipped ? 'flip' : 'noflip'} in=${size} ${precision} ${device} ${id.options}`,
      };
    });
  }

  /** The cache key of one image's maps (what decides them; see the file's comment). */
  async keyOf(name: string, teacher: Detector, image: TeacherImage, input: Tensor, how: TeacherRun = {}): Promise<FeatureKey> {
    return (await this.keys(name, teacher, [image], [input], how))[0] as FeatureKey;
  }

  /**
   * The teacher's maps of a batch, (N, C, H, W) per tap, from the cache where it has them;
   * `run(images)` runs the teacher (eval mode, no grad) on the others, as `how` says (its
   * precision is part of the key).
   */
  async batch(name: string, teacher: Detector, meta: TeacherImage[], images: Tensor[], run: (images: Tensor[]) => Promise<FeatureMaps>, how: TeacherRun = {}): Promise<FeatureMaps> {
    if (meta.length !== images.length) throw new RangeError(`teacher cache: ${meta.length} image records for ${images.length} images`);
    const keys = await this.keys(name, teacher, meta, images, how);
    const per: (FeatureMaps | null)[] = [];
    let t0 = performance.now();
    for (const k of keys) per.push(await this.cache.get(k));
    this.seconds.read += (performance.now() - t0) / 1e3;
    const missing = per.flatMap((f, i) => (f ? [] : [i]));
    if (missing.length > 0) {
      t0 = performance.now();
      const sizes = teacher.evalImageSizes(missing.map((i) => imageHW(images[i] as Tensor)));
      const same = sizes.every((s) => s[0] === sizes[0]![0] && s[1] === sizes[0]![1]);
      const computed = same
        ? splitBatch(await run(missing.map((i) => images[i] as Tensor)), missing.length)
        : await Promise.all(missing.map((i) => run([images[i] as Tensor])));
      this.seconds.compute += (performance.now() - t0) / 1e3;
      t0 = performance.now();
      for (const [j, i] of missing.entries()) {
        const f = computed[j] as FeatureMaps;
        per[i] = f;
        await this.put(keys[i] as FeatureKey, f);
      }
      this.seconds.write += (performance.now() - t0) / 1e3;
    }
    return padBatch(per as FeatureMaps[]);
  }

  private async put(key: FeatureKey, f: FeatureMaps): Promise<void> {
    if (this.bytes === null) this.bytes = folderBytes(this.dir);
    const size = bytesOf(f);
    if (this.bytes + size > this.maxBytes) {
      this.unwritten++;
      return;
    }
    await this.cache.put(key, f);
    this.bytes += size;
  }
}
