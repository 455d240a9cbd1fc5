/**
 * ONNX export of the zoo's families: each family writes its forward graph, and the backward
 * passes are derived from it by the differentiation of `autodiff/` (the same that users' graphs
 * get), so that ONNX Runtime computes the scores and an input gradient in one run, with no
 * training runtime.
 *
 * Each family exports up to four programs, all over a symbolic batch:
 * - `scores`: x `[B, D]` → scores `[B, C]`;
 * - `vjp`: x, dscores `[B, C]` → scores, grad `[B, D]` = Jᵀ·dscores: any objective computed from
 *   the scores (DLR, targeted DLR, margins) gets its input gradient from its score gradient;
 * - `ce`: x, onehot `[B, C]`, sign `[B, 1]` → scores, value `[B]`, grad: the attacks' cross-entropy
 *   (see `crossEntropy` in `src/attacks/losses.ts`: CE's value, and its gradient rescaled by
 *   1/(1 − p_y) so that it never underflows), times sign, in one run;
 * - `model`: x, onehot, sign → scores, value, grad of the family's own loss, where it is
 *   per-sample (the isometric penalty couples a batch's samples: it stays on tfjs); DRP's
 *   prototype L∞ loss reads the embedding, which its net exposes.
 *
 * The arithmetic mirrors the tfjs families (the same x/T before the power, the same order of
 * operations), so that the two engines agree to float32 rounding.
 */
import { Errors } from '../errors.js';
import { damConfigSchema, damTemperature } from '../models/families/dam.js';
import { stackConfigSchema } from '../models/families/mlp.js';
import { typedConfig } from '../models/family.js';
import { Autodiff } from './autodiff/index.js';
import { GraphBuilder, type Dim } from './graph.js';

/** The programs a native model may offer. */
export const NATIVE_PROGRAMS = ['scores', 'vjp', 'ce', 'model'] as const;
export type NativeProgram = (typeof NATIVE_PROGRAMS)[number];

/** A weight as plain data. */
export interface PlainWeight {
  shape: number[];
  data: Float32Array;
}
export type PlainWeights = Record<string, PlainWeight>;

/** Encoded ONNX models of one classifier: plain bytes, so that they can cross a thread. */
export interface NativeGraphs {
  family: string;
  inputDim: number;
  numClasses: number;
  programs: Partial<Record<NativeProgram, Uint8Array>>;
  /** A fixed batch size the programs take (a user graph exported without a symbolic batch); absent or null: any. */
  batch?: number | null;
  /** Why the model has no gradient programs (it then runs black-box). */
  blackBox?: string;
  /** The model's own loss is cross-entropy over its scores (a user's model), not a program of its own. */
  ownLossIsCe?: boolean;
}

/** A network's forward graph: its scores, and (DRP) the embedding its own loss reads. */
interface Net {
  scores: string;
  embedding?: string;
}

/** A per-sample loss over the scores: its value `[B]` and its gradient with respect to the scores. */
export type Head = (g: GraphBuilder, scores: string, onehot: string) => { value: string; dscores: string };

interface FamilyExport {
  inputDim: number;
  numClasses: number;
  /** Writes the forward graph from `x` `[B, D]`. */
  net(g: GraphBuilder, x: string): Net;
  /** The family's own loss, when it is per-sample and computed from the scores. */
  modelHead?: Head;
  /** What the model head reads: the scores (default) or the net's embedding. */
  modelHeadOn?: 'scores' | 'embedding';
}

function weight(w: PlainWeights, name: string, where: string): PlainWeight {
  const found = w[name];
  if (!found) throw Errors.badModel(where, `weight '${name}' is missing`);
  return found;
}

/** x^k by repeated squaring, as `intPow` in `src/models/ops.ts` computes it. */
function intPow(g: GraphBuilder, x: string, k: number): string {
  if (k === 0) return g.op('Add', [g.op('Mul', [x, g.scalar(0)]), g.scalar(1)]);
  let result: string | undefined;
  let base = x;
  let e = k;
  while (e > 0) {
    if (e & 1) result = result ? g.op('Mul', [result, base]) : base;
    e >>= 1;
    if (e > 0) base = g.op('Mul', [base, base]);
  }
  return result!;
}

