/**
 * Distances between a clean batch and a perturbed one, each with its projection onto the ε ball.
 * Small values separate from the attacks (Foolbox 3); ε is per sample, shape `[B, 1]`.
 */
import { exactSign, tf, type Tensor1D, type Tensor2D } from '../backend/index.js';

export type DistanceName = 'l0' | 'l2' | 'linf';

export interface Distance {
  readonly name: DistanceName;
  /** `[B]`: the norm of `x − x0` per row. */
  measure(x0: Tensor2D, x: Tensor2D): Tensor1D;
  /** The point of the ε ball around `x0` that the attack keeps of `x` (bounds are not applied). */
  project(x0: Tensor2D, x: Tensor2D, eps: Tensor2D): Tensor2D;
}

/** A norm with a steepest-ascent direction, for gradient attacks. */
export interface NormDistance extends Distance {
  readonly name: 'l2' | 'linf';
  /** The unit-norm direction that increases a linear function with gradient `g` the most. */
  direction(g: Tensor2D): Tensor2D;
}

/** Guards divisions by a norm that can be 0 (a zero gradient, an unperturbed row). */
const TINY = 1e-12;

export const L2: NormDistance = {
  name: 'l2',
  measure: (x0, x) => tf.tidy(() => tf.norm(tf.sub(x, x0), 'euclidean', 1) as Tensor1D),
  project: (x0, x, eps) =>
    tf.tidy(() => {
      const delta = tf.sub(x, x0);
      const norm = tf.norm(delta, 'euclidean', 1, true);
      const scale = tf.minimum(1, tf.div(eps, tf.maximum(norm, TINY)));
      return tf.add(x0, tf.mul(delta, scale)) as Tensor2D;
    }),
  direction: (g) => tf.tidy(() => tf.div(g, tf.maximum(tf.norm(g, 'euclidean', 1, true), TINY)) as Tensor2D),
};

export const Linf: NormDistance = {
  name: 'linf',
  measure: (x0, x) => tf.tidy(() => tf.max(tf.abs(tf.sub(x, x0)), 1) as Tensor1D),
  // ε is spread to the full shape first: WASM's Minimum/Maximum are ~25× slower when they broadcast
  // a [B, 1] operand than on equal shapes (a multiply broadcasts fast), and this runs every step.
  project: (x0, x, eps) =>
    tf.tidy(() => {
      const e = tf.mul(eps, tf.onesLike(x));
      return tf.add(x0, tf.minimum(tf.maximum(tf.sub(x, x0), tf.neg(e)), e)) as Tensor2D;
    }),
  // sign(0) = 0 (seeds-spec 2.1): a pixel with no gradient is left alone. Not tf.sign: on WASM it
  // is 0 below 1.19e-7, which stalls attacks on models with small gradients (see backend/exact.ts).
  direction: (g) => exactSign(g),
};

/** L0 counts changed pixels; its ε ball keeps the `floor(ε)` largest changes of each row. */
export const L0: Distance = {
  name: 'l0',
  measure: (x0, x) => tf.tidy(() => tf.sum(tf.cast(tf.notEqual(x, x0), 'float32'), 1) as Tensor1D),
  project: (x0, x, eps) =>
    tf.tidy(() => {
      const delta = tf.sub(x, x0) as Tensor2D;
      const size = tf.abs(delta);
      const dim = delta.shape[1];
      const keep = tf.cast(tf.clipByValue(tf.floor(eps), 0, dim), 'int32').reshape([-1]) as Tensor1D;
      const sorted = tf.topk(size, dim).values;
      const kth = tf.sum(tf.mul(sorted, tf.oneHot(tf.maximum(tf.sub(keep, tf.scalar(1, 'int32')), tf.scalar(0, 'int32')) as Tensor1D, dim)), 1, true);
      const threshold = tf.where(tf.equal(keep.reshape([-1, 1]), 0), tf.fill(kth.shape, Infinity), kth);
      const mask = tf.logicalAnd(tf.greaterEqual(size, threshold), tf.greater(size, 0));
      return tf.add(x0, tf.where(mask, delta, tf.zerosLike(delta))) as Tensor2D;
    }),
};

export const DISTANCES: Readonly<Record<DistanceName, Distance>> = { l0: L0, l2: L2, linf: Linf };
