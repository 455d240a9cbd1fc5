/**
 * The maxout MLP of the FGSM paper (Goodfellow et al. 2015), after pylearn2's `mnist_pi.yaml`:
 * 784 → maxout(240 × 5) → maxout(240 × 5) → softmax(10), uniform(±0.005) init, max column norm
 * 1.9365, dropout (keep 0.8 on the input, 0.5 on hidden layers), SGD with momentum ramping from 0.5
 * to 0.7. With `adv-eps` > 0 it trains on the FGSM objective α·J(x) + (1−α)·J(x + ε·sign ∇x J),
 * with fresh perturbations from the current model (dropout off) every minibatch.
 */
import { exactSign, tf, type NamedTensorMap, type Tensor1D, type Tensor2D, type Variable } from '../../backend/index.js';
import type { Classifier, LossName } from '../classifier.js';
import { crossEntropy, dense, freezeDense, maxout, type DenseWeights } from '../ops.js';
import { z } from 'zod';
import { buildConfig, inputShapeSchema, typedConfig, type Family, type FamilyConfig } from '../family.js';
import { dropout, maxColumnNorm, optimizerTrainer, toVariables } from '../train-kit.js';

/** A maxout network's config; the training schedule's fields default to the recipe's. */
export const maxoutConfigSchema = z.object({
  inputShape: inputShapeSchema,
  classes: z.number().int().positive(),
  units: z.array(z.number().int().positive()),
  pieces: z.number().int().positive(),
  keepInput: z.number().gt(0).lte(1).default(0.8),
  keepHidden: z.number().gt(0).lte(1).default(0.5),
  maxNorm: z.number().positive().default(1.9365),
  initRange: z.number().positive().default(0.005),
  lr: z.number().positive().default(0.1),
  lrDecayPerUpdate: z.number().positive().default(1.000004),
  updatesPerEpoch: z.number().int().positive().default(600),
  momentumStart: z.number().nonnegative().default(0.5),
  momentumEnd: z.number().nonnegative().default(0.7),
  momentumEpochs: z.number().int().positive().default(250),
  advAlpha: z.number().min(0).max(1).default(0.5),
  advEps: z.number().nonnegative().default(0),
});

type MaxoutConfig = z.output<typeof maxoutConfigSchema>;

function asMaxout(config: FamilyConfig): MaxoutConfig {
  return typedConfig(maxoutConfigSchema, config, 'maxout');
}

function layerCount(c: MaxoutConfig): number {
  return c.units.length + 1;
}

function layersOf(c: MaxoutConfig, weights: NamedTensorMap, freeze: boolean): DenseWeights[] {
  return Array.from({ length: layerCount(c) }, (_, i) => {
    const layer = { w: weights[`l${i}/w`] as Tensor2D, b: weights[`l${i}/b`] as Tensor1D };
    return freeze ? freezeDense(layer) : layer;
  });
}

/** Logits, with dropout when `seed` is given (training) and none otherwise. */
function forward(c: MaxoutConfig, layers: DenseWeights[], x: Tensor2D, seed?: number): Tensor2D {
  let h = seed === undefined ? x : dropout(x, c.keepInput, seed);
  for (let i = 0; i < c.units.length; i++) {
    h = maxout(dense(h, layers[i]!), c.pieces);
    if (seed !== undefined) h = dropout(h, c.keepHidden, seed * 7 + i + 1);
  }
  return dense(h, layers[layers.length - 1]!);
}

function classifier(id: string, c: MaxoutConfig, layers: DenseWeights[], owned: NamedTensorMap): Classifier {
  return {
    id,
    family: 'maxout',
    inputShape: c.inputShape,
    numClasses: c.classes,
    scores: (x) => forward(c, layers, x),
    loss: (_name: LossName, x, labels) => crossEntropy(forward(c, layers, x), labels),
    dispose() {
      for (const l of layers) l.wT?.dispose();
      for (const t of Object.values(owned)) t.dispose();
    },
  };
}

/** FGSM inputs against the current weights, dropout off, gradient to the input only. */
function fgsmAgainst(c: MaxoutConfig, layers: DenseWeights[], x: Tensor2D, labels: Tensor1D): Tensor2D {
  const frozen = layers.map((l) => ({ ...l, wT: tf.transpose(l.w) }));
  const g = tf.grad((input) => tf.sum(crossEntropy(forward(c, frozen, input as Tensor2D), labels)))(x);
  return tf.add(x, tf.mul(c.advEps, exactSign(g))) as Tensor2D;
}

