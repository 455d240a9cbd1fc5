/**
 * Attack strength on a real trained model: the shipped ReLU MLP and 500 MNIST test images, the
 * figures an ART, Foolbox or AutoAttack user would check first.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { parseAttackSpec, type AttackResult } from '../../src/attacks/index.js';
import { collect, openSource } from '../../src/data/index.js';
import type { Classifier } from '../../src/models/classifier.js';
import { loadClassifier } from '../../src/models/artifact.js';

const N = 500;
let model: Classifier;
let x: Tensor2D;
let y: Tensor1D;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  model = await loadClassifier('zoo:mlp-relu');
  const data = await collect(openSource('mnist:test', { limit: N }));
  x = tf.tensor2d(data.x, [N, 784]);
  y = tf.tensor1d(data.y, 'int32');
});

/** Robust accuracy as AutoAttack counts it: the attack's point is still classified correctly. */
function robustAccuracy(r: AttackResult, labels: Int32Array): number {
  let robust = 0;
  for (let i = 0; i < r.count; i++) if (r.predicted[i] === labels[i]) robust++;
  return robust / r.count;
}

describe('attacks on the shipped ReLU MLP, 500 MNIST test images, ε = 0.3', () => {
  let labels: Int32Array;
  let pgd: number;
  beforeAll(async () => {
    labels = (await y.data()) as Int32Array;
  });

  it('PGD-40 leaves robust accuracy ≤ 1%', async () => {
    const r = await parseAttackSpec('pgd:eps=0.3,steps=40').run(model, x, y, { seed: 1 });
    pgd = robustAccuracy(r, labels);
    expect(Math.max(...r.linf)).toBeLessThanOrEqual(0.3 + 1e-6);
    expect(pgd).toBeLessThanOrEqual(0.01);
  });

  it('APGD-CE is at least as strong as PGD with the same budget', async () => {
    const r = await parseAttackSpec('apgd-ce:eps=0.3,steps=40').run(model, x, y, { seed: 1 });
    expect(robustAccuracy(r, labels)).toBeLessThanOrEqual(pgd);
  });

  it('Square with 5,000 queries reaches ≤ 10% without gradients', async () => {
    const r = await parseAttackSpec('square:eps=0.3,queries=5000').run(model, x, y, { seed: 1 });
    expect(r.gradients.every((g) => g === 0)).toBe(true);
    expect(robustAccuracy(r, labels)).toBeLessThanOrEqual(0.1);
  });
});
