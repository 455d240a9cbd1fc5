/**
 * Small trained models for the detector tests (the shipped zoo may still be training): a 784-64-10
 * ReLU MLP and DAMs of order n = 20 and n = 30 (K = 100), each trained on mnist:train[0:3000] on the
 * wasm backend in a few seconds, and kept in test-artifacts/ across test files and runs (written to a
 * temp folder and renamed into place, so parallel files never see half a model).
 *
 * Also the test doubles of the optional model extensions: a DAM with `energy(x)` as proposed for the
 * dam family, and an embedding model with `embed(x)`/`prototypes()`.
 */
import { saveCachedModel } from '../helpers/model-cache.js';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { collect, openSource } from '../../src/data/index.js';
import type { EmbeddingModel, EnergyModel } from '../../src/detect/index.js';
import { buildClassifier, decodeWeights, loadArtifact } from '../../src/models/artifact.js';
import type { Classifier } from '../../src/models/classifier.js';
import { getFamily } from '../../src/models/registry.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'detect');
/** Bump when a recipe below changes, so stale models are not reused. */
const RECIPE = 'v1';

export interface Slice {
  x: Float32Array;
  y: Int32Array;
  count: number;
}

const slices = new Map<string, Promise<Slice>>();

/** `limit` MNIST images from `offset`, read once per test file. */
export function mnist(split: 'train' | 'test', offset: number, limit: number): Promise<Slice> {
  const key = `${split}:${offset}:${limit}`;
  if (!slices.has(key)) {
    slices.set(
      key,
      collect(openSource(`mnist:${split}`, { offset, limit })).then((c) => ({ x: c.x, y: c.y, count: c.count })),
    );
  }
  return slices.get(key)!;
}

export function rows(s: Slice, from: number, count: number): Slice {
  return { x: s.x.slice(from * 784, (from + count) * 784), y: s.y.slice(from, from + count), count };
}

interface Recipe {
  name: string;
  family: string;
  options: Record<string, unknown>;
  epochs: number;
  seed: number;
}

/** Test accuracy on mnist:test[0:1000] (checked in models.test.ts): mlp ≈ 0.89, dam-n20 ≈ 0.89, dam-n30 ≈ 0.88. */
const RECIPES: Recipe[] = [
  { name: 'mlp', family: 'mlp', options: { hidden: [64], lr: 0.005 }, epochs: 5, seed: 1 },
  { name: 'dam-n20', family: 'dam', options: { n: 20, K: 100, eps0: 0.1 }, epochs: 20, seed: 2 },
  { name: 'dam-n30', family: 'dam', options: { n: 30, K: 100, eps0: 0.1 }, epochs: 20, seed: 3 },
];
export type ModelName = 'mlp' | 'dam-n20' | 'dam-n30';

async function trainOne(dir: string, r: Recipe): Promise<void> {
  const data = await mnist('train', 0, 3000);
  const family = getFamily(r.family);
  const config = family.configure(r.options);
  const trainer = family.trainer(config, family.init(config, r.seed));
  const batch = 100;
  for (let epoch = 0; epoch < r.epochs; epoch++) {
    trainer.epochStart(epoch);
    for (let from = 0; from < data.count; from += batch) {
      const x = tf.tensor2d(data.x.subarray(from * 784, (from + batch) * 784), [batch, 784]);
      const y = tf.tensor1d(data.y.subarray(from, from + batch), 'int32');
      trainer.step(x, y, r.seed * 100_000 + epoch * 1000 + from);
      tf.dispose([x, y]);
    }
  }
  await saveCachedModel(dir, r.family, config, trainer.variables);
  trainer.dispose();
}

/** The folder of a trained test model (its classifier's id); trains it on first use. Call on the wasm backend. */
export async function modelDir(name: ModelName): Promise<string> {
  const root = path.join(ARTIFACTS, `models-${RECIPE}`);
  await mkdir(root, { recursive: true });
  const r = RECIPES.find((q) => q.name === name)!;
  const dir = path.join(root, r.name);
  if (!existsSync(path.join(dir, 'model.json'))) await trainOne(dir, r);
  return dir;
}

