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
 *   per-sample (the isometric penalty couples a batch's samples, and the prototype L∞ loss needs the
 *   embedding: those stay on tfjs).
 *
 * The arithmetic mirrors the tfjs families step for step (the same x/T before the power, the same
 * repeated squaring), so that the two engines agree to float32 rounding.
 */
import { Errors } from '../errors.js';
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
}

/** A per-sample loss over the scores: its value `[B]` and its gradient with respect to the scores. */
type Head = (g: GraphBuilder, scores: string, onehot: string) => { value: string; dscores: string };

interface FamilyExport {
  inputDim: number;
  numClasses: number;
  net(g: GraphBuilder, x: string): Net;
  /** The family's own loss, when it is per-sample and computed from the scores. */
  modelHead?: Head;
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

/** Dense stacks: softmax regression, the ReLU/tanh MLP, the isometric tanh MLP. */
function stackExport(config: Record<string, unknown>, w: PlainWeights, where: string, modelHead: Head | undefined): FamilyExport {
  const hidden = (config.hidden as number[] | undefined) ?? [];
  const activation = config.activation === 'tanh' ? 'tanh' : 'relu';
  const layers = hidden.length + 1;
  const first = weight(w, 'l0/w', where);
  const last = weight(w, `l${layers - 1}/w`, where);
  return {
    inputDim: first.shape[0]!,
    numClasses: last.shape[1]!,
    modelHead,
    net(g, x) {
      const backs: ((d: string) => string)[] = [];
      const acts: { z: string; h: string }[] = [];
      let h = x;
      for (let i = 0; i < layers; i++) {
        const layer = denseLayer(g, h, weight(w, `l${i}/w`, where), w[`l${i}/b`], `l${i}`);
        backs.push(layer.back);
        if (i + 1 < layers) {
          const a = g.op(activation === 'relu' ? 'Relu' : 'Tanh', [layer.out]);
          acts.push({ z: layer.out, h: a });
          h = a;
        } else h = layer.out;
      }
      return {
        scores: h,
        backward(dscores) {
          let d = dscores;
          for (let i = layers - 1; i >= 0; i--) {
            d = backs[i]!(d);
            if (i > 0) {
              const { z, h: a } = acts[i - 1]!;
              // tfjs: relu' = step(z) (0 at 0); tanh' = 1 − tanh².
              d =
                activation === 'relu'
                  ? g.op('Mul', [d, g.op('Cast', [g.op('Greater', [z, g.scalar(0)])], { to: 1 })])
                  : g.op('Mul', [d, g.op('Sub', [g.scalar(1), g.op('Mul', [a, a])])]);
            }
          }
          return d;
        },
      };
    },
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
    net(g, x) {
      const backs: ((d: string) => string)[] = [];
      const pools: { z3: string; max: string; units: number }[] = [];
      let h = x;
      for (let i = 0; i < layers; i++) {
        const layer = denseLayer(g, h, weight(w, `l${i}/w`, where), w[`l${i}/b`], `l${i}`);
        backs.push(layer.back);
        if (i + 1 < layers) {
          const z3 = g.op('Reshape', [layer.out, g.ints([0, units[i]!, pieces])]);
          const max = g.op('ReduceMax', [z3], { axes: [2], keepdims: 1 });
          pools.push({ z3, max, units: units[i]! });
          h = g.op('Reshape', [max, g.ints([0, units[i]!])]);
        } else h = layer.out;
      }
      return {
        scores: h,
        backward(dscores) {
          let d = dscores;
          for (let i = layers - 1; i >= 0; i--) {
            d = backs[i]!(d);
            if (i > 0) {
              const { z3, max, units: u } = pools[i - 1]!;
              const mask = g.op('Cast', [g.op('Equal', [z3, max])], { to: 1 });
              const spread = g.op('Mul', [mask, g.op('Reshape', [d, g.ints([0, u, 1])])]);
              d = g.op('Reshape', [spread, g.ints([0, u * pieces])]);
            }
          }
          return d;
        },
      };
    },
  };
}

/** Dense Associative Memory: the one-step classifier of `families/dam.ts`, and its loss Σ(c − t)^(2m). */
function damExport(config: Record<string, unknown>, w: PlainWeights, where: string): FamilyExport {
  const n = Number(config.n);
  const m = Number(config.m);
  // The temperature after training: damTemperature at epoch ∞ is the ramp's end.
  const T = Number(config.tEnd);
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
    default:
      throw Errors.badModel(where, `family '${family}' has no ONNX export; families with one: ${EXPORTABLE_FAMILIES.join(', ')}`);
  }
}

/** The families {@link exportFamily} can write. */
export const EXPORTABLE_FAMILIES: readonly string[] = ['mlp', 'isometric', 'maxout', 'dam'];

function withHead(g: GraphBuilder, ex: FamilyExport, head: Head): void {
  const x = g.input('x', ['batch', ex.inputDim]);
  const onehot = g.input('onehot', ['batch', ex.numClasses]);
  const sign = g.input('sign', ['batch', 1]);
  const net = ex.net(g, x);
  const { value, dscores } = head(g, net.scores, onehot);
  g.output(net.scores, 'scores', ['batch', ex.numClasses]);
  g.output(g.op('Mul', [value, g.op('Reshape', [sign, g.ints([-1])])]), 'value', ['batch']);
  g.output(net.backward(g.op('Mul', [dscores, sign])), 'grad', ['batch', ex.inputDim]);
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
    withHead(model, ex, ex.modelHead);
    programs.model = model.encode();
  }
  return { family, inputDim: ex.inputDim, numClasses: ex.numClasses, programs };
}
