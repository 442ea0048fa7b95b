/**
 * Which dataset category each output of a model stands for. A model trained here has one output
 * per dataset category (`dataset`: contiguous labels 0..C-1 in ascending order of category id, see
 * categories.ts); a model from a zoo keeps its own outputs:
 *
 *   coco91  torchvision's COCO detectors: 91 outputs indexed by COCO category id (output 0 and the
 *           ten ids COCO 2017 does not use are never trained)
 *   coco80  mmdetection's COCO detectors: 80 contiguous outputs, the COCO 2017 categories in
 *           ascending order of id
 *
 * The model's classes are matched to the dataset's categories by id or by name, so a COCO
 * checkpoint is evaluated (and trained) with the right labels on a COCO-format dataset whose
 * categories are COCO's, a subset of them, or renumbered.
 */
import { MtpdError } from '../errors.js';
import type { CocoCategory } from './categories.js';

export type ModelClasses = 'dataset' | 'coco91' | 'coco80';
export type ClassMatch = 'auto' | 'id' | 'name';

/** The 80 categories of COCO 2017 (instances_*2017.json), [id, name]. */
export const COCO_CATEGORIES: readonly (readonly [number, string])[] = [
  [1, 'person'], [2, 'bicycle'], [3, 'car'], [4, 'motorcycle'], [5, 'airplane'], [6, 'bus'], [7, 'train'],
  [8, 'truck'], [9, 'boat'], [10, 'traffic light'], [11, 'fire hydrant'], [13, 'stop sign'],
  [14, 'parking meter'], [15, 'bench'], [16, 'bird'], [17, 'cat'], [18, 'dog'], [19, 'horse'], [20, 'sheep'],
  [21, 'cow'], [22, 'elephant'], [23, 'bear'], [24, 'zebra'], [25, 'giraffe'], [27, 'backpack'],
  [28, 'umbrella'], [31, 'handbag'], [32, 'tie'], [33, 'suitcase'], [34, 'frisbee'], [35, 'skis'],
  [36, 'snowboard'], [37, 'sports ball'], [38, 'kite'], [39, 'baseball bat'], [40, 'baseball glove'],
  [41, 'skateboard'], [42, 'surfboard'], [43, 'tennis racket'], [44, 'bottle'], [46, 'wine glass'],
  [47, 'cup'], [48, 'fork'], [49, 'knife'], [50, 'spoon'], [51, 'bowl'], [52, 'banana'], [53, 'apple'],
  [54, 'sandwich'], [55, 'orange'], [56, 'broccoli'], [57, 'carrot'], [58, 'hot dog'], [59, 'pizza'],
  [60, 'donut'], [61, 'cake'], [62, 'chair'], [63, 'couch'], [64, 'potted plant'], [65, 'bed'],
  [67, 'dining table'], [70, 'toilet'], [72, 'tv'], [73, 'laptop'], [74, 'mouse'], [75, 'remote'],
  [76, 'keyboard'], [77, 'cell phone'], [78, 'microwave'], [79, 'oven'], [80, 'toaster'], [81, 'sink'],
  [82, 'refrigerator'], [84, 'book'], [85, 'clock'], [86, 'vase'], [87, 'scissors'], [88, 'teddy bear'],
  [89, 'hair drier'], [90, 'toothbrush']
];

/** One output slot of a model: the category it predicts, or null for a slot that is never trained. */
export type ClassSlot = CocoCategory | null;

/** The model's output slots for a kind of classes; `dataset` has one per dataset category. */
export function classSlots(kind: ModelClasses, dataset: readonly CocoCategory[]): ClassSlot[] {
  if (kind === 'dataset') return [...dataset].sort((a, b) => a.id - b.id).map((c) => ({ id: c.id, name: c.name }));
  if (kind === 'coco80') return COCO_CATEGORIES.map(([id, name]) => ({ id, name }));
  if (kind === 'coco91') {
    const slots: ClassSlot[] = new Array<ClassSlot>(91).fill(null);
    for (const [id, name] of COCO_CATEGORIES) slots[id] = { id, name };
    return slots;
  }
  throw new MtpdError('ERR_MTPD_ARGUMENT', `classes must be dataset, coco91 or coco80, got ${JSON.stringify(kind)}`);
}

