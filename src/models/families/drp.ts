/**
 * Deep Repulsive Prototypes (Serban, Poll & Visser, arXiv:2105.12427), ported to MNIST.
 *
 * Prototypes P ∈ R^{C×d} start U(−1,1) and are pushed apart by maximising Σ_{i<j} ‖p_i − p_j‖∞ (or
 * its mean) with SGD; then they are frozen and a backbone f is trained toward them with the L∞
 * prototype loss ‖f(x) − p_y‖∞. Prediction is the maximum inner product ⟨f(x), p_c⟩, as the authors'
 * code does; `predict: 'nearest'` ranks by −‖f(x) − p_c‖∞ instead. The backbone is the author's MNIST
 * LeNet (conv3×3·32 → pool → conv3×3·64 → pool → fc200 → fc d), its convolutions written as im2col
 * matmuls so that they train on WASM, which lacks Conv2DBackpropFilter.
 */
import { maxPoolFirstMax, tf, type NamedTensorMap, type Tensor, type Tensor1D, type Tensor2D, type Tensor4D } from '../../backend/index.js';
import type { LossName, PrototypeClassifier } from '../classifier.js';
import { crossEntropy, dense, freezeDense, type DenseWeights } from '../ops.js';
import { z } from 'zod';
import { Errors } from '../../errors.js';
import { buildConfig, inputShapeSchema, typedConfig, type Family, type FamilyConfig } from '../family.js';
import { optimizerTrainer, toVariables } from '../train-kit.js';

export type PrototypeReduction = 'sum' | 'mean';
export type PrototypeProjection = 'none' | 'linf' | 'l2';

export interface PrototypeOptions {
  classes: number;
  dim: number;
  iterations: number;
  reduction: PrototypeReduction;
  projection: PrototypeProjection;
  lr: number;
  momentum: number;
  seed: number;
}

export interface PrototypeStats {
  minLinf: number;
  meanLinf: number;
  minL2: number;
  meanL2: number;
  maxAbs: number;
}

function project(p: Tensor2D, projection: PrototypeProjection): Tensor2D {
  if (projection === 'linf') return tf.clipByValue(p, -1, 1);
  if (projection === 'l2') return tf.div(p, tf.maximum(tf.norm(p, 2, 1, true), 1e-12));
  return p;
}

/** Pairwise distances `[C, C]` under L∞ or L2. */
function pairwise(p: Tensor2D, ord: 'linf' | 'l2'): Tensor2D {
  const diff = tf.sub(tf.expandDims(p, 1), tf.expandDims(p, 0));
  return (ord === 'linf' ? tf.max(tf.abs(diff), 2) : tf.sqrt(tf.add(tf.sum(tf.square(diff), 2), 1e-12))) as Tensor2D;
}

function upperMask(c: number): Tensor2D {
  return tf.sub(1, tf.linalg.bandPart(tf.ones([c, c]), -1, 0)) as Tensor2D;
}

/** Separation of a set of prototypes: pairwise L∞ and L2 distances, and the largest coordinate. */
export function prototypeStats(prototypes: Tensor2D): PrototypeStats {
  return tf.tidy(() => {
    const upper = upperMask(prototypes.shape[0]).arraySync().flat();
    const values = (ord: 'linf' | 'l2') => pairwise(prototypes, ord).arraySync().flat().filter((_, k) => upper[k]! > 0);
    const linf = values('linf');
    const l2 = values('l2');
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    return {
      minLinf: Math.min(...linf),
      meanLinf: mean(linf),
      minL2: Math.min(...l2),
      meanL2: mean(l2),
      maxAbs: tf.max(tf.abs(prototypes)).dataSync()[0]!,
    };
  });
}

/**
 * The repulsive prototype generator of the authors' `generate_proto.py`: maximise the summed (or
 * mean) pairwise L∞ distance with SGD + momentum, full batch; optionally project after each step.
 */
