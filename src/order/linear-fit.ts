/** The adaptation cost at one FPN level: fit a linear map A -> B on training features, score on held-out ones. */
import { MtpdError, withCallSite } from '../errors.js';
import { native } from '../native.js';
import type { Tensor } from '../tensor.js';

export interface LinearFitOptions {
  /** "closed-form" (ridge least squares from one streaming pass) or "sgd" (the paper's gradient descent). */
  fitter?: 'closed-form' | 'sgd';
  /** closed-form: ridge strength relative to the mean feature variance; negative or omitted: chosen by held-out error on the training batches. */
  ridge?: number;
  /** sgd: optimizer, learning rate, momentum (sgd only), steps (one batch each), seed. */
  optimizer?: 'adam' | 'sgd';
  lr?: number;
  momentum?: number;
  steps?: number;
  seed?: number;
}

export interface LinearFitResult {
  /** Mean squared error over B's elements (its valid positions, with masks) on the held-out batches: d(A -> B) at this level. */
  valMse: number;
  trainMse: number;
  trainPixels: number;
  valPixels: number;
  /** closed-form: the ridge strength used. */
  ridge: number;
  /** The fitted 1x1 conv: weight (C_B, C_A), bias (C_B). */
  weight: Tensor<'float32'>;
  bias: Tensor<'float32'>;
}

declare module '../native.js' {
  interface Binding {
    order: {
      fitLinearMap(
        trainX: Tensor[],
        trainY: Tensor[],
        valX: Tensor[],
        valY: Tensor[],
        options?: LinearFitOptions,
        masks?: { train: Tensor[]; val: Tensor[] },
      ): Promise<LinearFitResult>;
    };
  }
}

/** Feature batches of A and B for the same images in the same order, and optionally B's valid cells. */
export interface FitSplit {
  /** A's maps (N, C_A, H, W); without masks they may have another size (resized bilinearly onto B's whole map). */
  a: Tensor[];
  /** B's maps (N, C_B, H, W). */
  b: Tensor[];
  /** (N, 1, H, W): 1 where B's map holds an image (valid cells), 0 on padding; given for both splits or neither. */
  mask?: Tensor[];
}

/**
 * The linear map A -> B at one level, fitted on `train` and scored on `val`. With masks, A's maps
 * must already be aligned onto B's grid (src/distill/align.ts) and only valid positions count,
 * in the fit and in both MSEs.
 */
export async function fitLinearMap(train: FitSplit, val: FitSplit, options: LinearFitOptions = {}): Promise<LinearFitResult> {
  const site = new Error().stack;
  try {
    if ((train.mask === undefined) !== (val.mask === undefined)) {
      throw new MtpdError('ERR_MTPD_ARGUMENT', 'fitLinearMap: give masks for both splits or neither');
    }
    const masks = train.mask && val.mask ? { train: train.mask, val: val.mask } : undefined;
    return await native().order.fitLinearMap(train.a, train.b, val.a, val.b, options, masks);
  } catch (err) {
    throw withCallSite(err, site);
  }
}