/** `h·W + b`: a Gemm, or a MatMul without a bias. */
function denseLayer(g: GraphBuilder, h: string, w: PlainWeight, b: PlainWeight | undefined, name: string): string {
  const W = g.weight(`${name}_w`, w.shape, w.data);
  return b ? g.op('Gemm', [h, W, g.weight(`${name}_b`, b.shape, b.data)]) : g.op('MatMul', [h, W]);
}

/** Dense layers `l0 … l{n−1}` with `activate` between them (none after the last). */
function denseStack(g: GraphBuilder, x: string, w: PlainWeights, layers: number, where: string, activate: (z: string, i: number) => string): Net {
  let h = x;
  for (let i = 0; i < layers; i++) {
    const z = denseLayer(g, h, weight(w, `l${i}/w`, where), w[`l${i}/b`], `l${i}`);
    h = i + 1 < layers ? activate(z, i) : z;
  }
  return { scores: h };
}

/** Dense stacks: softmax regression, the ReLU/tanh MLP, the isometric tanh MLP. */
function stackExport(config: Record<string, unknown>, w: PlainWeights, where: string, modelHead: Head | undefined): FamilyExport {
  // The family's typed config, as tfjs reads it: one activation rule for both engines.
  const { hidden, activation } = typedConfig(stackConfigSchema, config, where);
  const layers = hidden.length + 1;
  return {
    inputDim: weight(w, 'l0/w', where).shape[0]!,
    numClasses: weight(w, `l${layers - 1}/w`, where).shape[1]!,
    modelHead,
    net: (g, x) => denseStack(g, x, w, layers, where, (z) => g.op(activation === 'tanh' ? 'Tanh' : 'Relu', [z])),
  };
}

/** Maxout MLP: the max over consecutive pieces (its gradient goes to every piece equal to the max, as tfjs's). */
function maxoutExport(config: Record<string, unknown>, w: PlainWeights, where: string): FamilyExport {
  const units = (config.units as number[] | undefined) ?? [];
  const pieces = Number(config.pieces);
  const layers = units.length + 1;
  return {
    inputDim: weight(w, 'l0/w', where).shape[0]!,
    numClasses: weight(w, `l${layers - 1}/w`, where).shape[1]!,
    modelHead: plainCrossEntropy,
    net: (g, x) =>
      denseStack(g, x, w, layers, where, (z, i) => {
        const u = units[i]!;
        const max = g.op('ReduceMax', [g.op('Reshape', [z, g.ints([0, u, pieces])])], { axes: [2], keepdims: 1 });
        return g.op('Reshape', [max, g.ints([0, u])]);
      }),
  };
}

/** Dense Associative Memory: the one-step classifier of `families/dam.ts`, and its loss Σ(c − t)^(2m). */
function damExport(config: Record<string, unknown>, w: PlainWeights, where: string): FamilyExport {
  const c = typedConfig(damConfigSchema, config, where);
  const { n, m } = c;
  // The temperature after training, by the family's own rule.
  const T = damTemperature(c, Number.POSITIVE_INFINITY);
  const xiV = weight(w, 'xi_v', where);
  const xiC = weight(w, 'xi_c', where);
  const [classes, K] = xiC.shape as [number, number];
  const dim = xiV.shape[0]!;
  // −Σ_γ ξ^μ_γ, summed in float32 like the tfjs reduction, and 2ξ_cᵀ `[K, C]`.
  const bias = new Float32Array(K);
  const twiceT = new Float32Array(K * classes);
  for (let mu = 0; mu < K; mu++) {
    let s = 0;
    for (let a = 0; a < classes; a++) {
      s = Math.fround(s + xiC.data[a * K + mu]!);
      twiceT[mu * classes + a] = 2 * xiC.data[a * K + mu]!;
    }
    bias[mu] = -s;
  }
  // DAM's loss Σ(tanh(c) − t)^(2m), with its exact score gradient (the head needs no differentiation).
  const head: Head = (g, scores, onehot) => {
    const t = g.op('Sub', [g.op('Mul', [onehot, g.scalar(2)]), g.scalar(1)]);
    const c = g.op('Tanh', [scores]);
    const e = g.op('Sub', [c, t]);
    const value = g.op('ReduceSum', [intPow(g, e, 2 * m), g.ints([1])], { keepdims: 0 });
    const slope = g.op('Sub', [g.scalar(1), g.op('Mul', [c, c])]);
    const dscores = g.op('Mul', [g.op('Mul', [g.scalar(2 * m), intPow(g, e, 2 * m - 1)]), slope]);
    return { value, dscores };
  };
  return {
    inputDim: dim,
    numClasses: classes,
    modelHead: head,
    net(g, x) {
      const XiV = g.weight('xi_v', xiV.shape, xiV.data);
      const v = g.op('Sub', [g.op('Mul', [x, g.scalar(2)]), g.scalar(1)]);
      const s = g.op('Gemm', [v, XiV, g.weight('xi_c_sum', [K], bias)]);
      const on = g.op('Add', [g.op('Unsqueeze', [s, g.ints([2])]), g.weight('xi_c_2t', [K, classes], twiceT)]);
      // relu(u/T)^n as a Pow with a constant exponent: its rule is rectPow's exact derivative n·r^(n−1).
      const rectPow = (u: string) => g.op('Pow', [g.op('Relu', [g.op('Div', [u, g.scalar(T)])]), g.scalar(n)]);
      const gain = g.op('ReduceSum', [rectPow(on), g.ints([1])], { keepdims: 0 });
      const base = g.op('ReduceSum', [rectPow(s), g.ints([1])], { keepdims: 1 });
      return { scores: g.op('Sub', [gain, base]) };
    },
  };
}

