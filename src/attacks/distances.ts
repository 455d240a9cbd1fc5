/**
 * Distances between a clean batch and a perturbed one, each with its projection onto the ε ball.
 * Small values separate from the attacks (Foolbox 3); ε is per sample, shape `[B, 1]`.
 */
import { exactSign, tf, type Tensor1D, type Tensor2D } from '../backend/index.js';

export type DistanceName = 'l0' | 'l1' | 'l2' | 'linf';

export interface Distance {
  readonly name: DistanceName;
  /** `[B]`: the norm of `x − x0` per row. */
  measure(x0: Tensor2D, x: Tensor2D): Tensor1D;
  /** The point of the ε ball around `x0` that the attack keeps of `x` (bounds are not applied). */
  project(x0: Tensor2D, x: Tensor2D, eps: Tensor2D): Tensor2D;
}

/** A norm with a steepest-ascent direction, for gradient attacks. */
export interface NormDistance extends Distance {
  readonly name: 'l1' | 'l2' | 'linf';
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

/**
 * L1. Its projection onto the ε ball is the sort-based soft threshold of Duchi et al., "Efficient
 * projections onto the l1-ball for learning in high dimensions", ICML 2008; its steepest direction
 * is the one coordinate of largest |g| (sparser-than-dense L1 attacks such as SLIDE spread it over a
 * top fraction of coordinates themselves).
 */
export const L1: NormDistance = {
  name: 'l1',
  measure: (x0, x) => tf.tidy(() => tf.sum(tf.abs(tf.sub(x, x0)), 1) as Tensor1D),
  project: (x0, x, eps) =>
    tf.tidy(() => {
      const delta = tf.sub(x, x0) as Tensor2D;
      const dim = delta.shape[1];
      const size = tf.abs(delta);
      const inside = tf.lessEqual(tf.sum(size, 1, true), eps);
      const sorted = tf.topk(size, dim).values;
      const cumulative = tf.cumsum(sorted, 1);
      const ranks = tf.range(1, dim + 1).reshape([1, dim]);
      // ρ: how many of the largest entries stay non-zero; they form a prefix of the sorted row.
      const rho = tf.sum(tf.cast(tf.greater(tf.mul(sorted, ranks), tf.sub(cumulative, eps)), 'float32'), 1, true);
      const at = tf.oneHot(tf.cast(tf.sub(tf.maximum(rho, 1), 1), 'int32').reshape([-1]), dim);
      const theta = tf.maximum(tf.div(tf.sub(tf.sum(tf.mul(cumulative, at), 1, true), eps), tf.maximum(rho, 1)), 0);
      // δ − clip(δ, −θ, θ) is the soft threshold sign(δ)·max(|δ| − θ, 0) without a sign.
      const shrunk = tf.sub(delta, tf.minimum(tf.maximum(delta, tf.neg(theta)), theta));
      const keep = tf.greater(tf.mul(tf.cast(inside, 'float32'), tf.onesLike(delta)), 0);
      return tf.add(x0, tf.where(keep, delta, shrunk)) as Tensor2D;
    }),
  direction: (g) =>
    tf.tidy(() => {
      const top = tf.oneHot(tf.argMax(tf.abs(g), 1), g.shape[1]).cast('float32');
      return tf.mul(top, exactSign(g)) as Tensor2D;
    }),
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

export const DISTANCES: Readonly<Record<DistanceName, Distance>> = { l0: L0, l1: L1, l2: L2, linf: Linf };
