/**
 * Differentiable building blocks whose gradients stay fast on WASM.
 *
 * The standard gradient of `matMul(x, w)` runs BatchMatMul with a transposed operand, about 15×
 * slower on the WASM backend than a plain one. Here every backward matmul is plain: transposes are
 * explicit `tf.transpose` copies (cheap next to the product), or precomputed once for frozen weights.
 */
import { tf, type Tensor, type Tensor1D, type Tensor2D } from '../backend/index.js';

/** A dense layer's weights: `w` is `[in, out]`; `wT`, when present, is its frozen transpose. */
export interface DenseWeights {
  w: Tensor2D;
  b?: Tensor1D;
  wT?: Tensor2D;
}

function plainMatMul(a: Tensor2D, b: Tensor2D): Tensor2D {
  return tf.matMul(a, b);
}

type Saver = tf.GradSaveFunc;
interface CustomResult {
  value: Tensor;
  gradFunc: (dy: Tensor, saved: Tensor[]) => Tensor | Tensor[];
}

/** `tf.customGrad` over a fixed list of tensor inputs, typed. */
function withGradient(f: (inputs: Tensor[], save: Saver) => CustomResult): (...inputs: Tensor[]) => Tensor {
  const wrapped = tf.customGrad(((...args: Array<Tensor | Saver>) => {
    const save = args[args.length - 1] as Saver;
    return f(args.slice(0, -1) as Tensor[], save);
  }) as Parameters<typeof tf.customGrad>[0]);
  return (...inputs: Tensor[]) => wrapped(...inputs);
}

const denseTrainable = withGradient(([x, w, b], save) => {
  save([x!, w!]);
  return {
    value: tf.add(plainMatMul(x as Tensor2D, w as Tensor2D), b!),
    gradFunc: (dy, saved) => {
      const [sx, sw] = saved as [Tensor2D, Tensor2D];
      return [
        plainMatMul(dy as Tensor2D, tf.transpose(sw)),
        plainMatMul(tf.transpose(sx), dy as Tensor2D),
        tf.sum(dy, 0),
      ];
    },
  };
});

/**
 * `x · w + b`. With `wT` (frozen weights: inference and attacks) the gradient flows to `x` only and
 * uses the stored transpose; without it (training) gradients flow to `x`, `w` and `b`.
 *
 * @example
 *   const y = dense(x, { w, b });  // x [B,784], w [784,1000] → y [B,1000]
 */
export function dense(x: Tensor2D, layer: DenseWeights): Tensor2D {
  const { w, b, wT } = layer;
  if (!wT) return denseTrainable(x, w, b ?? tf.zeros([w.shape[1]])) as Tensor2D;
  const frozen = withGradient(([input], save) => {
    save([]);
    const y = plainMatMul(input as Tensor2D, w);
    return { value: b ? tf.add(y, b) : y, gradFunc: (dy) => plainMatMul(dy as Tensor2D, wT) };
  });
  return frozen(x) as Tensor2D;
}

/**
 * `relu(u)^n` for an integer power, with the exact derivative `n·relu(u)^(n−1)`. Written as a custom
 * gradient so that the exponent is never differentiated (tfjs' pow gradient takes log of the base).
 */
export function rectPow(u: Tensor, n: number): Tensor {
  return withGradient(([x], save) => {
    const r = tf.relu(x!);
    save([r]);
    return {
      value: intPow(r, n),
      gradFunc: (dy, saved) => tf.mul(dy, tf.mul(n, intPow(saved[0]!, n - 1))),
    };
  })(u);
}

/** x^k for a non-negative integer k by repeated squaring (no log, exact for x ≥ 0). */
export function intPow(x: Tensor, k: number): Tensor {
  if (k === 0) return tf.onesLike(x);
  let result: Tensor | undefined;
  let base = x;
  let e = k;
  while (e > 0) {
    if (e & 1) result = result ? tf.mul(result, base) : base;
    e >>= 1;
    if (e > 0) base = tf.mul(base, base);
  }
  return result!;
}

/** Maxout: the max over `pieces` consecutive units, `[B, units·pieces]` → `[B, units]`. */
export function maxout(z: Tensor2D, pieces: number): Tensor2D {
  const [batch, width] = z.shape;
  return tf.max(tf.reshape(z, [batch, width / pieces, pieces]), 2);
}

/** Per-sample softmax cross-entropy `[B]` from logits and integer labels. */
export function crossEntropy(logits: Tensor2D, labels: Tensor1D): Tensor1D {
  const logp = tf.logSoftmax(logits);
  const onehot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
  return tf.neg(tf.sum(tf.mul(logp, onehot), 1));
}

/** Frozen transposes for every dense layer, so attack-time gradients never transpose. */
export function freezeDense(layer: { w: Tensor2D; b?: Tensor1D }): DenseWeights {
  return { ...layer, wT: tf.keep(tf.transpose(layer.w)) };
}
