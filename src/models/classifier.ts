import type { Tensor1D, Tensor2D } from '../backend/index.js';

/**
 * Which loss an attack differentiates: `ce` is cross-entropy over the model's scores, `model` is the
 * family's own training loss (DAM's sum (c-t)^(2m), the prototype L∞ loss, CE plus the isometric term).
 */
export type LossName = 'ce' | 'model';
export const LOSS_NAMES: readonly LossName[] = ['ce', 'model'];

/**
 * The one model interface every family, and every user model, implements.
 *
 * Inputs are flat batches `[B, H*W*C]` of pixels in [0,1], row-major as {@link ImageRecord} carries
 * them; a family that works in another range (DAM's [-1,1]) converts inside. Every method returns new
 * tensors owned by the caller and is safe inside `tf.tidy` and `tf.grad`.
 */
export interface Classifier {
  /** Stable id used in every output record: `zoo:NAME`, a folder path, or a URL. */
  readonly id: string;
  readonly family: string;
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;

  /** Class scores `[B, numClasses]`; their argmax is the prediction, their softmax the confidence. */
  scores(x: Tensor2D): Tensor2D;

  /**
   * Per-sample loss `[B]` for the given integer labels, differentiable with respect to `x`. The sum
   * over the batch is the quantity the family trains on (for `model`), so attacks ascend it for
   * untargeted and descend it, with target labels, for targeted attacks.
   */
  loss(name: LossName, x: Tensor2D, labels: Tensor1D): Tensor1D;

  /** Frees every tensor the model owns. */
  dispose(): void;
}

/** A Dense Associative Memory: also exposes the energy of an input. */
export interface EnergyClassifier extends Classifier {
  /**
   * β·E at the input's lowest one-hot label state, `[B]`:
   * −max_α Σ_μ relu((s_μ + 2ξ^μ_α)/T)^n. Low for inputs the memories explain well.
   */
  energy(x: Tensor2D): Tensor1D;
}

/** A prototype model (DRP): also exposes its embedding and its frozen prototypes. */
export interface PrototypeClassifier extends Classifier {
  /** The embedding f(x), `[B, d]`. */
  embed(x: Tensor2D): Tensor2D;
  /** The prototypes P, `[C, d]` (a copy the caller owns). */
  prototypes(): Tensor2D;
}

/** The flat input size of a model: height × width × channels. */
export function inputSize(model: Pick<Classifier, 'inputShape'>): number {
  const [h, w, c] = model.inputShape;
  return h * w * c;
}
