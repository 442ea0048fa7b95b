/**
 * COCO category ids are sparse (1..90 with gaps for COCO 2017's 80 classes). Models see contiguous
 * labels 0..C-1 in ascending order of category id. Label 0 is a real class, NOT background:
 * RetinaNet predicts C sigmoid outputs, one per class, and has no background label.
 */
import { MtpdError } from '../errors.js';

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}

export class CategoryMap {
  /** Categories sorted by id; index = contiguous label. */
  readonly categories: readonly CocoCategory[];
  private readonly byId: Map<number, number>;

  constructor(categories: readonly CocoCategory[], source = 'categories') {
    const sorted = [...categories].sort((a, b) => a.id - b.id);
    this.byId = new Map();
    sorted.forEach((c, label) => {
      if (!Number.isInteger(c.id)) throw new MtpdError('ERR_MTPD_DATA', `${source}: category id ${JSON.stringify(c.id)} is not an integer`);
      if (this.byId.has(c.id)) throw new MtpdError('ERR_MTPD_DATA', `${source}: category id ${c.id} appears twice`);
      this.byId.set(c.id, label);
    });
    this.categories = sorted;
  }

  /** Number of classes C. */
  get size(): number {
    return this.categories.length;
  }

  get names(): string[] {
    return this.categories.map((c) => c.name);
  }

  get ids(): number[] {
    return this.categories.map((c) => c.id);
  }

  has(categoryId: number): boolean {
    return this.byId.has(categoryId);
  }

  /** COCO category id -> contiguous label 0..C-1 (-1 when unknown). */
  labelOf(categoryId: number): number {
    return this.byId.get(categoryId) ?? -1;
  }

  /** Contiguous label -> COCO category id (throws on an out-of-range label). */
  categoryIdOf(label: number): number {
    const c = this.categories[label];
    if (!Number.isInteger(label) || c === undefined) {
      throw new RangeError(`label ${label} is outside 0..${this.size - 1}`);
    }
    return c.id;
  }

  /** Vectorised label -> category id, e.g. for detections handed to COCO evaluation. */
  categoryIdsOf(labels: ArrayLike<number | bigint>): Int32Array {
    const out = new Int32Array(labels.length);
    for (let i = 0; i < labels.length; i++) out[i] = this.categoryIdOf(Number(labels[i]));
    return out;
  }

  toJSON(): CocoCategory[] {
    return this.categories.map((c) => ({ ...c }));
  }
}
