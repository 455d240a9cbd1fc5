/**
 * The score-based and label-only attacks on a black-box ONNX model (ONNX Runtime, no input
 * gradients, since its graph holds an op without a gradient rule): the shipped ReLU MLP exported as
 * another framework would, 16 MNIST test images.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { buildRunner } from '../../src/engine/build.js';
import { loadArtifact } from '../../src/models/artifact.js';
import type { ModelRunner } from '../../src/models/runner.js';
import { writeTorchLikeMlp } from '../engine/onnx-fixture.js';
import { mnist } from './fixtures.js';

const N = 16;
let runner: ModelRunner;
let x: Tensor2D;
let labels: Tensor1D;
const data = mnist('t10k', 0, N);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  const dir = await mkdtemp(path.join(tmpdir(), 'advstream-black-box-'));
  runner = await buildRunner(await loadArtifact(await writeTorchLikeMlp(dir, 'mlp', { opaque: true })), 'auto');
  x = tf.tensor2d(data.x, [N, 784]);
  labels = tf.tensor1d(data.labels, 'int32');
});

afterAll(() => {
  tf.dispose([x, labels]);
  runner.dispose();
});

describe('black-box attacks on an ONNX model', () => {
  it('runs without gradients', () => {
    expect(runner.gradientEngine).toBe('none');
  });

  it('HopSkipJump breaks every image from labels alone, with small L2 perturbations', async () => {
    const before = tf.memory().numTensors;
    const r = await parseAttackSpec('hsj:steps=8,evals=50').run(runner, x, labels, { seed: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.success.every((s) => s === 1)).toBe(true);
    const sizes = Array.from(r.l2).sort((a, b) => a - b);
    expect(sizes[N / 2]).toBeLessThan(2.5);
    expect(Math.max(...r.gradients)).toBe(0);
  });

  it('Sparse-RS breaks most images changing 20 pixels', async () => {
    const r = await parseAttackSpec('sparse-rs:eps=20,queries=400').run(runner, x, labels, { seed: 2 });
    expect(Math.max(...r.l0)).toBeLessThanOrEqual(20);
    expect(r.success.reduce((s, v) => s + v, 0)).toBeGreaterThanOrEqual(0.7 * N);
  });

  it('gradient attacks (FAB, SLIDE, AutoAttack) refuse it up front', async () => {
    for (const spec of ['fab:steps=2', 'fab-t:steps=2', 'slide:steps=2', 'autoattack:eps=0.1,version=standard']) {
      await expect(parseAttackSpec(spec).run(runner, x, labels, { seed: 2 }), spec).rejects.toMatchObject({ code: 'ATTACK_UNSUPPORTED' });
    }
  });
});
