/**
 * What a run keeps of each model's evaluation on the validation split, in its `eval/` folder:
 *
 *   eval/<name>.json              the 12 COCO stats and the weights they belong to (ModelResult)
 *   eval/<name>.detections.json   the model's detections, a COCO results array
 *
 * The detections let a report bootstrap any pair of models later without running them again.
 * Both files are written atomically, the detections first: the stats file marks both as done.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { bootstrap, type BootstrapOptions, type BootstrapResult } from '../eval/bootstrap.js';
import { evalError } from '../eval/store.js';
import { readJsonFile, type CocoDetection } from '../eval/index.js';
import { writeFileAtomic } from '../weights/atomic.js';

export interface EvalPaths {
  stats: string;
  detections: string;
}

/** A file name for a stage or model name: itself when it is safe, else a safe form plus a short hash (no two names share a file). */
export function fileNameOf(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.+-]/g, '_');
  return safe === name && !name.startsWith('.') ? name : `${safe.replace(/^\./, '_')}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

/** The cache files of model `name` in run folder `output`. */
export function evalPaths(output: string, name: string): EvalPaths {
  const f = fileNameOf(name);
  return { stats: join(output, 'eval', `${f}.json`), detections: join(output, 'eval', `${f}.detections.json`) };
}

/** Writes a COCO results array atomically, one detection per line. */
export async function writeDetections(path: string, dets: readonly CocoDetection[]): Promise<void> {
  const CHUNK = 4096;
  function* chunks(): Generator<Buffer> {
    if (dets.length === 0) {
      yield Buffer.from('[]\n');
      return;
    }
    for (let i = 0; i < dets.length; i += CHUNK) {
      const lines = dets.slice(i, i + CHUNK).map((d) => JSON.stringify(d));
      yield Buffer.from(`${i === 0 ? '[\n' : ',\n'}${lines.join(',\n')}${i + CHUNK >= dets.length ? '\n]\n' : ''}`);
    }
  }
  await writeFileAtomic(path, chunks());
}

/** Model `name`'s detections from run folder `output`; errors name the file. */
export function readDetections(output: string, name: string): CocoDetection[] {
  const path = evalPaths(output, name).detections;
  if (!existsSync(path)) evalError(`${path} does not exist: model "${name}" has no saved detections (evaluate it again)`);
  const v = readJsonFile(path);
  if (!Array.isArray(v)) evalError(`${path}: expected a JSON array of detections`);
  return v as CocoDetection[];
}

/**
 * The paired bootstrap of models `names` of run folder `output` from their saved detections,
 * against the validation ground truth `valAnnotations` (the instances file they were scored on).
 */
export function bootstrapRun(output: string, valAnnotations: string, names: readonly string[], options: BootstrapOptions = {}): BootstrapResult {
  const gt = readJsonFile(valAnnotations);
  return bootstrap(gt, names.map((name) => ({ name, detections: readDetections(output, name) })), options);
}
