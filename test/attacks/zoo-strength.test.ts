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

describe('the complete library on the shipped ReLU MLP, the first 50 of those images', () => {
  const M = 50;
  let xs: Tensor2D;
  let ys: Tensor1D;
  let labels: Int32Array;
  beforeAll(async () => {
    xs = tf.slice(x, [0, 0], [M, 784]);
    ys = tf.slice(y, [0], [M]);
    labels = (await ys.data()) as Int32Array;
  });

  const attack = (spec: string): Promise<AttackResult> => parseAttackSpec(spec).run(model, xs, ys, { seed: 1 });
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

  it('AutoAttack standard is at least as strong as the fast cascade, and FAB-T counts only within ε', async () => {
    const fast = await attack('autoattack:eps=0.05,steps=20,targets=3,queries=200');
    const standard = await attack('autoattack:eps=0.05,steps=20,targets=3,queries=200,version=standard');
    expect(robustAccuracy(standard, labels)).toBeLessThanOrEqual(robustAccuracy(fast, labels));
    expect(Math.max(...standard.linf)).toBeLessThanOrEqual(0.05 + 1e-6);
  });

  it('FAB-T\'s median L∞ is that of the minimal-ε curve of PGD, within 10%', async () => {
    const fabT = await attack('fab-t:steps=30,targets=2');
    const mineps = await attack('mineps:attack=pgd,steps=40,max=0.3,tol=0.0015');
    const fab = median(Array.from(fabT.linf).filter((v, i) => fabT.success[i] && v > 0));
    const curve = median(Array.from(mineps.minEpsilon!).filter((e) => e > 0 && Number.isFinite(e)));
    expect(robustAccuracy(fabT, labels)).toBe(0);
    expect(Math.abs(fab - curve) / curve).toBeLessThan(0.1);
  });

  it('HopSkipJump, from labels only, leaves ≤ 10% of 20 images robust at L2 ε = 2 with about 6,500 queries each', async () => {
    const few = 20;
    const [xf, yf] = [tf.slice(xs, [0, 0], [few, 784]), tf.slice(ys, [0], [few])];
    const r = await parseAttackSpec('hsj:steps=20').run(model, xf, yf, { seed: 1 });
    tf.dispose([xf, yf]);
    let robust = 0;
    for (let i = 0; i < few; i++) if (r.predicted[i] === labels[i] || !(r.l2[i]! <= 2)) robust++;
    expect(r.gradients.every((g) => g === 0)).toBe(true);
    expect(robust / few).toBeLessThanOrEqual(0.1);
    expect(Math.max(...r.forwards)).toBeLessThan(7000);
  }, 300_000);

  it('Sparse-RS breaks ≥ 90% changing 20 pixels, SLIDE ≥ 70% at L1 ε = 10', async () => {
    const sparse = await attack('sparse-rs:eps=20,queries=1000');
    expect(Math.max(...sparse.l0)).toBeLessThanOrEqual(20);
    expect(robustAccuracy(sparse, labels)).toBeLessThanOrEqual(0.1);
    const slide = await attack('slide:eps=10');
    expect(Math.max(...slide.l1)).toBeLessThanOrEqual(10 * (1 + 1e-5));
    expect(robustAccuracy(slide, labels)).toBeLessThanOrEqual(0.3);
  });
});