/** A fresh classifier of a trained test model on the active backend; the caller disposes it. */
export async function loadModel(name: ModelName): Promise<Classifier> {
  return buildClassifier(await loadArtifact(await modelDir(name)));
}

/**
 * A DAM with the proposed `energy(x)` extension, computed from the family's own weights exactly as
 * the dam family would: min_α β·E(v, e_α) = −max_α Σ_μ relu((s_μ + 2ξ^μ_α)/T)^n.
 */
export async function loadEnergyModel(name: 'dam-n20' | 'dam-n30'): Promise<EnergyModel> {
  const artifact = await loadArtifact(await modelDir(name));
  const base = await buildClassifier(artifact);
  const json = artifact.modelJson;
  if (!('family' in json) || json.family !== 'dam') throw new Error(`${name} is not a DAM artifact`);
  const n = Number(json.config.n);
  const temperature = Number(json.config.tEnd);
  const weights = decodeWeights(artifact);
  const xiV = weights.xi_v as Tensor2D; // [784, K]
  const xiC = weights.xi_c as Tensor2D; // [10, K]
  return {
    ...base,
    id: `${base.id}#energy`,
    scores: (x) => base.scores(x),
    loss: (lossName, x, labels) => base.loss(lossName, x, labels),
    energy: (x: Tensor2D) =>
      tf.tidy(() => {
        const v = tf.sub(tf.mul(x, 2), 1);
        const s = tf.sub(tf.matMul(v, xiV), tf.sum(xiC, 0)); // [B, K]
        const on = tf.add(tf.expandDims(s, 2), tf.mul(2, tf.transpose(xiC))); // [B, K, 10]
        const drive = tf.sum(tf.pow(tf.relu(tf.div(on, temperature)), n), 1); // [B, 10]
        return tf.neg(tf.max(drive, 1)) as Tensor1D;
      }),
    dispose() {
      base.dispose();
      tf.dispose([xiV, xiC]);
    },
  };
}

/**
 * The MLP with an embedding: f(x) its hidden layer, the prototypes the class means of f over
 * mnist:train[0:3000] (a nearest-class-mean model beside the MLP's own scores).
 */
export async function loadEmbeddingModel(): Promise<EmbeddingModel> {
  const artifact = await loadArtifact(await modelDir('mlp'));
  const base = await buildClassifier(artifact);
  const weights = decodeWeights(artifact);
  const w0 = weights['l0/w'] as Tensor2D;
  const b0 = weights['l0/b'] as Tensor1D;
  const embed = (x: Tensor2D) => tf.tidy(() => tf.relu(tf.add(tf.matMul(x, w0), b0)) as Tensor2D);
  const train = await mnist('train', 0, 3000);
  const protos = tf.tidy(() => {
    const z = embed(tf.tensor2d(train.x, [train.count, 784]));
    const onehot = tf.oneHot(tf.tensor1d(train.y, 'int32'), 10); // [N, 10]
    return tf.div(tf.matMul(onehot, z, true, false), tf.expandDims(tf.sum(onehot, 0), 1)) as Tensor2D;
  });
  for (const [k, t] of Object.entries(weights)) if (k !== 'l0/w' && k !== 'l0/b') t.dispose();
  return {
    ...base,
    id: `${base.id}#embedding`,
    scores: (x) => base.scores(x),
    loss: (lossName, x, labels) => base.loss(lossName, x, labels),
    embed,
    prototypes: () => tf.clone(protos),
    dispose() {
      base.dispose();
      tf.dispose([w0, b0, protos]);
    },
  };
}

/** The model without its optional extensions (`energy`, `embed`): what a score-only model offers. */
export function scoresOnly(model: Classifier): Classifier {
  return {
    id: `${model.id}#scores-only`,
    family: model.family,
    inputShape: model.inputShape,
    numClasses: model.numClasses,
    scores: (x) => model.scores(x),
    loss: (name, x, labels) => model.loss(name, x, labels),
    dispose: () => model.dispose(),
  };
}

/** The batch as tensors; the caller disposes them. */
export function tensors(s: Slice): { x: Tensor2D; y: Tensor1D } {
  return { x: tf.tensor2d(s.x, [s.count, 784]), y: tf.tensor1d(s.y, 'int32') };
}
