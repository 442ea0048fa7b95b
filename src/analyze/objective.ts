/**
 * The objective the analysis probes: L(θ), the detection loss (the sum of the detector's own
 * losses, classification + box regression, no distillation) of one model on the fixed training
 * subset, in eval mode (BatchNorm on its running statistics, so L is a function of the weights
 * alone), as the image-weighted mean over the subset's batches. The model's weights can be moved
 * to θ0 + Σ c_k d_k and back; Hessian-vector products are of the same L.
 */
import type { Detector } from '../detector.js';
import { MtpdError } from '../errors.js';
import type { TrainSubset } from './subset.js';
import { combine, fromTensors, type ParamShape, type ParamVector, toTensors } from './vector.js';

export class DetectionObjective {
  private constructor(
    readonly det: Detector,
    readonly subset: TrainSubset,
    /** The parameters the analysis moves: the model's trainable ones. */
    readonly shapes: ParamShape[],
    /** The model's own weights θ0 over `shapes`. */
    readonly theta: ParamVector,
  ) {}

  /** Over the trainable parameters of `det` (in eval mode from here on). */
  static async create(det: Detector, subset: TrainSubset): Promise<DetectionObjective> {
    if (subset.size === 0) throw new MtpdError('ERR_MTPD_ARGUMENT', 'the training subset is empty');
    const shapes = det.parameters().filter((p) => p.trainable).map((p) => ({ name: p.name, shape: p.shape }));
    if (shapes.length === 0) throw new MtpdError('ERR_MTPD_ARGUMENT', 'the model has no trainable parameters');
    await det.eval();
    const sd = await det.stateDict();
    return new DetectionObjective(det, subset, shapes, fromTensors(sd, shapes));
  }

  /** L at the model's current weights, and its named terms (image-weighted means over the subset). */
  async loss(): Promise<{ loss: number; terms: Record<string, number> }> {
    const terms: Record<string, number> = {};
    for (const b of this.subset.batches) {
      const w = b.images.length / this.subset.size;
      const l = await this.det.losses(b.images, b.targets);
      for (const [k, v] of Object.entries(l)) terms[k] = (terms[k] ?? 0) + w * v;
    }
    return { loss: Object.values(terms).reduce((a, b) => a + b, 0), terms };
  }

  /** Moves the weights to θ0 + Σ c_k d_k (directions over `shapes`). */
  async moveTo(terms: readonly [number, ParamVector][]): Promise<void> {
    const at = terms.length === 0 ? this.theta : combine([[1, this.theta], ...terms]);
    await this.det.loadStateDict(toTensors(at, this.shapes), { strict: false });
  }

  /** L at θ0 + Σ c_k d_k. The weights stay there until the next move or restore(). */
  async lossAt(terms: readonly [number, ParamVector][]): Promise<number> {
    await this.moveTo(terms);
    return (await this.loss()).loss;
  }

  /** Back to the model's own weights θ0. */
  async restore(): Promise<void> {
    await this.moveTo([]);
  }

  /** H v at the current weights (image-weighted mean over the subset's batches), with L there. */
  async hvp(v: ParamVector): Promise<{ product: ParamVector; gradient: ParamVector; loss: number }> {
    const vt = toTensors(v, this.shapes);
    let product: ParamVector | null = null;
    let gradient: ParamVector | null = null;
    let loss = 0;
    for (const b of this.subset.batches) {
      const w = b.images.length / this.subset.size;
      const r = await this.det.hessianVectorProduct(b.images, b.targets, vt);
      const hv = fromTensors(r.product, this.shapes);
      const g = fromTensors(r.gradient, this.shapes);
      product = product ? combine([[1, product], [w, hv]]) : combine([[w, hv]]);
      gradient = gradient ? combine([[1, gradient], [w, g]]) : combine([[w, g]]);
      loss += w * r.loss;
    }
    return { product: product as ParamVector, gradient: gradient as ParamVector, loss };
  }
}