export function generatePrototypes(o: PrototypeOptions): Tensor2D {
  const p = tf.variable(project(tf.randomUniform([o.classes, o.dim], -1, 1, 'float32', o.seed), o.projection));
  const mask = upperMask(o.classes);
  const pairs = (o.classes * (o.classes - 1)) / 2;
  const opt = tf.train.momentum(o.lr, o.momentum);
  for (let i = 0; i < o.iterations; i++) {
    tf.tidy(() => {
      opt.minimize(() => {
        const total = tf.sum(tf.mul(pairwise(p as Tensor2D, 'linf'), mask));
        return tf.neg(o.reduction === 'sum' ? total : tf.div(total, pairs)) as tf.Scalar;
      }, false, [p]);
      if (o.projection !== 'none') p.assign(project(p as Tensor2D, o.projection));
    });
  }
  opt.dispose();
  mask.dispose();
  const prototypes = tf.clone(p) as Tensor2D;
  p.dispose();
  return prototypes;
}

/** A DRP network's config. */
export const drpConfigSchema = z.object({
  inputShape: inputShapeSchema,
  classes: z.number().int().positive(),
  dim: z.number().int().positive(),
  filters: z.tuple([z.number().int().positive(), z.number().int().positive()]),
  fc: z.number().int().positive(),
  predict: z.enum(['inner', 'nearest']),
  prototypes: z.object({
    iterations: z.number().int().nonnegative(),
    reduction: z.enum(['sum', 'mean']),
    projection: z.enum(['none', 'linf', 'l2']),
    lr: z.number().positive(),
    momentum: z.number().nonnegative(),
  }),
  lr: z.number().positive().default(0.05),
  momentum: z.number().nonnegative().default(0.9),
  weightDecay: z.number().nonnegative().default(5e-5),
  milestones: z.array(z.number().int().nonnegative()).default([6, 9]),
});

type DrpConfig = z.output<typeof drpConfigSchema>;

function asDrp(config: FamilyConfig): DrpConfig {
  return typedConfig(drpConfigSchema, config, 'drp');
}

/** A 3×3 convolution layer: `w` is `[9·Cin, Cout]`, rows (di, dj, c); frozen layers also keep it as an HWIO filter. */
interface ConvWeights extends DenseWeights {
  filter?: Tensor4D;
}

/**
 * A valid 3×3 convolution. Training writes it as im2col + one plain matmul, because the WASM backend
 * has no Conv2DBackpropFilter; a frozen layer (attacks, scoring) needs only the input gradient,
 * which WASM has (Conv2DBackpropInput), so it runs the backend's convolution, several times faster.
 */
function conv3x3(x: Tensor4D, layer: ConvWeights): Tensor4D {
  if (layer.filter) {
    const y = tf.conv2d(x, layer.filter, 1, 'valid');
    return (layer.b ? tf.add(y, layer.b) : y) as Tensor4D;
  }
  const [b, h, w, cin] = x.shape;
  const [oh, ow] = [h - 2, w - 2];
  const slices: Tensor[] = [];
  for (let di = 0; di < 3; di++) for (let dj = 0; dj < 3; dj++) slices.push(tf.slice(x, [0, di, dj, 0], [b, oh, ow, cin]));
  const patches = tf.reshape(tf.concat(slices, 3), [b * oh * ow, 9 * cin]) as Tensor2D;
  return tf.reshape(dense(patches, layer), [b, oh, ow, layer.w.shape[1]]) as Tensor4D;
}

interface Backbone {
  conv: [ConvWeights, ConvWeights];
  fc: [DenseWeights, DenseWeights];
}

const LAYER_NAMES = ['conv0', 'conv1', 'fc0', 'fc1'] as const;

function backboneOf(weights: NamedTensorMap, freeze: boolean): Backbone {
  const [c0, c1, f0, f1] = LAYER_NAMES.map((n) => {
    const layer = { w: weights[`${n}/w`] as Tensor2D, b: weights[`${n}/b`] as Tensor1D };
    return freeze ? freezeDense(layer) : layer;
  }) as [DenseWeights, DenseWeights, DenseWeights, DenseWeights];
  const conv = [c0, c1].map((l) =>
    freeze ? { ...l, filter: tf.keep(tf.reshape(l.w, [3, 3, l.w.shape[0] / 9, l.w.shape[1]]) as Tensor4D) } : l,
  ) as [ConvWeights, ConvWeights];
  return { conv, fc: [f0, f1] };
}