/** Number of outputs of a model with these classes (coco91: 91, coco80: 80, dataset: its categories). */
export function numModelClasses(kind: ModelClasses, datasetClasses: number): number {
  return kind === 'coco91' ? 91 : kind === 'coco80' ? 80 : datasetClasses;
}

/** Names compare case-insensitively, with runs of spaces, '_' and '-' alike ("traffic_light" = "Traffic Light"). */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/[\s_-]+/g, ' ');
}

export interface ClassMapping {
  kind: ModelClasses;
  /** How the classes were matched: by id, by name, or trivially (dataset). */
  matchedBy: 'dataset' | 'id' | 'name';
  /** Number of model outputs. */
  numClasses: number;
  /** Model label -> dataset category id; -1 where the dataset has no such category (those detections are dropped). */
  categoryIds: Int32Array;
  /** Dataset label (contiguous, ascending id) -> model label; -1 where the model has no such class. */
  modelLabels: Int32Array;
  /** Dataset categories the model cannot predict (their AP is 0). */
  unmatched: CocoCategory[];
}

/**
 * Matches a model's classes to a dataset's categories. `match`: `id` (same category id), `name`
 * (same name, see normalizeName), or `auto` (by id when every dataset category's id is a model
 * class of the same name, else by name: a dataset that renumbers COCO's categories).
 */
export function mapClasses(kind: ModelClasses, dataset: readonly CocoCategory[], match: ClassMatch = 'auto', source = 'classes'): ClassMapping {
  const cats = [...dataset].sort((a, b) => a.id - b.id);
  const slots = classSlots(kind, cats);
  const categoryIds = new Int32Array(slots.length).fill(-1);
  const modelLabels = new Int32Array(cats.length).fill(-1);
  if (kind === 'dataset') {
    cats.forEach((c, i) => {
      categoryIds[i] = c.id;
      modelLabels[i] = i;
    });
    return { kind, matchedBy: 'dataset', numClasses: slots.length, categoryIds, modelLabels, unmatched: [] };
  }
  if (match !== 'auto' && match !== 'id' && match !== 'name') throw new MtpdError('ERR_MTPD_ARGUMENT', `${source}: classMatch must be auto, id or name, got ${JSON.stringify(match)}`);
  const byId = new Map<number, number>();
  const byName = new Map<string, number>();
  slots.forEach((s, label) => {
    if (!s) return;
    byId.set(s.id, label);
    byName.set(normalizeName(s.name), label);
  });
  const sameById = cats.every((c) => {
    const l = byId.get(c.id);
    return l !== undefined && normalizeName(slots[l]!.name) === normalizeName(c.name);
  });
  const matchedBy: 'id' | 'name' = match === 'id' || (match === 'auto' && sameById) ? 'id' : 'name';
  const unmatched: CocoCategory[] = [];
  cats.forEach((c, i) => {
    const label = matchedBy === 'id' ? byId.get(c.id) : byName.get(normalizeName(c.name));
    if (label === undefined) {
      unmatched.push({ ...c });
      return;
    }
    if (categoryIds[label] !== -1) {
      throw new MtpdError('ERR_MTPD_DATA', `${source}: dataset categories ${categoryIds[label]} and ${c.id} both match ${kind} class ${label} ("${slots[label]!.name}")`);
    }
    categoryIds[label] = c.id;
    modelLabels[i] = label;
  });
  return { kind, matchedBy, numClasses: slots.length, categoryIds, modelLabels, unmatched };
}

/** A one-line account of a mapping, e.g. for logs: what matched how, and what the model cannot predict. */
export function describeMapping(m: ClassMapping, name = 'model'): string {
  if (m.kind === 'dataset') return `${name}: ${m.numClasses} classes, the dataset's own`;
  const matched = m.modelLabels.length - m.unmatched.length;
  let s = `${name}: ${m.kind} classes (${m.numClasses} outputs), ${matched} of the dataset's ${m.modelLabels.length} categories matched by ${m.matchedBy}`;
  if (m.unmatched.length) s += `; the model has no class for ${m.unmatched.map((c) => `${c.id} "${c.name}"`).join(', ')}`;
  return s;
}
