/** The loss plumbing: test models' input gradients against finite differences, and the attack losses. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { dlrLoss, EvalCounter, targetedDlrLoss } from '../../src/attacks/index.js';
import { Evaluator, lossObjective } from '../../src/attacks/losses.js';
import type { LossName } from '../../src/models/classifier.js';
import { asRunner } from '../../src/models/runner.js';
import { build, FAMILIES, mnist, trainZoo, type Zoo } from './fixtures.js';
import { Rng } from '../../src/attacks/rng.js';

const test = mnist('t10k', 0, 2);

/** Central differences of Σ loss along `count` random pixels of the first sample, next to tf's gradient. */
function compare(f: (x: Tensor2D) => Tensor1D, x0: Float32Array, h: number, count: number): { fd: number[]; grad: number[] } {
  const x = tf.tensor2d(x0, [2, 784]);
  const grad = tf.tidy(() => tf.grad((xi) => tf.sum(f(xi as Tensor2D)))(x)).dataSync();
  const rng = new Rng(5);
  const fd: number[] = [];
  const picked: number[] = [];
  for (let k = 0; k < count; k++) {
    const d = rng.int(0, 783);
    const at = (delta: number): number => {
      const shifted = x0.slice();
      shifted[d]! += delta;
      return tf.tidy(() => tf.sum(f(tf.tensor2d(shifted, [2, 784])))).dataSync()[0]!;
    };
    fd.push((at(h) - at(-h)) / (2 * h));
    picked.push(grad[d]!);
  }
  x.dispose();
  return { fd, grad: picked };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`loss plumbing on ${backend}`, () => {
    let zoo: Zoo;
    beforeAll(async () => {
      zoo = await trainZoo();
      await initBackend({ backend });
    });

    it('input gradients of every test model match finite differences', () => {
      // Close to two stored memories of the poly model (the first training images), where its
      // rectified polynomial is neither flat nor saturated and float32 differences resolve it.
      const train = mnist('train', 0, 2);
      const mean = zoo.poly.mean;
      const x0 = train.x.map((v, i) => mean[i % 784]! + 0.85 * (v - mean[i % 784]!));
      const labels = tf.tensor1d(train.labels, 'int32');
      for (const family of FAMILIES) {
        const model = build(zoo, family);
        for (const loss of ['ce', 'model'] as LossName[]) {
          const { fd, grad } = compare((x) => model.loss(loss, x, labels), x0, 1e-3, 24);
          const scale = Math.max(...grad.map(Math.abs), 1e-12);
          fd.forEach((v, k) =>
            expect(Math.abs(v - grad[k]!), `${family}/${loss} pixel #${k}: fd ${v} vs grad ${grad[k]}`).toBeLessThanOrEqual(
              0.05 * Math.abs(grad[k]!) + 0.02 * scale,
            ),
          );
        }
        model.dispose();
      }
      labels.dispose();
    });

    it('the evaluator gives the model\'s own losses, their gradients and the scores in one pass', async () => {
      const x = tf.tensor2d(test.x, [2, 784]);
      const labels = tf.tensor1d(test.labels, 'int32');
      const targets = tf.tensor1d(test.labels.map((y) => (y + 1) % 10), 'int32');
      for (const family of FAMILIES) {
        const model = build(zoo, family);
        for (const loss of ['ce', 'model'] as LossName[]) {
          for (const t of [undefined, targets]) {
            const counter = new EvalCounter(2);
            const ev = new Evaluator(asRunner(model), lossObjective(loss, labels, t), counter);
            const e = await ev.withGrad(x);
            const got = tf.tidy(() => {
              const sign = t ? -1 : 1;
              const want = (xi: Tensor2D): Tensor1D => tf.mul(model.loss(loss, xi, t ?? labels), sign) as Tensor1D;
              // The attack's CE gradient is CE's exact direction rescaled per sample by 1/(1 − p_y),
              // so that a saturated softmax does not zero it (see crossEntropy).
              const hot = tf.oneHot(t ?? labels, model.numClasses);
              const rescale =
                loss === 'ce' ? tf.div(1, tf.sub(1, tf.sum(tf.mul(tf.softmax(model.scores(x)), hot), 1, true))) : tf.scalar(1);
              const wantGrad = tf.mul(tf.grad((xi) => tf.sum(want(xi as Tensor2D)))(x), rescale);
              // 1 − p_y cancels in float32 when p_y is near 1: compare CE's directions row by row.
              const cosine = tf.div(
                tf.sum(tf.mul(e.grad, wantGrad), 1),
                tf.mul(tf.add(tf.norm(e.grad, 2, 1), 1e-30), tf.add(tf.norm(wantGrad, 2, 1), 1e-30)),
              );
              return [
                tf.max(tf.abs(tf.sub(e.value, want(x)))),
                loss === 'ce' ? tf.mul(tf.max(tf.abs(tf.sub(1, cosine))), tf.max(tf.abs(e.grad))) : tf.max(tf.abs(tf.sub(e.grad, wantGrad))),
                tf.max(tf.abs(tf.sub(e.scores, model.scores(x)))),
                tf.max(tf.abs(e.grad)),
              ].map((v) => v.dataSync()[0]!);
            });
            tf.dispose([e.value, e.grad, e.scores]);
            const where = `${family}/${loss}/${t ? 'targeted' : 'untargeted'}`;
            expect(got[0], `${where} value`).toBeLessThan(1e-4);
            expect(got[1], `${where} gradient`).toBeLessThanOrEqual(1e-4 * Math.max(got[3]!, 1e-6));
            expect(got[2], `${where} scores`).toBe(0);
            expect(Array.from(counter.gradients), where).toEqual([1, 1]);
            expect(Array.from(counter.forwards), where).toEqual(loss === 'model' ? [1, 1] : [0, 0]);
          }
        }
        model.dispose();
      }
      tf.dispose([x, labels, targets]);
    });

    it('DLR losses match their formulas and their gradients match finite differences', () => {
      const rng = new Rng(9);
      const z = rng.normals(4 * 10).map((v) => 3 * v);
      const labels = Int32Array.from([0, 3, 7, 9]);
      const targets = Int32Array.from([5, 1, 2, 0]);
      const y = tf.tensor1d(labels, 'int32');
      const t = tf.tensor1d(targets, 'int32');
      const scores = tf.tensor2d(z, [4, 10]);
      const dlr = tf.tidy(() => dlrLoss(scores, y)).dataSync();
      const tdlr = tf.tidy(() => targetedDlrLoss(scores, y, t)).dataSync();
      for (let i = 0; i < 4; i++) {
        const row = Array.from(z.subarray(i * 10, i * 10 + 10));
        const sorted = [...row].sort((a, b) => b - a);
        const zy = row[labels[i]!]!;
        const other = Math.max(...row.filter((_, k) => k !== labels[i]));
        expect(dlr[i]).toBeCloseTo(-(zy - other) / (sorted[0]! - sorted[2]! + 1e-12), 4);
        expect(tdlr[i]).toBeCloseTo(-(zy - row[targets[i]!]!) / (sorted[0]! - 0.5 * (sorted[2]! + sorted[3]!) + 1e-12), 4);
      }
      for (const f of [(s: Tensor2D) => dlrLoss(s, y), (s: Tensor2D) => targetedDlrLoss(s, y, t)]) {
        const grad = tf.tidy(() => tf.grad((s) => tf.sum(f(s as Tensor2D)))(scores)).dataSync();
        for (let k = 0; k < 40; k++) {
          const at = (delta: number): number => {
            const shifted = z.slice();
            shifted[k]! += delta;
            return tf.tidy(() => tf.sum(f(tf.tensor2d(shifted, [4, 10])))).dataSync()[0]!;
          };
          expect((at(1e-3) - at(-1e-3)) / 2e-3, `score ${k}`).toBeCloseTo(grad[k]!, 2);
        }
      }
      tf.dispose([y, t, scores]);
    });
  });
}