/**
 * A 3×3 convolution's weights `[9·Cin, Cout]` (rows (di, dj, c), the im2col layout of
 * `families/drp.ts`) as ONNX's `[Cout, Cin, 3, 3]`.
 */
function convFilter(w: PlainWeight): PlainWeight {
  const [rows, cout] = w.shape as [number, number];
  const cin = rows / 9;
  const out = new Float32Array(rows * cout);
  for (let di = 0; di < 3; di++) {
    for (let dj = 0; dj < 3; dj++) {
      for (let c = 0; c < cin; c++) {
        for (let o = 0; o < cout; o++) out[((o * cin + c) * 3 + di) * 3 + dj] = w.data[((di * 3 + dj) * cin + c) * cout + o]!;
      }
    }
  }
  return { shape: [cout, cin, 3, 3], data: out };
}

/**
 * Deep Repulsive Prototypes: the LeNet of `families/drp.ts` (valid 3×3 conv → ReLU → 2×2 max-pool,
 * twice, then fc → ReLU → fc to the embedding z) and its prototype scores (⟨z, p_c⟩, or −‖z − p_c‖∞
 * with `predict: 'nearest'`). tfjs works in NHWC; here the graph is NCHW, the layout ONNX's Conv
 * takes, so the first dense layer's rows are permuted from (h, w, c) to (c, h, w) order at export,
 * instead of a Transpose in every run. A max-pool's gradient goes to the FIRST maximum of each
 * window (the rule of `autodiff/rules.ts`, PyTorch's and ONNX Runtime's); ties are common on MNIST
 * (saturated strokes give equal convolutions over whole windows: about a third of the positive
 * windows of the first layer), so tfjs's max-pool gradient must pick the same one for the engines
 * to agree.
 */
