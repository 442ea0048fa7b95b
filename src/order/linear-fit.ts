/** The adaptation cost at one FPN level: fit a linear map A -> B on training features, score on held-out ones. */
import { withCallSite } from '../errors.js';
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
  /** Mean squared error over B's elements on the held-out batches: d(A -> B) at this level. */
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
      fitLinearMap(trainX: Tensor[], trainY: Tensor[], valX: Tensor[], valY: Tensor[], options?: LinearFitOptions): Promise<LinearFitResult>;
    };
  }
}

/**
 * Each array holds feature batches (N, C, H, W) for the same images in the same order; A's maps
 * may be smaller than B's (they are upsampled bilinearly, the heterogeneous adapter).
 */
export async function fitLinearMap(
  train: { a: Tensor[]; b: Tensor[] },
  val: { a: Tensor[]; b: Tensor[] },
  options: LinearFitOptions = {},
): Promise<LinearFitResult> {
  const site = new Error().stack;
  try {
    return await native().order.fitLinearMap(train.a, train.b, val.a, val.b, options);
  } catch (err) {
    throw withCallSite(err, site);
  }
}
