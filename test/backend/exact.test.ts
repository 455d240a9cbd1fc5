/**
 * The attack primitives give the same answer on every backend that starts here (tfjs-backend-wasm's
 * Sign is 0 below 1.19e-7 and its MaxPoolGrad picks a tied window's last maximum; see
 * src/backend/exact.ts), and the L∞ direction is an exact sign.
 */
import { describe, expect, it } from 'vitest';
import { BACKEND_NAMES, exactSign, initBackend, maxPoolFirstMax, tf, type Tensor2D, type Tensor4D } from '../../src/backend/index.js';
import { L2, Linf } from '../../src/attacks/distances.js';

async function available(): Promise<string[]> {
  const names: string[] = [];
  for (const name of BACKEND_NAMES) {
    try {
      await initBackend({ backend: name });
      names.push(name);
    } catch {
      // tfjs-node is an optional peer: a backend that cannot start here is not one attacks run on.
    }
  }
  return names;
}

/** Small, tiny, subnormal, signed-zero and tied finite values: where kernels take shortcuts. */
const TRICKY = [1.2e-7, 1.19e-7, 1e-8, -4e-8, 0, -0, 1e-38, -1e-40, 1e-45, 3, -2.5, 0.5, -0.5, 1.5, 2.5, 1e30, -1e30, 0.5, 3, -1e-8];

/** Each primitive an attack step uses, on `TRICKY` (and its reverse where it takes two operands). */
const PRIMITIVES: Record<string, (a: Tensor2D, b: Tensor2D) => tf.Tensor> = {
  'Linf.direction': (a) => Linf.direction(a),
  'L2.direction': (a) => L2.direction(a),
  exactSign: (a) => exactSign(a),
  abs: (a) => tf.abs(a),
  greater: (a, b) => tf.greater(a, b),
  less: (a, b) => tf.less(a, b),
  equal: (a, b) => tf.equal(a, b),
  maximum: (a, b) => tf.maximum(a, b),
  minimum: (a, b) => tf.minimum(a, b),
  'clipByValue [0,1]': (a) => tf.clipByValue(a, 0, 1),
  'clipByValue ±1e-8': (a) => tf.clipByValue(a, -1e-8, 1e-8),
  'Linf.project': (a, b) => Linf.project(a, b, tf.fill([2, 1], 1e-8)),
  'max-pool': (a) => maxPoolFirstMax(tf.reshape(a, [1, 4, 5, 1]) as Tensor4D, 2),
  'max-pool gradient': (a) => tf.grad((x) => tf.sum(maxPoolFirstMax(x as Tensor4D, 2)))(tf.reshape(a, [1, 4, 5, 1])),
};

describe('attack primitives agree on every backend', () => {
  it('the L∞ direction of [1.2e-7, 1e-8, −4e-8, 0] is [1, 1, −1, 0] everywhere', async () => {
    const backends = await available();
    expect(backends).toEqual(expect.arrayContaining(['wasm', 'cpu']));
    for (const name of backends) {
      await initBackend({ backend: name });
      const g = tf.tensor2d([[1.2e-7, 1e-8, -4e-8, 0]]);
      expect(Array.from(Linf.direction(g).dataSync()), name).toEqual([1, 1, -1, 0]);
      expect(Array.from(exactSign(tf.tensor1d([NaN, -0, 5e-45])).dataSync()), name).toEqual([0, 0, 1]);
    }
  });

  it('each primitive gives bit-identical results on tiny, subnormal and tied values', async () => {
    const results = new Map<string, Record<string, number[]>>();
    for (const name of await available()) {
      await initBackend({ backend: name });
      const before = tf.memory().numTensors;
      for (const [op, f] of Object.entries(PRIMITIVES)) {
        const out = tf.tidy(() => {
          const a = tf.tensor2d(TRICKY, [2, 10]);
          const b = tf.reverse(a);
          // As numbers: −0 equals 0 (cpu's clip turns −0 into 0, wasm's keeps it).
          return Array.from(f(a, b).dataSync(), (v) => v + 0);
        });
        results.set(op, { ...results.get(op), [name]: out });
      }
      expect(tf.memory().numTensors, name).toBe(before);
    }
    for (const [op, byBackend] of results) {
      const [first, ...rest] = Object.values(byBackend);
      for (const other of rest) expect(other, op).toEqual(first);
    }
  });

  it('a tied max-pool window sends its gradient to its first maximum, as PyTorch does', async () => {
    // Two rows of three 2×2 windows (the seventh column is dropped): all tied, one tie on the
    // bottom row, one unique maximum in the second row.
    const x = [1, 1, 1, 1, 2, 3, 3, 0, 0, 0, 0, 0, 4, 4, 1, 4, 9, 9, 9, 9, 9];
    const expected = [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
    for (const name of await available()) {
      await initBackend({ backend: name });
      const weights = tf.tensor4d([1, 2, 3], [1, 1, 3, 1]);
      const grad = tf.grad((input) => tf.sum(tf.mul(maxPoolFirstMax(input as Tensor4D, 2), weights)))(tf.tensor4d(x, [1, 3, 7, 1]));
      expect(Array.from(grad.dataSync()), name).toEqual(expected);
      expect(Array.from(maxPoolFirstMax(tf.tensor4d(x, [1, 3, 7, 1]), 2).dataSync()), name).toEqual([1, 1, 4]);
    }
  });

  it('without ties its gradient is tfjs max-pool’s', async () => {
    for (const name of await available()) {
      await initBackend({ backend: name });
      const x = tf.randomUniform([3, 10, 11, 4], 0, 1, 'float32', 7) as Tensor4D;
      const dy = tf.randomUniform([3, 5, 5, 4], 0, 1, 'float32', 8);
      const ours = tf.grad((v) => tf.sum(tf.mul(maxPoolFirstMax(v as Tensor4D, 2), dy)))(x);
      const theirs = tf.grad((v) => tf.sum(tf.mul(tf.maxPool(v as Tensor4D, 2, 2, 'valid'), dy)))(x);
      expect(Array.from(ours.dataSync()), name).toEqual(Array.from(theirs.dataSync()));
    }
  });
});
