/**
 * Tensor helpers shared by the detectors. Each uses only kernels that the cpu, wasm and tensorflow
 * backends all implement (no Sort/TopK, no MirrorPad), which a test checks.
 */
import { tf, type Tensor1D, type Tensor2D, type Tensor4D } from '../backend/index.js';

export type Divergence = 'js' | 'skl';

/**
 * A divergence per row between softmax(a) and softmax(b), from the logits, in nats:
 * - `js`:  Jensen–Shannon, ½KL(p‖m) + ½KL(q‖m) with m = (p+q)/2; symmetric, in [0, ln 2];
 * - `skl`: symmetric KL, KL(p‖q) + KL(q‖p) = Σ (p−q)(log p − log q); unbounded.
 * Computed from log-softmaxes so that saturated scores (DAM's) neither overflow nor give 0·log 0.
 */
export function softmaxDivergence(a: Tensor2D, b: Tensor2D, kind: Divergence): Tensor1D {
  return tf.tidy(() => {
    const lp = tf.logSoftmax(a);
    const lq = tf.logSoftmax(b);
    const p = tf.exp(lp);
    const q = tf.exp(lq);
    if (kind === 'skl') return tf.relu(tf.sum(tf.mul(tf.sub(p, q), tf.sub(lp, lq)), 1)) as Tensor1D;
    // log m = log((p+q)/2) = max(lp, lq) + log1p(exp(−|lp − lq|)) − ln 2, stable for any gap.
    const lm = tf.sub(tf.add(tf.maximum(lp, lq), tf.log1p(tf.exp(tf.neg(tf.abs(tf.sub(lp, lq)))))), Math.LN2);
    const js = tf.mul(0.5, tf.add(tf.sum(tf.mul(p, tf.sub(lp, lm)), 1), tf.sum(tf.mul(q, tf.sub(lq, lm)), 1)));
    // Rounding leaves ~1e-8 of either sign where p = q; a divergence is never negative.
    return tf.relu(js) as Tensor1D;
  });
}

/**
 * Each row standardised across its classes and scaled: κ·(s − mean(s)) / sd(s). Softmaxes of such
 * rows compare models by the shape of their scores, whatever their scale (a DAM's pre-tanh gaps
 * span about ±0.5, a cross-entropy MLP's logits ±10). A constant row becomes all zeros.
 */
export function standardizeRows(scores: Tensor2D, sharpness: number): Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(scores, 1, true);
    return tf.mul(tf.div(tf.sub(scores, mean), tf.maximum(tf.sqrt(variance), 1e-30)), sharpness) as Tensor2D;
  });
}

/** ‖softmax(a) − softmax(b)‖₁ per row, in [0, 2]. */
export function softmaxL1(a: Tensor2D, b: Tensor2D): Tensor1D {
  return tf.tidy(() => tf.sum(tf.abs(tf.sub(tf.softmax(a), tf.softmax(b))), 1) as Tensor1D);
}

/** The largest score minus the second largest, per row (≥ 0); needs at least two columns. */
export function topTwoGap(scores: Tensor2D): Tensor1D {
  return tf.tidy(() => {
    const top = tf.max(scores, 1);
    const isTop = tf.cast(tf.oneHot(tf.argMax(scores, 1), scores.shape[1]), 'bool');
    const second = tf.max(tf.where(isTop, tf.fill(scores.shape, -Infinity), scores), 1);
    return tf.sub(top, second) as Tensor1D;
  });
}

/** Bit-depth reduction to `bits` bits per value: round(x·(2^bits − 1)) / (2^bits − 1), x in [0, 1]. */
export function reduceBitDepth(x: Tensor2D, bits: number): Tensor2D {
  const levels = 2 ** bits - 1;
  return tf.tidy(() => tf.div(tf.round(tf.mul(x, levels)), levels) as Tensor2D);
}

/** `x` shifted by one along `axis` (1: rows, 2: columns), the first row or column repeated. */
function shiftBack(x: Tensor4D, axis: 1 | 2): Tensor4D {
  const [b, h, w, c] = x.shape;
  const size: [number, number, number, number] = axis === 1 ? [b, h - 1, w, c] : [b, h, w - 1, c];
  const edge: [number, number, number, number] = axis === 1 ? [b, 1, w, c] : [b, h, 1, c];
  return tf.concat([tf.slice(x, [0, 0, 0, 0], edge), tf.slice(x, [0, 0, 0, 0], size)], axis);
}

/**
 * 2×2 median smoothing of flat images of shape `[height, width, channels]`, each channel on its own.
 * The window of pixel (i, j) is rows i−1..i and columns j−1..j, with the first row and column
 * repeated at the border (scipy.ndimage's `median_filter(size=2, mode='reflect')` window, as Xu et
 * al. 2018 used). The median of four values is the mean of the middle two,
 * (a + b + c + d − max − min) / 2, which needs no sort. scipy takes the upper middle one instead.
 */
export function median2x2(x: Tensor2D, shape: readonly [number, number, number]): Tensor2D {
  return tf.tidy(() => {
    const img = tf.reshape(x, [x.shape[0], ...shape]) as Tensor4D;
    const up = shiftBack(img, 1);
    const views = [img, up, shiftBack(img, 2), shiftBack(up, 2)];
    const hi = tf.maximum(tf.maximum(views[0]!, views[1]!), tf.maximum(views[2]!, views[3]!));
    const lo = tf.minimum(tf.minimum(views[0]!, views[1]!), tf.minimum(views[2]!, views[3]!));
    const med = tf.mul(0.5, tf.sub(tf.sub(tf.addN(views), hi), lo));
    return tf.reshape(med, x.shape) as Tensor2D;
  });
}