export const maxoutFamily: Family = {
  name: 'maxout',
  summary: 'maxout MLP (240 units × 5 pieces, two layers, dropout, max-norm), optionally FGSM-adversarially trained',
  options: [
    { name: 'units', type: 'ints', default: [240, 240], help: 'maxout units per hidden layer' },
    { name: 'pieces', type: 'int', default: 5, help: 'linear pieces per maxout unit' },
    { name: 'lr', type: 'float', default: 0.1, help: 'learning rate' },
    { name: 'init-range', type: 'float', default: 0.005, help: 'weights start uniform in ±range (recipe: 0.005)' },
    { name: 'adv-eps', type: 'float', default: 0, help: 'FGSM adversarial training epsilon (0: plain training; paper 0.25)' },
    { name: 'adv-alpha', type: 'float', default: 0.5, help: 'weight of the clean loss in the adversarial objective' },
  ],
  training: { epochs: 50, batch: 100 },
  schema: maxoutConfigSchema,
  configure(o) {
    return {
      inputShape: [28, 28, 1],
      classes: 10,
      units: (o.units as number[] | undefined) ?? [240, 240],
      pieces: Number(o.pieces ?? 5),
      keepInput: 0.8,
      keepHidden: 0.5,
      maxNorm: 1.9365,
      initRange: Number(o['init-range'] ?? 0.005),
      lr: Number(o.lr ?? 0.1),
      lrDecayPerUpdate: 1.000004,
      updatesPerEpoch: 600,
      momentumStart: 0.5,
      momentumEnd: 0.7,
      momentumEpochs: 250,
      advAlpha: Number(o['adv-alpha'] ?? 0.5),
      advEps: Number(o['adv-eps'] ?? 0),
    } satisfies MaxoutConfig;
  },
  init(config, seed) {
    const c = asMaxout(config);
    const [h, w, ch] = c.inputShape;
    const sizes = [h * w * ch, ...c.units];
    const out: NamedTensorMap = {};
    for (let i = 0; i < layerCount(c); i++) {
      const fanIn = sizes[i]!;
      const fanOut = i < c.units.length ? c.units[i]! * c.pieces : c.classes;
      out[`l${i}/w`] = tf.randomUniform([fanIn, fanOut], -c.initRange, c.initRange, 'float32', seed + i);
      out[`l${i}/b`] = tf.zeros([fanOut]);
    }
    return out;
  },
  build(id, config, weights) {
    const c = buildConfig(maxoutConfigSchema, config, id, weights);
    return classifier(id, c, layersOf(c, weights, true), weights);
  },
  trainer(config, weights) {
    const c = asMaxout(config);
    const variables = toVariables(weights);
    const layers = layersOf(c, variables, false);
    const optimizer = tf.train.momentum(c.lr, c.momentumStart);
    const clean = (x: Tensor2D, labels: Tensor1D, seed: number): tf.Scalar => tf.mean(crossEntropy(forward(c, layers, x, seed), labels));
    return optimizerTrainer({
      model: classifier('training', c, layers, {}),
      variables,
      optimizer,
      loss(x, labels, seed) {
        if (c.advEps <= 0) return clean(x, labels, seed);
        const xAdv = tf.keep(tf.tidy(() => fgsmAgainst(c, layers, x, labels)));
        const loss = tf.add(tf.mul(c.advAlpha, clean(x, labels, seed)), tf.mul(1 - c.advAlpha, clean(xAdv, labels, seed + 1)));
        xAdv.dispose();
        return loss as tf.Scalar;
      },
      epochStart(epoch, opt) {
        const ramp = Math.min(1, epoch / c.momentumEpochs);
        (opt as tf.MomentumOptimizer).setMomentum(c.momentumStart + (c.momentumEnd - c.momentumStart) * ramp);
        const lr = Math.max(1e-6, c.lr / c.lrDecayPerUpdate ** (c.updatesPerEpoch * epoch));
        (opt as unknown as { learningRate: number }).learningRate = lr;
      },
      constrain() {
        for (let i = 0; i < layerCount(c); i++) maxColumnNorm(variables[`l${i}/w`] as Variable, c.maxNorm);
      },
    });
  },
  notes(config) {
    const c = asMaxout(config);
    return [
      `pylearn2 mnist_pi.yaml recipe: uniform(±${c.initRange}) init, max column norm 1.9365, dropout keep 0.8 input / 0.5 hidden, SGD lr 0.1 decaying ×1/1.000004 per update, momentum 0.5→0.7 over 250 epochs`,
      'deviation: a fixed number of epochs on all 60,000 training images instead of early stopping on train[50000:60000] (CPU budget)',
      c.advEps > 0
        ? `FGSM adversarial objective α=${c.advAlpha}, ε=${c.advEps}, perturbations from the current model with dropout off, not clipped to [0,1] (as the paper), no gradient through sign()`
        : 'plain training (no adversarial objective)',
    ];
  },
};
