import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { loadClassifier } from '../../src/models/artifact.js';
import { zooModels, zooRecipes } from '../../src/models/zoo.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { predict } from '../../pipelines/train.js';
import { mnist } from './helpers.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

beforeAll(() => initBackend({ backend: 'wasm' }));

describe('the shipped zoo', () => {
  it('has a trained model for every recipe, all weights together under 60 MB', async () => {
    const recipes = await zooRecipes();
    const models = await zooModels();
    expect(models.map((m) => m.name).sort()).toEqual(recipes.map((r) => r.name).sort());
    const bytes = models.reduce((a, m) => a + m.manifest.weightBytes, 0);
    expect(bytes).toBeLessThan(60e6);
    for (const m of models) {
      expect(m.manifest.accuracy.testImages, m.name).toBe(10_000);
      expect(m.manifest.training.trainImages, m.name).toBe(60_000);
      expect(m.manifest.targets?.clean, m.name).toBe(recipes.find((r) => r.name === m.name)!.target);
    }
  });

  it('every model reproduces the predictions its manifest recorded', async () => {
    const data = await mnist('test', 32);
    for (const { ref, manifest } of await zooModels()) {
      const model = await loadClassifier(ref);
      expect(predict(model, data, 32), ref).toEqual(manifest.samplePredictions);
      model.dispose();
    }
    expect(tf.memory().numTensors).toBeLessThan(50);
  });

  it('`zoo list --json` shows every family with its measured accuracy', () => {
    const rows = JSON.parse(execFileSync(process.execPath, [CLI, 'zoo', 'list', '--json']).toString()) as {
      name: string;
      family: string;
      clean_acc: number;
    }[];
    expect(new Set(rows.map((r) => r.family))).toEqual(new Set(['dam', 'mlp', 'maxout', 'drp', 'isometric']));
    for (const r of rows) expect(r.clean_acc, r.name).toBeGreaterThan(0.9);
  });
});