function drpExport(config: Record<string, unknown>, w: PlainWeights, where: string): FamilyExport {
  const [height, width, channels] = (config.inputShape as [number, number, number] | undefined) ?? [28, 28, 1];
  const predict = config.predict === 'nearest' ? 'nearest' : 'inner';
  const prototypes = weight(w, 'prototypes', where);
  const [classes, dim] = prototypes.shape as [number, number];
  const conv = ['conv0', 'conv1'].map((n) => ({ filter: convFilter(weight(w, `${n}/w`, where)), bias: weight(w, `${n}/b`, where) }));
  // Spatial sizes: valid 3×3 convolutions (−2), 2×2 pools (floor of half).
  const sides: number[] = [];
  let side = height;
  for (let i = 0; i < 2; i++) {
    side = Math.floor((side - 2) / 2);
    sides.push(side);
  }
  if (height !== width) throw Errors.badModel(where, `the drp export takes square inputs, not ${height}×${width}`);
  const filters = conv[1]!.filter.shape[0]!;
  const fc0 = weight(w, 'fc0/w', where);
  const hidden = fc0.shape[1]!;
  const last = sides[1]!;
  if (fc0.shape[0] !== last * last * filters) throw Errors.badModel(where, `fc0/w has ${fc0.shape[0]} rows where the backbone gives ${last * last * filters}`);
  const fc0Chw = new Float32Array(fc0.data.length);
  for (let h = 0; h < last; h++) {
    for (let x = 0; x < last; x++) {
      for (let c = 0; c < filters; c++) {
        const from = ((h * last + x) * filters + c) * hidden;
        fc0Chw.set(fc0.data.subarray(from, from + hidden), ((c * last + h) * last + x) * hidden);
      }
    }
  }
  // The prototypes as a dense layer's weights `[d, C]`, as the family scores ⟨z, p_c⟩.
  const protoT = new Float32Array(dim * classes);
  for (let c = 0; c < classes; c++) for (let k = 0; k < dim; k++) protoT[k * classes + c] = prototypes.data[c * dim + k]!;
  return {
    inputDim: height * width * channels,
    numClasses: classes,
    modelHead: linfPrototypeLoss(prototypes),
    modelHeadOn: 'embedding',
    net(g, x) {
      let h = g.op('Reshape', [x, g.ints([-1, height, width, channels])]);
      h = g.op('Transpose', [h], { perm: [0, 3, 1, 2] });
      for (const layer of conv) {
        const filter = g.weight('conv_w', layer.filter.shape, layer.filter.data);
        const act = g.op('Relu', [g.op('Conv', [h, filter, g.weight('conv_b', layer.bias.shape, layer.bias.data)], { kernel_shape: [3, 3] })]);
        h = g.op('MaxPool', [act], { kernel_shape: [2, 2], strides: [2, 2] });
      }
      const flat = g.op('Flatten', [h], { axis: 1 });
      const a0 = g.op('Relu', [denseLayer(g, flat, { shape: fc0.shape, data: fc0Chw }, weight(w, 'fc0/b', where), 'fc0')]);
      const z = denseLayer(g, a0, weight(w, 'fc1/w', where), weight(w, 'fc1/b', where), 'fc1');
      if (predict === 'inner') return { scores: denseLayer(g, z, { shape: [dim, classes], data: protoT }, undefined, 'protos'), embedding: z };
      const diff = g.op('Sub', [g.op('Unsqueeze', [z, g.ints([1])]), g.weight('protos', [1, classes, dim], prototypes.data)]);
      const max = g.op('ReduceMax', [g.op('Abs', [diff])], { axes: [2], keepdims: 0 });
      return { scores: g.op('Neg', [max]), embedding: z };
    },
  };
}

/**
 * DRP's own loss ‖z − p_y‖∞ over the embedding (`protoLoss` in `families/drp.ts`) and its gradient
 * in z as tfjs forms it: max's to every coordinate equal to the max, abs's +1 above 0 and −1 at or
 * below.
 */
function linfPrototypeLoss(prototypes: PlainWeight): Head {
  return (g, z, onehot) => {
    const target = g.op('MatMul', [onehot, g.weight('prototypes', prototypes.shape, prototypes.data)]);
    const diff = g.op('Sub', [z, target]);
    const abs = g.op('Abs', [diff]);
    const max = g.op('ReduceMax', [abs], { axes: [1], keepdims: 1 });
    const mask = g.op('Cast', [g.op('Equal', [abs, max])], { to: 1 });
    const sign = g.op('Sub', [g.op('Mul', [g.op('Cast', [g.op('Greater', [diff, g.scalar(0)])], { to: 1 }), g.scalar(2)]), g.scalar(1)]);
    return { value: g.op('Reshape', [max, g.ints([-1])]), dscores: g.op('Mul', [mask, sign]) };
  };
}

/** The plain softmax cross-entropy of `src/models/ops.ts` (the MLP and maxout families' own loss). */
export const plainCrossEntropy: Head = (g, scores, onehot) => {
  const logp = g.op('LogSoftmax', [scores], { axis: 1 });
  const value = g.op('Neg', [g.op('ReduceSum', [g.op('Mul', [logp, onehot]), g.ints([1])], { keepdims: 0 })]);
  return { value, dscores: g.op('Sub', [g.op('Softmax', [scores], { axis: 1 }), onehot]) };
};

/** The attacks' cross-entropy: CE's value, and (q − e_y) with q the softmax over the wrong classes. */
export const attackCrossEntropy: Head = (g, scores, onehot) => {
  const { value } = plainCrossEntropy(g, scores, onehot);
  const wrong = g.op('Softmax', [g.op('Sub', [scores, g.op('Mul', [onehot, g.scalar(1e30)])])], { axis: 1 });
  return { value, dscores: g.op('Sub', [wrong, onehot]) };
};

