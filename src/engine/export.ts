/**
 * ONNX export of the zoo's families, with their backward passes written out as plain ONNX ops
 * (Gemm, Relu, Mul, ReduceMax masks…), so that ONNX Runtime computes the scores and an input
 * gradient in one run, with no training runtime.
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
 * The arithmetic mirrors the tfjs families step for step (the same x/T before the power, the same
 * repeated squaring), so that the two engines agree to float32 rounding.
 */
import { Errors } from '../errors.js';
import { damConfigSchema, damTemperature } from '../models/families/dam.js';
import { stackConfigSchema } from '../models/families/mlp.js';
import { typedConfig } from '../models/family.js';
import { GraphBuilder } from './graph.js';

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
}

/** A network built into a graph: its scores, and how to pull a score gradient back to the input. */
interface Net {
  scores: string;
  backward(dscores: string): string;
  /** A family whose own loss is over an inner representation (DRP's embedding z) exposes it here. */
  embedding?: { value: string; backward(dz: string): string };
}

/** A per-sample loss over the scores: its value `[B]` and its gradient with respect to the scores. */
type Head = (g: GraphBuilder, scores: string, onehot: string) => { value: string; dscores: string };

interface FamilyExport {
  inputDim: number;
  numClasses: number;
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

/** `h·W + b` forward; backward `d·Wᵀ` as a Gemm with transB, which MLAS runs without a copy. */
function denseLayer(g: GraphBuilder, h: string, w: PlainWeight, b: PlainWeight | undefined, name: string) {
  const W = g.weight(`${name}_w`, w.shape, w.data);
  const out = b ? g.op('Gemm', [h, W, g.weight(`${name}_b`, b.shape, b.data)]) : g.op('MatMul', [h, W]);
  return { out, back: (d: string) => g.op('Gemm', [d, W], { transB: 1 }) };
}

/** A hidden layer's activation: its output, and how it carries a gradient back to its input. */
interface Activation {
  out: string;
  back(d: string): string;
}

/** Dense layers `l0 … l{n−1}` with `activate` between them (none after the last), and their backward pass. */
function denseStack(g: GraphBuilder, x: string, w: PlainWeights, layers: number, where: string, activate: (z: string, i: number) => Activation): Net {
  const backs: ((d: string) => string)[] = [];
  const acts: Activation[] = [];
  let h = x;
  for (let i = 0; i < layers; i++) {
    const layer = denseLayer(g, h, weight(w, `l${i}/w`, where), w[`l${i}/b`], `l${i}`);
    backs.push(layer.back);
    if (i + 1 < layers) {
      const a = activate(layer.out, i);
      acts.push(a);
      h = a.out;
    } else h = layer.out;
  }
  return {
    scores: h,
    backward(dscores) {
      let d = dscores;
      for (let i = layers - 1; i >= 0; i--) {
        d = backs[i]!(d);
        if (i > 0) d = acts[i - 1]!.back(d);
      }
      return d;
    },
  };
}

/** Dense stacks: softmax regression, the ReLU/tanh MLP, the isometric tanh MLP. */
function stackExport(config: Record<string, unknown>, w: PlainWeights, where: string, modelHead: Head | undefined): FamilyExport {
  // The family's typed config, as tfjs reads it: one activation rule for both engines.
  const { hidden, activation } = typedConfig(stackConfigSchema, config, where);
  const layers = hidden.length + 1;
  const first = weight(w, 'l0/w', where);
  const last = weight(w, `l${layers - 1}/w`, where);
  return {
    inputDim: first.shape[0]!,
    numClasses: last.shape[1]!,
    modelHead,
    net: (g, x) =>
      denseStack(g, x, w, layers, where, (z) => {
        const a = g.op(activation === 'relu' ? 'Relu' : 'Tanh', [z]);
        return {
          out: a,
          // tfjs: relu' = step(z) (0 at 0); tanh' = 1 − tanh².
          back: (d) =>
            activation === 'relu'
              ? g.op('Mul', [d, g.op('Cast', [g.op('Greater', [z, g.scalar(0)])], { to: 1 })])
              : g.op('Mul', [d, g.op('Sub', [g.scalar(1), g.op('Mul', [a, a])])]),
        };
      }),
  };
}

/** Maxout MLP: the max over consecutive pieces; its gradient goes to every piece equal to the max, as tfjs's. */
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
        const z3 = g.op('Reshape', [z, g.ints([0, u, pieces])]);
        const max = g.op('ReduceMax', [z3], { axes: [2], keepdims: 1 });
        return {
          out: g.op('Reshape', [max, g.ints([0, u])]),
          back: (d) => {
            const mask = g.op('Cast', [g.op('Equal', [z3, max])], { to: 1 });
            const spread = g.op('Mul', [mask, g.op('Reshape', [d, g.ints([0, u, 1])])]);
            return g.op('Reshape', [spread, g.ints([0, u * pieces])]);
          },
        };
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
      const rOn = g.op('Relu', [g.op('Div', [on, g.scalar(T)])]);
      const rS = g.op('Relu', [g.op('Div', [s, g.scalar(T)])]);
      const gain = g.op('ReduceSum', [intPow(g, rOn, n), g.ints([1])], { keepdims: 0 });
      const base = g.op('ReduceSum', [intPow(g, rS, n), g.ints([1])], { keepdims: 1 });
      return {
        scores: g.op('Sub', [gain, base]),
        backward(dscores) {
          // rectPow's derivative n·r^(n−1), then the 1/T of x/T: the order tfjs applies them in.
          const dOn = g.op('Div', [
            g.op('Mul', [g.op('Unsqueeze', [dscores, g.ints([1])]), g.op('Mul', [g.scalar(n), intPow(g, rOn, n - 1)])]),
            g.scalar(T),
          ]);
          const dBase = g.op('Neg', [g.op('ReduceSum', [dscores, g.ints([1])], { keepdims: 1 })]);
          const dS = g.op('Div', [g.op('Mul', [dBase, g.op('Mul', [g.scalar(n), intPow(g, rS, n - 1)])]), g.scalar(T)]);
          const ds = g.op('Add', [g.op('ReduceSum', [dOn, g.ints([2])], { keepdims: 0 }), dS]);
          return g.op('Mul', [g.op('Gemm', [ds, XiV], { transB: 1 }), g.scalar(2)]);
        },
      };
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
 * The input gradient of a 2×2, stride-2 max-pool of `act` `[B, C, side, side]` (NCHW) given the
 * output gradient `d` `[B, C, ⌊side/2⌋, ⌊side/2⌋]`: each window's gradient goes to its last maximum
 * in row-major order (tfjs's choice); a row and column the pool dropped (odd sides) get zero.
 */
function maxPoolBackward(g: GraphBuilder, act: string, d: string, side: number, channels: number): string {
  const half = Math.floor(side / 2);
  const even = 2 * half;
  const crop = even === side ? act : g.op('Slice', [act, g.ints([0, 0]), g.ints([even, even]), g.ints([2, 3])]);
  // [B, C, h, 2, w, 2] → [B, C, h, w, 2, 2] → [B, C, h, w, 4]: each window's four values, row-major.
  const windows = g.op('Reshape', [
    g.op('Transpose', [g.op('Reshape', [crop, g.ints([-1, channels, half, 2, half, 2])])], { perm: [0, 1, 2, 4, 3, 5] }),
    g.ints([-1, channels, half, half, 4]),
  ]);
  const isMax = g.op('Cast', [g.op('Equal', [windows, g.op('ReduceMax', [windows], { axes: [4], keepdims: 1 })])], { to: 1 });
  const ranked = g.op('Mul', [isMax, g.weight('window_rank', [4], Float32Array.from([1, 2, 3, 4]))]);
  const last = g.op('Cast', [g.op('Equal', [ranked, g.op('ReduceMax', [ranked], { axes: [4], keepdims: 1 })])], { to: 1 });
  const spread = g.op('Mul', [last, g.op('Unsqueeze', [d, g.ints([4])])]);
  const back = g.op('Reshape', [
    g.op('Transpose', [g.op('Reshape', [spread, g.ints([-1, channels, half, half, 2, 2])])], { perm: [0, 1, 2, 4, 3, 5] }),
    g.ints([-1, channels, even, even]),
  ]);
  return even === side ? back : g.op('Pad', [back, g.ints([0, 0, 0, 0, 0, 0, side - even, side - even])]);
}

/**
 * Deep Repulsive Prototypes: the LeNet of `families/drp.ts` (valid 3×3 conv → ReLU → 2×2 max-pool,
 * twice, then fc → ReLU → fc to the embedding z) and its prototype scores (⟨z, p_c⟩, or −‖z − p_c‖∞
 * with `predict: 'nearest'`). tfjs works in NHWC; here the graph is NCHW, the layout ONNX's Conv
 * takes, so the first dense layer's rows are permuted from (h, w, c) to (c, h, w) order at export,
 * instead of a Transpose in every run. Backward: a convolution's input gradient is the
 * ConvTranspose of the same filter; a max-pool's goes to one position per window, the LAST maximum
 * in row-major order, because that is the one tfjs's MaxPoolGrad picks. Ties are common on MNIST
 * (saturated strokes give equal convolutions over whole windows: about a third of the positive
 * windows of the first layer), and ONNX Runtime's MaxPool `Indices` name the first maximum, so the
 * position is chosen explicitly: windows as a last axis of 4, an equality mask, its last one.
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
      const stages: { filter: string; pre: string; act: string; side: number; channels: number }[] = [];
      let size = height;
      for (const layer of conv) {
        const filter = g.weight('conv_w', layer.filter.shape, layer.filter.data);
        const pre = g.op('Conv', [h, filter, g.weight('conv_b', layer.bias.shape, layer.bias.data)], { kernel_shape: [3, 3] });
        const act = g.op('Relu', [pre]);
        size -= 2;
        stages.push({ filter, pre, act, side: size, channels: layer.filter.shape[0]! });
        h = g.op('MaxPool', [act], { kernel_shape: [2, 2], strides: [2, 2] });
        size = Math.floor(size / 2);
      }
      const flat = g.op('Flatten', [h], { axis: 1 });
      const d0 = denseLayer(g, flat, { shape: fc0.shape, data: fc0Chw }, weight(w, 'fc0/b', where), 'fc0');
      const a0 = g.op('Relu', [d0.out]);
      const d1 = denseLayer(g, a0, weight(w, 'fc1/w', where), weight(w, 'fc1/b', where), 'fc1');
      const z = d1.out;
      let scores: string;
      let scoresBack: (d: string) => string;
      if (predict === 'inner') {
        const p = denseLayer(g, z, { shape: [dim, classes], data: protoT }, undefined, 'protos');
        scores = p.out;
        scoresBack = p.back;
      } else {
        const diff = g.op('Sub', [g.op('Unsqueeze', [z, g.ints([1])]), g.weight('protos', [1, classes, dim], prototypes.data)]);
        const abs = g.op('Abs', [diff]);
        const max = g.op('ReduceMax', [abs], { axes: [2], keepdims: 1 });
        scores = g.op('Neg', [g.op('Reshape', [max, g.ints([0, classes])])]);
        scoresBack = (d) => {
          // tfjs: max's gradient goes to every element equal to the max; abs's is +1 above 0, −1 at or below.
          const mask = g.op('Cast', [g.op('Equal', [abs, max])], { to: 1 });
          const sign = g.op('Sub', [g.op('Mul', [g.op('Cast', [g.op('Greater', [diff, g.scalar(0)])], { to: 1 }), g.scalar(2)]), g.scalar(1)]);
          const dDiff = g.op('Mul', [g.op('Mul', [mask, sign]), g.op('Neg', [g.op('Unsqueeze', [d, g.ints([2])])])]);
          return g.op('ReduceSum', [dDiff, g.ints([1])], { keepdims: 0 });
        };
      }
      const step = (pre: string) => g.op('Cast', [g.op('Greater', [pre, g.scalar(0)])], { to: 1 });
      const backwardEmbedding = (dz: string): string => {
        let d = d1.back(dz);
        d = d0.back(g.op('Mul', [d, step(d0.out)]));
        d = g.op('Reshape', [d, g.ints([-1, filters, last, last])]);
        for (let i = stages.length - 1; i >= 0; i--) {
          const st = stages[i]!;
          d = g.op('Mul', [maxPoolBackward(g, st.act, d, st.side, st.channels), step(st.pre)]);
          d = g.op('ConvTranspose', [d, st.filter], { kernel_shape: [3, 3] });
        }
        return g.op('Reshape', [g.op('Transpose', [d], { perm: [0, 2, 3, 1] }), g.ints([-1, height * width * channels])]);
      };
      return {
        scores,
        backward: (dscores) => backwardEmbedding(scoresBack(dscores)),
        embedding: { value: z, backward: backwardEmbedding },
      };
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
const plainCrossEntropy: Head = (g, scores, onehot) => {
  const logp = g.op('LogSoftmax', [scores], { axis: 1 });
  const value = g.op('Neg', [g.op('ReduceSum', [g.op('Mul', [logp, onehot]), g.ints([1])], { keepdims: 0 })]);
  return { value, dscores: g.op('Sub', [g.op('Softmax', [scores], { axis: 1 }), onehot]) };
};

/** The attacks' cross-entropy: CE's value, and (q − e_y) with q the softmax over the wrong classes. */
const attackCrossEntropy: Head = (g, scores, onehot) => {
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

function withHead(g: GraphBuilder, ex: FamilyExport, head: Head, on: 'scores' | 'embedding' = 'scores'): void {
  const x = g.input('x', ['batch', ex.inputDim]);
  const onehot = g.input('onehot', ['batch', ex.numClasses]);
  const sign = g.input('sign', ['batch', 1]);
  const net = ex.net(g, x);
  const point = on === 'embedding' ? net.embedding : { value: net.scores, backward: (d: string) => net.backward(d) };
  if (!point) throw new Error(`the ${g.name} net has no embedding for its head`);
  const { value, dscores } = head(g, point.value, onehot);
  g.output(net.scores, 'scores', ['batch', ex.numClasses]);
  g.output(g.op('Mul', [value, g.op('Reshape', [sign, g.ints([-1])])]), 'value', ['batch']);
  g.output(point.backward(g.op('Mul', [dscores, sign])), 'grad', ['batch', ex.inputDim]);
}

/**
 * Writes the ONNX programs of a zoo model from its family, config and weights.
 *
 * @example
 *   const graphs = exportFamily('mlp', config, weights, 'zoo:mlp-relu');
 *   Object.keys(graphs.programs); // ['scores', 'vjp', 'ce', 'model']
 */
export function exportFamily(family: string, config: Record<string, unknown>, weights: PlainWeights, where: string): NativeGraphs {
  const ex = familyExport(family, config, weights, where);
  const programs: Partial<Record<NativeProgram, Uint8Array>> = {};

  const scoring = new GraphBuilder(`${family}-scores`);
  scoring.output(ex.net(scoring, scoring.input('x', ['batch', ex.inputDim])).scores, 'scores', ['batch', ex.numClasses]);
  programs.scores = scoring.encode();

  const vjp = new GraphBuilder(`${family}-vjp`);
  const vx = vjp.input('x', ['batch', ex.inputDim]);
  const dscores = vjp.input('dscores', ['batch', ex.numClasses]);
  const vnet = ex.net(vjp, vx);
  vjp.output(vnet.scores, 'scores', ['batch', ex.numClasses]);
  vjp.output(vnet.backward(dscores), 'grad', ['batch', ex.inputDim]);
  programs.vjp = vjp.encode();

  const ce = new GraphBuilder(`${family}-ce`);
  withHead(ce, ex, attackCrossEntropy);
  programs.ce = ce.encode();

  if (ex.modelHead) {
    const model = new GraphBuilder(`${family}-model`);
    withHead(model, ex, ex.modelHead, ex.modelHeadOn);
    programs.model = model.encode();
  }
  return { family, inputDim: ex.inputDim, numClasses: ex.numClasses, programs };
}
