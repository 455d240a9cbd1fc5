/**
 * Ops whose tfjs kernels disagree between backends, written from kernels that agree, so that an
 * attack's result does not depend on `--backend`. Found by running the attack primitives on the
 * cpu and wasm backends side by side (test/backend/exact.test.ts keeps that comparison):
 * - tfjs-backend-wasm's `Sign` returns 0 for |x| < FLT_EPSILON (1.19e-7), so the L∞ direction of a
 *   small gradient vanished on WASM and attacks stalled on models whose gradients are small;
 * - `MaxPoolGrad` sends a tied window's gradient to its last maximum on WASM and to its first on
 *   cpu. The first is the rule of PyTorch and of ONNX Runtime's MaxPool indices, so it is ours.
 * Elsewhere the backends differ only on NaN (wasm's Maximum, Minimum and ClipByValue drop a NaN
 * that cpu propagates) and on summation order, which attack inputs never reach or which is rounding.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * sign(x) with sign(0) = sign(NaN) = 0 and ±1 for every other value, however small, on every backend.
 * Its gradient is zero, as tf.sign's (FGSM adversarial training differentiates through the step).
 *
 * @example
 *   exactSign(tf.tensor1d([1.2e-7, 1e-8, -4e-8, 0])).dataSync(); // [1, 1, -1, 0]
 */
export function exactSign<T extends tf.Tensor>(x: T): T {
  return signWithZeroGrad(x) as T;
}

const signWithZeroGrad = tf.customGrad((input) => {
  const x = input as tf.Tensor;
  const value = tf.tidy(() => tf.sub(tf.cast(tf.greater(x, 0), 'float32'), tf.cast(tf.less(x, 0), 'float32')));
  return { value, gradFunc: (dy) => tf.zerosLike(dy as tf.Tensor) };
});

/**
 * A `size`×`size`, stride-`size`, 'valid' max-pool of NHWC `x` whose gradient goes to the first
 * maximum of each window in row-major order (PyTorch's and ONNX Runtime's rule), on every backend.
 * Rows and columns the pool drops (a side not divisible by `size`) get a zero gradient.
 *
 * @example
 *   tf.grad((x) => tf.sum(maxPoolFirstMax(x as tf.Tensor4D, 2)))(tf.ones([1, 2, 2, 1])).dataSync(); // [1, 0, 0, 0]
 */
export function maxPoolFirstMax(x: tf.Tensor4D, size: number): tf.Tensor4D {
  const pool = tf.customGrad((input, save) => {
    const inputs = input as tf.Tensor4D;
    const value = tf.maxPool(inputs, size, size, 'valid');
    (save as tf.GradSaveFunc)([inputs, value]);
    return { value, gradFunc: (dy, saved) => firstMaxGrad(dy as tf.Tensor4D, saved[0] as tf.Tensor4D, saved[1] as tf.Tensor4D, size) };
  });
  return pool(x) as tf.Tensor4D;
}

function firstMaxGrad(dy: tf.Tensor4D, x: tf.Tensor4D, pooled: tf.Tensor4D, size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [batch, height, width, channels] = x.shape;
    const [h, w] = [pooled.shape[1], pooled.shape[2]];
    // Window offset (di, dj) of every window is the strided slice x[:, di::size, dj::size, :]; the
    // offsets are visited in row-major order and each window's gradient taken by the first that ties.
    let taken = tf.zerosLike(pooled).cast('bool');
    const rows: tf.Tensor4D[] = [];
    for (let di = 0; di < size; di++) {
      const pieces: tf.Tensor4D[] = [];
      for (let dj = 0; dj < size; dj++) {
        const at = tf.stridedSlice(x, [0, di, dj, 0], [batch, di + size * h, dj + size * w, channels], [1, size, size, 1]) as tf.Tensor4D;
        const hit = tf.logicalAnd(tf.equal(at, pooled), tf.logicalNot(taken));
        taken = tf.logicalOr(taken, hit);
        pieces.push(tf.where(hit, dy, tf.zerosLike(dy)));
      }
      // Interleave along the width: [B, h, w, size, C] → [B, h, w·size, C].
      rows.push(tf.reshape(tf.stack(pieces, 3), [batch, h, w * size, channels]));
    }
    // Interleave along the height: [B, h, size, w·size, C] → [B, h·size, w·size, C].
    const grad = tf.reshape(tf.stack(rows, 2), [batch, h * size, w * size, channels]) as tf.Tensor4D;
    const [padH, padW] = [height - h * size, width - w * size];
    return padH === 0 && padW === 0 ? grad : tf.pad(grad, [[0, 0], [0, padH], [0, padW], [0, 0]]);
  });
}
