/**
 * Isometric regularisation (Beshkov, Verhellen & Lepperød, arXiv:2211.01236): the
 * 784 → 100 tanh → 4 × (100 tanh) → 10 MLP trained with
 *   L = CE + β · mean_{i,j ∈ B} (K·M_ij·‖h_i − h_j‖ − M_ij·‖x_i − x_j‖)²,  M_ij = [y_i = y_j],
 * where h is the last hidden layer, so that within a class the representation is a scaled isometry
 * of the input. β = 0 is the plain cross-entropy twin.
 */
import { tf, type Tensor1D, type Tensor2D } from '../../backend/index.js';
import { z } from 'zod';
import { buildConfig, typedConfig, type Family, type FamilyConfig } from '../family.js';
import { crossEntropy } from '../ops.js';
import { optimizerTrainer, toVariables } from '../train-kit.js';
import { initStack, runStack, stackClassifier, stackConfigSchema, stackLayers } from './mlp.js';
import type { DenseWeights } from '../ops.js';

const isometricConfigSchema = stackConfigSchema.extend({
  beta: z.number().nonnegative(),
  K: z.number().positive(),
  lr: z.number().positive().default(1e-3),
});

type IsometricConfig = z.output<typeof isometricConfigSchema>;

function asIso(config: FamilyConfig): IsometricConfig {
  return typedConfig(isometricConfigSchema, config, 'isometric');
}

/** Pairwise Euclidean distances `[B, B]`; the small floor keeps the gradient finite at zero distance. */
function pairwiseDistances(a: Tensor2D): Tensor2D {
  const sq = tf.sum(tf.square(a), 1);
  const gram = tf.matMul(a, tf.transpose(a));
  const d2 = tf.relu(tf.sub(tf.add(tf.expandDims(sq, 1), tf.expandDims(sq, 0)), tf.mul(2, gram)));
  return tf.sqrt(tf.add(d2, 1e-12)) as Tensor2D;
}

/** Per-sample terms `[B]` whose batch mean is β·mean_{i,j}((K·M·D_h − M·D_x)²), like CE's. */
export function isometryPenalty(h: Tensor2D, x: Tensor2D, labels: Tensor1D, beta: number, K: number): Tensor1D {
  const b = h.shape[0];
  const y = tf.cast(labels, 'int32');
  const same = tf.cast(tf.equal(tf.expandDims(y, 1), tf.expandDims(y, 0)), 'float32');
  const diff = tf.mul(same, tf.sub(tf.mul(K, pairwiseDistances(h)), pairwiseDistances(x)));
  return tf.mul(beta / b, tf.sum(tf.square(diff), 1)) as Tensor1D;
}

function isoLoss(c: IsometricConfig, layers: DenseWeights[], x: Tensor2D, labels: Tensor1D): Tensor1D {
  const { logits, hidden } = runStack(layers, c.activation, x);
  const ce = crossEntropy(logits, labels);
  if (c.beta === 0) return ce;
  return tf.add(ce, isometryPenalty(hidden, x, labels, c.beta, c.K)) as Tensor1D;
}

export const isometricFamily: Family = {
  name: 'isometric',
  summary: 'tanh MLP 784-100-(4×100)-10 trained with CE + β·within-class isometry of the last hidden layer',
  options: [
    { name: 'beta', type: 'float', default: 0.1, help: 'weight β of the isometry term (0: plain CE twin)' },
    { name: 'K', type: 'float', default: 10, help: 'scale K: the target is ‖h_i − h_j‖ ≈ ‖x_i − x_j‖ / K' },
    { name: 'hidden', type: 'ints', default: [100, 100, 100, 100, 100], help: 'hidden layer sizes' },
    { name: 'lr', type: 'float', default: 1e-3, help: 'learning rate' },
  ],
  training: { epochs: 5, batch: 100 },
  schema: isometricConfigSchema,
  configure(o) {
    return {
      inputShape: [28, 28, 1],
      classes: 10,
      hidden: (o.hidden as number[] | undefined) ?? [100, 100, 100, 100, 100],
      activation: 'tanh',
      beta: Number(o.beta ?? 0.1),
      K: Number(o.K ?? 10),
      lr: Number(o.lr ?? 1e-3),
    } satisfies IsometricConfig;
  },
  init: (config, seed) => initStack(asIso(config), seed),
  build(id, config, weights) {
    const c = buildConfig(isometricConfigSchema, config, id, weights);
    const layers = stackLayers(c, weights, true);
    return stackClassifier(id, 'isometric', c, layers, weights, (x, labels) => isoLoss(c, layers, x, labels));
  },
  trainer(config, weights) {
    const c = asIso(config);
    const variables = toVariables(weights);
    const layers = stackLayers(c, variables, false);
    return optimizerTrainer({
      model: stackClassifier('training', 'isometric', c, layers, {}, (x, labels) => isoLoss(c, layers, x, labels)),
      variables,
      optimizer: tf.train.adam(c.lr),
      loss: (x, labels) => tf.mean(isoLoss(c, layers, x, labels)) as tf.Scalar,
    });
  },
  notes(config) {
    const c = asIso(config);
    return [
      `β=${c.beta}, K=${c.K} (the authors' final MNIST script); Adam lr ${c.lr}, batch 100; float32 instead of the authors' float64`,
      'loss=model is CE + β·iso over the attacked batch, as the authors attack; loss=ce is CE alone',
      'initialisation: Glorot-normal (PyTorch default init in the Nov 2022 code is a spec gap for our port)',
    ];
  },
};
