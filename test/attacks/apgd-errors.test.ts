/** APGD frees every tensor it made when a model call throws, at the random start or mid-run. */
import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { asRunner, type ModelRunner } from '../../src/models/runner.js';
import { build, mnist, rows, tensors, trainZoo, type Zoo } from './fixtures.js';

let zoo: Zoo;
beforeAll(async () => {
  zoo = await trainZoo();
  await initBackend({ backend: 'wasm' });
});

/** `model` whose `failAt`-th input-gradient call (1-based) throws. */
function failingAt(model: ModelRunner, failAt: number): ModelRunner {
  let calls = 0;
  return {
    ...model,
    scores: (x) => model.scores(x),
    loss: (name, x, labels) => model.loss(name, x, labels),
    gradient: async (objective, x) => {
      if (++calls === failAt) throw new Error(`gradient call ${calls} failed`);
      return model.gradient(objective, x);
    },
  };
}

it.each([1, 2, 6])('leaks nothing when gradient call %i throws', async (failAt) => {
  const model = asRunner(build(zoo, 'mlp'));
  const { x, labels } = tensors(rows(mnist('t10k', 0, 8), 0, 8));
  const before = tf.memory().numTensors;
  await expect(parseAttackSpec('apgd-ce:eps=0.02,steps=10').run(failingAt(model, failAt), x, labels, { seed: 1 })).rejects.toThrow(/failed/);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([x, labels]);
  model.dispose();
});