function familyExport(family: string, config: Record<string, unknown>, w: PlainWeights, where: string): FamilyExport {
  switch (family) {
    case 'mlp':
      return stackExport(config, w, where, plainCrossEntropy);
    case 'isometric':
      // β > 0 adds a penalty over pairs of the batch's samples: not a per-sample program.
      return stackExport(config, w, where, Number(config.beta) === 0 ? plainCrossEntropy : undefined);
    case 'maxout':
      return maxoutExport(config, w, where);
    case 'dam':
      return damExport(config, w, where);
    case 'drp':
      return drpExport(config, w, where);
    default:
      throw Errors.badModel(where, `family '${family}' has no ONNX export; families with one: ${EXPORTABLE_FAMILIES.join(', ')}`);
  }
}

/** The families {@link exportFamily} can write. */
export const EXPORTABLE_FAMILIES: readonly string[] = ['mlp', 'isometric', 'maxout', 'dam', 'drp'];

/**
 * A program with a loss head: x, onehot `[B, C]`, sign `[B, 1]` → scores, value `[B]` (times
 * sign), grad `[B, D]` (of value times sign), the head reading the forward value `on` (`scores`,
 * or DRP's `embedding`).
 */
export function headedProgram(ad: Autodiff, name: string, head: Head, o: { on?: string; batch: Dim; classes: number; dim: number }): Uint8Array {
  return ad.program(name, (g, grad) => {
    const onehot = g.input('onehot', [o.batch, o.classes]);
    const sign = g.input('sign', [o.batch, 1]);
    const on = o.on ?? 'scores';
    const { value, dscores } = head(g, on, onehot);
    g.expose('scores', [o.batch, o.classes]);
    g.output(g.op('Mul', [value, g.op('Reshape', [sign, g.ints([-1])])]), 'value', [o.batch]);
    g.output(grad([[on, g.op('Mul', [dscores, sign])]]), 'grad', [o.batch, o.dim]);
  });
}

/** The scores and vector–Jacobian programs of a forward graph with input `x` and output `scores`. */
export function scoreProgram(ad: Autodiff, name: string, o: { batch: Dim; classes: number; dim: number }): { scores: Uint8Array; vjp: Uint8Array } {
  return {
    scores: ad.program(`${name}-scores`, (g) => g.expose('scores', [o.batch, o.classes])),
    vjp: ad.program(`${name}-vjp`, (g, grad) => {
      const dscores = g.input('dscores', [o.batch, o.classes]);
      g.expose('scores', [o.batch, o.classes]);
      g.output(grad([['scores', dscores]]), 'grad', [o.batch, o.dim]);
    }),
  };
}

/**
 * Writes the ONNX programs of a zoo model from its family, config and weights.
 *
 * @example
 *   const graphs = await exportFamily('mlp', config, weights, 'zoo:mlp-relu');
 *   Object.keys(graphs.programs); // ['scores', 'vjp', 'ce', 'model']
 */
export async function exportFamily(family: string, config: Record<string, unknown>, weights: PlainWeights, where: string): Promise<NativeGraphs> {
  const ex = familyExport(family, config, weights, where);
  const forward = new GraphBuilder(`${family}-forward`);
  const net = ex.net(forward, forward.input('x', ['batch', ex.inputDim]));
  forward.output(net.scores, 'scores', ['batch', ex.numClasses]);
  if (net.embedding) forward.output(net.embedding, 'embedding');
  const ad = await Autodiff.create(forward.encode(), where);
  const shape = { batch: 'batch', classes: ex.numClasses, dim: ex.inputDim };
  const programs: Partial<Record<NativeProgram, Uint8Array>> = {
    ...scoreProgram(ad, family, shape),
    ce: headedProgram(ad, `${family}-ce`, attackCrossEntropy, shape),
  };
  if (ex.modelHead) programs.model = headedProgram(ad, `${family}-model`, ex.modelHead, { ...shape, ...(ex.modelHeadOn === 'embedding' ? { on: 'embedding' } : {}) });
  return { family, inputDim: ex.inputDim, numClasses: ex.numClasses, programs };
}