/** The embedding f(x) `[B, d]`. */
function embed(c: DrpConfig, net: Backbone, x: Tensor2D): Tensor2D {
  let h = tf.reshape(x, [x.shape[0], ...c.inputShape]) as Tensor4D;
  for (const layer of net.conv) h = maxPoolFirstMax(tf.relu(conv3x3(h, layer)) as Tensor4D, 2);
  const flat = tf.reshape(h, [x.shape[0], -1]) as Tensor2D;
  return dense(tf.relu(dense(flat, net.fc[0])) as Tensor2D, net.fc[1]);
}

function protoScores(c: DrpConfig, z: Tensor2D, protos: DenseWeights): Tensor2D {
  if (c.predict === 'inner') return dense(z, protos);
  return tf.neg(tf.max(tf.abs(tf.sub(tf.expandDims(z, 1), tf.expandDims(tf.transpose(protos.w), 0))), 2)) as Tensor2D;
}

/** ‖f(x) − p_y‖∞ per sample. */
function protoLoss(z: Tensor2D, labels: Tensor1D, prototypes: Tensor2D, classes: number): Tensor1D {
  const target = tf.matMul(tf.oneHot(tf.cast(labels, 'int32'), classes), prototypes);
  return tf.max(tf.abs(tf.sub(z, target)), 1) as Tensor1D;
}

