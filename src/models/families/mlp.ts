/**
 * Fully connected networks: softmax regression (no hidden layer) and the ReLU MLP, the undefended
 * baselines of the FGSM paper (Goodfellow et al. 2015, section 5), plus the dense stack that the
 * isometric family reuses.
 */
import { tf, type NamedTensorMap, type Tensor1D, type Tensor2D } from '../../backend/index.js';
import type { Classifier, LossName } from '../classifier.js';
import { crossEntropy, dense, freezeDense, type DenseWeights } from '../ops.js';
import { z } from 'zod';
import { Errors } from '../../errors.js';
import { buildConfig, inputShapeSchema, typedConfig, type Family, type FamilyConfig } from '../family.js';
import { dropout, optimizerTrainer, toVariables } from '../train-kit.js';

/** A dense stack: what the MLP and the isometric family share, and what its ONNX export reads. */
export const stackConfigSchema = z.object({
  inputShape: inputShapeSchema,
  classes: z.number().int().positive(),
  hidden: z.array(z.number().int().positive()),
  activation: z.enum(['relu', 'tanh']),
});

export type StackConfig = z.output<typeof stackConfigSchema>;
export type Activation = StackConfig['activation'];

/** Layer sizes from input to logits. */
export function stackSizes(c: StackConfig): number[] {
  const [h, w, ch] = c.inputShape;
  return [h * w * ch, ...c.hidden, c.classes];
}

/** He-normal (ReLU) or Glorot-normal (tanh) weights and zero biases, named `l{i}/w`, `l{i}/b`. */
export function initStack(c: StackConfig, seed: number): NamedTensorMap {
  const sizes = stackSizes(c);
  const out: NamedTensorMap = {};
  for (let i = 0; i + 1 < sizes.length; i++) {
    const [fanIn, fanOut] = [sizes[i]!, sizes[i + 1]!];
    const std = c.activation === 'relu' ? Math.sqrt(2 / fanIn) : Math.sqrt(2 / (fanIn + fanOut));
    out[`l${i}/w`] = tf.randomNormal([fanIn, fanOut], 0, std, 'float32', seed + i);
    out[`l${i}/b`] = tf.zeros([fanOut]);
  }
  return out;
}

export function stackLayers(c: StackConfig, weights: NamedTensorMap, freeze: boolean): DenseWeights[] {
  const layers: DenseWeights[] = [];
  for (let i = 0; i + 1 < stackSizes(c).length; i++) {
    const layer = { w: weights[`l${i}/w`] as Tensor2D, b: weights[`l${i}/b`] as Tensor1D };
    layers.push(freeze ? freezeDense(layer) : layer);
  }
  return layers;
}

export interface StackOutput {
  logits: Tensor2D;
  /** The last hidden layer's activations (the input itself for softmax regression). */
  hidden: Tensor2D;
}

/** Forward pass; with `keep` < 1, inverted dropout on each hidden layer's output. */
export function runStack(layers: DenseWeights[], activation: Activation, x: Tensor2D, keep = 1, seed = 0): StackOutput {
  const act = activation === 'relu' ? tf.relu : tf.tanh;
  let h = x;
  for (let i = 0; i + 1 < layers.length; i++) {
    h = act(dense(h, layers[i]!)) as Tensor2D;
    if (keep < 1) h = dropout(h, keep, seed * 131 + i);
  }
  return { logits: dense(h, layers[layers.length - 1]!), hidden: h };
}

export function stackClassifier(
  id: string,
  family: string,
  c: StackConfig,
  layers: DenseWeights[],
  ownedWeights: NamedTensorMap,
  modelLoss?: (x: Tensor2D, labels: Tensor1D) => Tensor1D,
): Classifier {
  return {
    id,
    family,
    inputShape: c.inputShape,
    numClasses: c.classes,
    scores: (x) => runStack(layers, c.activation, x).logits,
    loss(name: LossName, x, labels) {
      if (name === 'model' && modelLoss) return modelLoss(x, labels);
      return crossEntropy(runStack(layers, c.activation, x).logits, labels);
    },
    dispose() {
      for (const l of layers) l.wT?.dispose();
      for (const t of Object.values(ownedWeights)) t.dispose();
    },
  };
}

const mlpConfigSchema = stackConfigSchema.extend({
  lr: z.number().positive().default(1e-3),
  lrDecay: z.number().positive().default(0.9),
  keep: z.number().gt(0).lte(1).default(1),
});

type MlpConfig = z.output<typeof mlpConfigSchema>;

function asMlp(config: FamilyConfig): MlpConfig {
  return typedConfig(mlpConfigSchema, config, 'mlp');
}

export const mlpFamily: Family = {
  name: 'mlp',
  summary: 'fully connected network (softmax regression with --hidden "", ReLU MLP by default), trained with Adam and CE',
  options: [
    { name: 'hidden', type: 'ints', default: [1000], help: 'hidden layer sizes, comma separated ("" for softmax regression)' },
    { name: 'activation', type: 'string', default: 'relu', help: 'relu or tanh' },
    { name: 'lr', type: 'float', default: 1e-3, help: 'learning rate' },
    { name: 'lr-decay', type: 'float', default: 0.9, help: 'learning-rate factor per epoch' },
    { name: 'keep', type: 'float', default: 1, help: 'dropout keep probability on hidden layers' },
  ],
  training: { epochs: 20, batch: 100 },
  schema: mlpConfigSchema,
  configure(o) {
    const activation = String(o.activation ?? 'relu');
    if (activation !== 'relu' && activation !== 'tanh') throw Errors.badArgument(`activation must be relu or tanh, not ${activation}`);
    return {
      inputShape: [28, 28, 1],
      classes: 10,
      hidden: (o.hidden as number[] | undefined) ?? [1000],
      activation,
      lr: Number(o.lr ?? 1e-3),
      lrDecay: Number(o['lr-decay'] ?? 0.9),
      keep: Number(o.keep ?? 1),
    } satisfies MlpConfig;
  },
  init: (config, seed) => initStack(asMlp(config), seed),
  build(id, config, weights) {
    const c = buildConfig(mlpConfigSchema, config, id, weights);
    return stackClassifier(id, c.hidden.length ? 'mlp' : 'softmax', c, stackLayers(c, weights, true), weights);
  },
  trainer(config, weights) {
    const c = asMlp(config);
    const variables = toVariables(weights);
    const layers = stackLayers(c, variables, false);
    const optimizer = tf.train.adam(c.lr);
    return optimizerTrainer({
      model: stackClassifier('training', 'mlp', c, layers, {}),
      variables,
      optimizer,
      loss: (x, labels, seed) => tf.mean(crossEntropy(runStack(layers, c.activation, x, c.keep, seed).logits, labels)),
      epochStart: (epoch, opt) => {
        (opt as unknown as { learningRate: number }).learningRate = c.lr * c.lrDecay ** epoch;
      },
    });
  },
  notes: (config) => {
    const c = asMlp(config);
    return [
      c.hidden.length
        ? `${stackSizes(c).join('-')} ${c.activation} MLP; optimiser not stated in the FGSM paper: Adam, lr ${c.lr} × ${c.lrDecay}^epoch`
        : `softmax regression 784-10; optimiser not stated in the FGSM paper: Adam, lr ${c.lr} × ${c.lrDecay}^epoch`,
    ];
  },
};
