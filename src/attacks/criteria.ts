/**
 * Criteria: when does a point count as adversarial. Small values, separate from the attacks (as in
 * Foolbox 3), so that every attack's success is judged the same way by its base class.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';

export interface Criterion {
  readonly kind: 'misclassification' | 'targeted';
  /** True labels for misclassification, target labels for a targeted criterion; int32 `[B]`. */
  readonly labels: Tensor1D;
  /** bool `[B]`: the prediction (argmax of the scores) meets the criterion. */
  isAdversarial(scores: Tensor2D): Tensor1D;
  /**
   * `[B]`, negative once the criterion is met by a margin: `z_y − max_{i≠y} z_i` for
   * misclassification, `max_{i≠t} z_i − z_t` for a target `t`. Square and Carlini–Wagner minimise it.
   */
  margin(scores: Tensor2D): Tensor1D;
}

/** `z_y` and `max_{i≠y} z_i` per row, differentiable in `scores`. */
export function labelAndBestOther(scores: Tensor2D, labels: Tensor1D): { label: Tensor1D; other: Tensor1D } {
  return tf.tidy(() => {
    const mask = tf.oneHot(labels, scores.shape[1]).cast('float32');
    const label = tf.sum(tf.mul(scores, mask), 1) as Tensor1D;
    const lowest = tf.min(scores, 1, true);
    const other = tf.max(tf.where(tf.cast(mask, 'bool'), tf.sub(lowest, 1), scores), 1) as Tensor1D;
    return { label, other };
  });
}

/** Untargeted: the prediction differs from the true label. */
export function misclassification(labels: Tensor1D): Criterion {
  return {
    kind: 'misclassification',
    labels,
    isAdversarial: (scores) => tf.tidy(() => tf.notEqual(tf.argMax(scores, 1), labels) as Tensor1D),
    margin: (scores) =>
      tf.tidy(() => {
        const { label, other } = labelAndBestOther(scores, labels);
        return tf.sub(label, other) as Tensor1D;
      }),
  };
}

/** Targeted: the prediction equals the target label. */
export function targetedMisclassification(targets: Tensor1D): Criterion {
  return {
    kind: 'targeted',
    labels: targets,
    isAdversarial: (scores) => tf.tidy(() => tf.equal(tf.argMax(scores, 1), targets) as Tensor1D),
    margin: (scores) =>
      tf.tidy(() => {
        const { label, other } = labelAndBestOther(scores, targets);
        return tf.sub(other, label) as Tensor1D;
      }),
  };
}
