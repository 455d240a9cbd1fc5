/**
 * Family configs are typed: each family's zod schema reads a loaded model's config, on tfjs and in
 * the ONNX export alike, so the two engines never compute different models from one config.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { buildRunner } from '../../src/engine/build.js';
import { buildClassifier, loadArtifact, type ModelArtifact } from '../../src/models/artifact.js';
import { testModels } from '../pipelines/helpers.js';

/** `a` with its family config edited. */
function withConfig(a: ModelArtifact, edit: (config: Record<string, unknown>) => void): ModelArtifact {
  const json = structuredClone(a.modelJson);
  if (!('config' in json)) throw new Error('not a family model');
  edit(json.config);
  return { ...a, id: `${a.id}#edited`, modelJson: json };
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('typed family configs', () => {
  it('refuses an activation that is neither relu nor tanh, on both engines, leaving no tensors', async () => {
    const mlp = withConfig(await loadArtifact((await testModels())[0]!), (c) => (c.activation = 'sigmoid'));
    const before = tf.memory().numTensors;
    await expect(buildClassifier(mlp)).rejects.toMatchObject({ code: 'BAD_MODEL', message: expect.stringMatching(/activation/) });
    await expect(buildRunner(mlp, 'onnx')).rejects.toMatchObject({ code: 'BAD_MODEL' });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives a DAM without tEnd its per-n temperature on both engines', async () => {
    const dam = await loadArtifact('zoo:dam-n20');
    const bare = withConfig(dam, (c) => {
      delete c.tStart;
      delete c.tEnd;
      delete c.tRamp;
    });
    const x = tf.tidy(() => tf.randomUniform([4, 784], 0, 1, 'float32', 3) as tf.Tensor2D);
    const reference = await buildRunner(dam, 'tfjs');
    const runners = [await buildRunner(bare, 'tfjs'), await buildRunner(bare, 'onnx')];
    const want = await reference.scores(x);
    for (const r of runners) {
      const got = await r.scores(x);
      const data = await got.data();
      expect(data.every(Number.isFinite)).toBe(true);
      const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!);
      expect(gap).toBeLessThan(1e-3 * Math.max(1, tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!)));
      got.dispose();
      r.dispose();
    }
    tf.dispose([x, want]);
    reference.dispose();
  });
});
