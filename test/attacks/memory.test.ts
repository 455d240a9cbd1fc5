/** Every tensor has one owner: as many tensors after 100 batches as after 1 (tfjs gradients_test). */
import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { build, mnist, rows, tensors, trainZoo, type Zoo } from './fixtures.js';

let zoo: Zoo;
beforeAll(async () => {
  zoo = await trainZoo();
  await initBackend({ backend: 'wasm' });
});

it('leaks no tensor over 100 batches', async () => {
  const model = build(zoo, 'mlp');
  const data = mnist('t10k', 0, 400);
  const attacks = [parseAttackSpec('fgsm:eps=0.1'), parseAttackSpec('pgd:eps=0.1,steps=2')];
  let afterOne = -1;
  for (let b = 0; b < 100; b++) {
    const { x, labels } = tensors(rows(data, (b % 100) * 4, 4));
    for (const a of attacks) await a.run(model, x, labels, { seed: b });
    tf.dispose([x, labels]);
    if (b === 0) afterOne = tf.memory().numTensors;
  }
  expect(tf.memory().numTensors).toBe(afterOne);
  model.dispose();
});
