/** FGSM against the analytic perturbation of linear softmax models. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { LinfFgsm, parseAttackSpec } from '../../src/attacks/index.js';
import { DenseModel, mnist, tensors, trainZoo, type DenseWeights, type Zoo } from './fixtures.js';

const test = mnist('t10k', 0, 16);

/** ∇_x CE for z = xW + b, in float64: Σ_c W[:, c] (p_c − [c = y]). */
function ceGradient(weights: DenseWeights, x: Float32Array, y: number): Float64Array {
  const { w, b, outputs } = weights.layers[0]!;
  const z = Array.from({ length: outputs }, (_, c) => x.reduce((s, v, d) => s + v * w[d * outputs + c]!, b[c]!));
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const sum = e.reduce((s, v) => s + v, 0);
  const g = new Float64Array(x.length);
  for (let d = 0; d < x.length; d++) {
    for (let c = 0; c < outputs; c++) g[d]! += w[d * outputs + c]! * (e[c]! / sum - (c === y ? 1 : 0));
  }
  return g;
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`FGSM on ${backend}`, () => {
    let zoo: Zoo;
    beforeAll(async () => {
      zoo = await trainZoo();
      await initBackend({ backend });
    });

    it('on a two-class linear model is exactly ε·sign(w_other − w_true), with sign(0) = 0', async () => {
      // Every third pixel has no weight: its gradient is exactly 0, so it must not change.
      const w = new Float32Array(784 * 2);
      for (let d = 0; d < 784; d++) {
        w[d * 2] = d % 3 === 0 ? 0 : Math.sin(d) / 10;
        w[d * 2 + 1] = d % 3 === 0 ? 0 : Math.cos(d) / 10;
      }
      const model = new DenseModel('test:two', 'linear', { layers: [{ w, b: new Float32Array(2), inputs: 784, outputs: 2 }] }, 'ce');
      const labels = test.labels.map((y) => y % 2);
      const { x } = tensors(test);
      const y = tf.tensor1d(labels, 'int32');
      const eps = 0.1;
      for (const clip of [true, false]) {
        const r = await new LinfFgsm({ eps, clip }).run(model, x, y, { seed: 0 });
        const predicted = await tf.tidy(() => tf.argMax(model.scores(x), 1)).data();
        for (let i = 0; i < test.count; i++) {
          if (predicted[i] !== labels[i]) continue;
          const other = 1 - labels[i]!;
          for (let d = 0; d < 784; d++) {
            const v = test.x[i * 784 + d]!;
            const step = eps * Math.sign(w[d * 2 + other]! - w[d * 2 + labels[i]!]!);
            const want = clip ? Math.min(1, Math.max(0, v + step)) : v + step;
            expect(Math.abs(r.adversarial[i * 784 + d]! - want), `clip=${clip} sample ${i} pixel ${d}`).toBeLessThan(1e-6);
          }
        }
      }
      tf.dispose([x, y]);
      model.dispose();
    });

    it('on a trained 10-class softmax model matches ε·sign(Σ_c w_c (p_c − y_c))', async () => {
      const model = new DenseModel('test:linear', 'linear', zoo.linear, 'ce');
      const { x, labels } = tensors(test);
      const eps = 0.05;
      const r = await parseAttackSpec(`fgsm:eps=${eps},clip=false`).run(model, x, labels, { seed: 0 });
      const predicted = await tf.tidy(() => tf.argMax(model.scores(x), 1)).data();
      let compared = 0;
      for (let i = 0; i < test.count; i++) {
        if (predicted[i] !== test.labels[i]) continue;
        const g = ceGradient(zoo.linear, test.x.subarray(i * 784, (i + 1) * 784), test.labels[i]!);
        const scale = Math.max(...g.map(Math.abs));
        for (let d = 0; d < 784; d++) {
          // Skip components too small for float32 to sign reliably.
          if (Math.abs(g[d]!) < 1e-4 * scale) continue;
          compared++;
          expect(r.adversarial[i * 784 + d]! - test.x[i * 784 + d]!, `sample ${i} pixel ${d}`).toBeCloseTo(eps * Math.sign(g[d]!), 6);
        }
      }
      expect(compared).toBeGreaterThan(5000);
      expect(r.gradients.every((g, i) => g === (predicted[i] === test.labels[i] ? 1 : 0))).toBe(true);
      tf.dispose([x, labels]);
      model.dispose();
    });

    it('targeted: steps down the target\'s loss', async () => {
      const model = new DenseModel('test:linear', 'linear', zoo.linear, 'ce');
      const { x, labels } = tensors(test);
      const targets = test.labels.map((y) => (y + 3) % 10);
      const t = tf.tensor1d(targets, 'int32');
      const r = await new LinfFgsm({ eps: 0.05, clip: false }).run(model, x, labels, { seed: 0, targets: t });
      for (let i = 0; i < 4; i++) {
        const g = ceGradient(zoo.linear, test.x.subarray(i * 784, (i + 1) * 784), targets[i]!);
        const scale = Math.max(...g.map(Math.abs));
        for (let d = 0; d < 784; d++) {
          if (Math.abs(g[d]!) < 1e-4 * scale) continue;
          expect(r.adversarial[i * 784 + d]! - test.x[i * 784 + d]!).toBeCloseTo(-0.05 * Math.sign(g[d]!), 6);
        }
      }
      tf.dispose([x, labels, t]);
      model.dispose();
    });
  });
}