function classifier(id: string, c: DrpConfig, net: Backbone, prototypes: Tensor2D, protos: DenseWeights, owned: Tensor[]): PrototypeClassifier {
  return {
    id,
    family: 'drp',
    inputShape: c.inputShape,
    numClasses: c.classes,
    scores: (x) => protoScores(c, embed(c, net, x), protos),
    embed: (x) => embed(c, net, x),
    prototypes: () => tf.clone(prototypes),
    loss(name: LossName, x, labels) {
      const z = embed(c, net, x);
      return name === 'model' ? protoLoss(z, labels, prototypes, c.classes) : crossEntropy(protoScores(c, z, protos), labels);
    },
    dispose() {
      for (const l of [...net.conv, ...net.fc, protos]) l.wT?.dispose();
      for (const l of net.conv) l.filter?.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

export const drpFamily: Family = {
  name: 'drp',
  summary: 'Deep Repulsive Prototypes: LeNet backbone trained toward frozen repulsive prototypes with the L∞ prototype loss',
  options: [
    { name: 'dim', type: 'int', default: 50, help: 'prototype dimension d' },
    { name: 'proto-iterations', type: 'int', default: 1000, help: 'prototype generator iterations E' },
    { name: 'proto-reduction', type: 'string', default: 'mean', help: 'sum or mean of the pairwise L∞ distances' },
    { name: 'proto-projection', type: 'string', default: 'none', help: 'none, linf (clip to the unit cube) or l2 (unit sphere)' },
    { name: 'predict', type: 'string', default: 'inner', help: 'inner (maximum inner product, the authors\') or nearest (L∞)' },
    { name: 'lr', type: 'float', default: 0.05, help: 'learning rate' },
    { name: 'milestones', type: 'ints', default: [6, 9], help: 'epochs at which the learning rate drops ×0.1' },
  ],
  training: { epochs: 12, batch: 128 },
  schema: drpConfigSchema,
  configure(o) {
    const reduction = String(o['proto-reduction'] ?? 'mean');
    const projection = String(o['proto-projection'] ?? 'none');
    const predict = String(o.predict ?? 'inner');
    if (reduction !== 'sum' && reduction !== 'mean') throw Errors.badArgument(`proto-reduction must be sum or mean, not ${reduction}`);
    if (!['none', 'linf', 'l2'].includes(projection)) throw Errors.badArgument(`proto-projection must be none, linf or l2, not ${projection}`);
    if (predict !== 'inner' && predict !== 'nearest') throw Errors.badArgument(`predict must be inner or nearest, not ${predict}`);
    return {
      inputShape: [28, 28, 1],
      classes: 10,
      dim: Number(o.dim ?? 50),
      filters: [32, 64],
      fc: 200,
      predict,
      prototypes: {
        iterations: Number(o['proto-iterations'] ?? 1000),
        reduction,
        projection: projection as PrototypeProjection,
        lr: 0.01,
        momentum: 0.9,
      },
      lr: Number(o.lr ?? 0.05),
      momentum: 0.9,
      weightDecay: 5e-5,
      milestones: (o.milestones as number[] | undefined) ?? [6, 9],
    } satisfies DrpConfig;
  },
  init(config, seed) {
    const c = asDrp(config);
    const prototypes = generatePrototypes({ ...c.prototypes, classes: c.classes, dim: c.dim, seed });
    const cin = c.inputShape[2];
    const side = Math.floor((Math.floor((c.inputShape[0] - 2) / 2) - 2) / 2);
    const shapes: Record<string, [number, number]> = {
      conv0: [9 * cin, c.filters[0]],
      conv1: [9 * c.filters[0], c.filters[1]],
      fc0: [side * side * c.filters[1], c.fc],
      fc1: [c.fc, c.dim],
    };
    const out: NamedTensorMap = { prototypes };
    LAYER_NAMES.forEach((name, i) => {
      const [fanIn, fanOut] = shapes[name]!;
      out[`${name}/w`] = tf.randomNormal([fanIn, fanOut], 0, Math.sqrt(2 / fanIn), 'float32', seed + 10 + i);
      out[`${name}/b`] = tf.zeros([fanOut]);
    });
    return out;
  },
  build(id, config, weights) {
    const c = buildConfig(drpConfigSchema, config, id, weights);
    const prototypes = weights.prototypes as Tensor2D;
    const protos = freezeDense({ w: tf.transpose(prototypes) });
    return classifier(id, c, backboneOf(weights, true), prototypes, protos, [...Object.values(weights), protos.w]);
  },
  trainer(config, weights) {
    const c = asDrp(config);
    const prototypes = weights.prototypes as Tensor2D;
    const rest = { ...weights };
    delete rest.prototypes;
    const variables = toVariables(rest);
    const net = backboneOf(variables, false);
    const protos = { w: tf.transpose(prototypes) as Tensor2D };
    const optimizer = tf.train.momentum(c.lr, c.momentum);
    const decayed = LAYER_NAMES.map((n) => variables[`${n}/w`]!);
    const trainer = optimizerTrainer({
      model: classifier('training', c, net, prototypes, protos, []),
      variables,
      optimizer,
      loss: (x, labels) => {
        const fit = tf.mean(protoLoss(embed(c, net, x), labels, prototypes, c.classes));
        const decay = tf.addN(decayed.map((w) => tf.sum(tf.square(w))));
        return tf.add(fit, tf.mul(c.weightDecay / 2, decay)) as tf.Scalar;
      },
      epochStart(epoch, opt) {
        const drops = c.milestones.filter((m) => epoch >= m).length;
        (opt as unknown as { learningRate: number }).learningRate = c.lr * 0.1 ** drops;
      },
    });
    return {
      ...trainer,
      // The frozen prototypes travel with the trained weights.
      variables: { ...variables, prototypes: tf.variable(prototypes, false, 'v/prototypes') },
      dispose() {
        trainer.dispose();
        prototypes.dispose();
        protos.w.dispose();
      },
    };
  },
  notes(config, weights) {
    const c = asDrp(config);
    const s = prototypeStats(weights.prototypes as Tensor2D);
    return [
      `prototypes: C=${c.classes}, d=${c.dim}, ${c.prototypes.iterations} iterations of SGD(lr 0.01, momentum 0.9) on the ${c.prototypes.reduction} of pairwise L∞ distances, projection ${c.prototypes.projection}; ` +
        `min/mean pairwise L∞ ${s.minLinf.toFixed(3)}/${s.meanLinf.toFixed(3)}, L2 ${s.minL2.toFixed(3)}/${s.meanL2.toFixed(3)}, max |p| ${s.maxAbs.toFixed(3)}`,
      "the paper's hypersphere-versus-hypercube and sum-versus-mean choices are a spec gap: mean keeps prototypes bounded (|p| ≲ 1.6) where sum grows them to ~70",
      `backbone: the author's MNIST LeNet with convolutions as im2col matmuls; SGD lr ${c.lr}, momentum ${c.momentum}, weight decay ${c.weightDecay}, ×0.1 at epochs ${c.milestones.join(', ')}`,
      `prediction: ${c.predict === 'inner' ? 'maximum inner product ⟨f(x), p_c⟩ (the authors\' code)' : 'nearest prototype in L∞'}; loss=model is ‖f(x) − p_y‖∞, loss=ce is CE over the scores`,
    ];
  },
};
