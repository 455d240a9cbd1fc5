/**
 * `buildRunner` under each engine choice when one model's native sessions fail to load: `auto`
 * falls back to tfjs for that model, `onnx` says why, and neither leaves the classifier behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { buildRunner } from '../../src/engine/build.js';
import { loadArtifact, type ModelArtifact } from '../../src/models/artifact.js';
import { testModels } from '../pipelines/helpers.js';

/** The MLP with its output layer's weight declared transposed: same bytes, a graph ONNX Runtime refuses to load. */
function transposedOutput(a: ModelArtifact): ModelArtifact {
  const json = structuredClone(a.modelJson);
  if (!('weightsManifest' in json)) throw new Error('not a tfjs artifact');
  const last = json.weightsManifest[0]!.weights.find((w) => w.name === 'l1/w')!;
  last.shape = [...last.shape].reverse();
  return { ...a, id: `${a.id}#transposed`, modelJson: json };
}

let broken: ModelArtifact;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  broken = transposedOutput(await loadArtifact((await testModels())[0]!));
});

describe('buildRunner when a model fails to load natively', () => {
  it('falls back to tfjs under auto, owning the classifier it built', async () => {
    const before = tf.memory().numTensors;
    const runner = await buildRunner(broken, 'auto');
    expect(runner.engine).toBe('tfjs-wasm');
    runner.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('fails with BAD_MODEL under onnx, and frees the classifier', async () => {
    const before = tf.memory().numTensors;
    await expect(buildRunner(broken, 'onnx')).rejects.toMatchObject({ code: 'BAD_MODEL' });
    expect(tf.memory().numTensors).toBe(before);
  });
});
