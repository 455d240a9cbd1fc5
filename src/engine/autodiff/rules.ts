/**
 * The gradient rules: one entry per ONNX op type, each pulling the gradients of a node's outputs
 * back to those of its inputs as new ONNX nodes (vector–Jacobian products, never Jacobians).
 *
 * Conventions where the derivative is not defined, chosen to be PyTorch's (and ONNX Runtime's):
 * - Relu, LeakyRelu, PRelu: the slope at 0 is the left one (Relu: 0).
 * - Clip: 0 at and beyond the bounds (PyTorch's hardtanh, which ReLU6 exports as).
 * - MaxPool, GlobalMaxPool: a window's gradient goes to its FIRST maximum in row-major order.
 * - ReduceMax: every element equal to the maximum gets the gradient (as tfjs's max; the maxout and
 *   DRP families use it).
 * - Abs: sign(x), 0 at 0.
 *
 * Rules read static facts of the forward values (dims, folded int64 inputs) from the probe runs
 * (see `differentiate.ts`); a configuration a rule does not cover (MaxPool over 3-D volumes, a
 * Slice with steps) is a `NOT_DIFFERENTIABLE` error raised when the model is loaded.
 */
import type { GraphBuilder } from '../graph.js';
import type { IrNode } from './ir.js';

/** What the probe runs tell about one forward value: its dims at the first probe, and which grow with the batch. */
export interface ValueShape {
  dims: number[];
  batch: boolean[];
}

/** What a rule may ask while it writes its nodes. */
export interface RuleContext {
  readonly node: IrNode;
  readonly g: GraphBuilder;
  readonly opset: number;
  shape(value: string): ValueShape;
  /** The dims of `value`, which must not depend on the batch on `axes` (default all). */
  staticDims(value: string, axes?: readonly number[]): number[];
  /** The constant int values of `value` (an initializer, a Constant, or a folded Shape chain). */
  ints(value: string): number[];
  /** Whether input `i` carries a gradient (it depends on the differentiated input and is float). */
  needs(i: number): boolean;
  /** Stops: this configuration of the node has no rule. */
  fail(reason: string): never;
  /** The runtime shape of a forward value (one Shape node per value). */
  shapeOf(value: string): string;
  /** `d` (the gradient of `out`) summed over the axes where `input` was broadcast, reshaped to `input`. */
  unbroadcast(d: string, out: string, input: string): string;
  zerosLike(value: string): string;
}

/** Input gradients from output gradients: one entry per input (undefined where none flows). */
export type Rule = (ctx: RuleContext, dys: readonly (string | undefined)[]) => (string | undefined)[];

const f = (value: number) => ({ float: value });

function norm(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

function dyOf(ctx: RuleContext, dys: readonly (string | undefined)[]): string {
  const d = dys[0];
  if (!d) return ctx.fail('no gradient reaches its first output');
  return d;
}

/** The same shape as the input: a reshape of the gradient to it. */
const reshapeBack: Rule = (ctx, dys) => [ctx.g.op('Reshape', [dyOf(ctx, dys), ctx.shapeOf(ctx.node.inputs[0]!)])];
const passThrough: Rule = (ctx, dys) => [dyOf(ctx, dys)];

/** `cond ? yes : no`; with a zero `no`, `yes · cast(cond)`, which ONNX Runtime broadcasts faster than a Where. */
function where(ctx: RuleContext, cond: string, yes: string, no: string): string {
  if (no === ctx.g.scalar(0)) return ctx.g.op('Mul', [yes, ctx.g.op('Cast', [cond], { to: 1 })]);
  return ctx.g.op('Where', [cond, yes, no]);
}

/** A unary elementwise rule: dx = dy ⊙ local(x, y). */
function unary(local: (ctx: RuleContext, dy: string, x: string, y: string) => string): Rule {
  return (ctx, dys) => [local(ctx, dyOf(ctx, dys), ctx.node.inputs[0]!, ctx.node.outputs[0]!)];
}

/** Each input's gradient from the output's, unbroadcast to the input. */
function binary(local: (ctx: RuleContext, dy: string, a: string, b: string, i: 0 | 1) => string): Rule {
  return (ctx, dys) => {
    const dy = dyOf(ctx, dys);
    const [a, b] = ctx.node.inputs as [string, string];
    const y = ctx.node.outputs[0]!;
    return [0, 1].map((i) => (ctx.needs(i) ? ctx.unbroadcast(local(ctx, dy, a, b, i as 0 | 1), y, ctx.node.inputs[i]!) : undefined));
  };
}

/** The axes a Reduce* node reduces: an input from opset 13 (ReduceSum) or 18 (the others), else an attribute. */
function reduceAxes(ctx: RuleContext): number[] | undefined {
  const n = ctx.node;
  const rank = ctx.shape(n.inputs[0]!).dims.length;
  let axes: number[];
  if (n.op === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18) axes = n.inputs[1] ? ctx.ints(n.inputs[1]) : [];
  else axes = n.ints('axes', []);
  if (axes.length === 0) return n.int('noop_with_empty_axes', 0) ? undefined : Array.from({ length: rank }, (_, i) => i);
  return axes.map((a) => norm(a, rank)).sort((p, q) => p - q);
}

/** A reduction's output gradient with the reduced axes back (size 1). */
function keptGradient(ctx: RuleContext, dy: string, axes: number[]): string {
  return ctx.node.int('keepdims', 1) ? dy : ctx.g.op('Unsqueeze', [dy, ctx.g.ints(axes)]);
}

function reduceRule(mean: boolean): Rule {
  return (ctx, dys) => {
    const dy = dyOf(ctx, dys);
    const x = ctx.node.inputs[0]!;
    const axes = reduceAxes(ctx);
    if (!axes) return [dy];
    let d = ctx.g.op('Expand', [keptGradient(ctx, dy, axes), ctx.shapeOf(x)]);
    if (mean) {
      const dims = ctx.staticDims(x, axes);
      d = ctx.g.op('Div', [d, ctx.g.scalar(axes.reduce((p, a) => p * dims[a]!, 1))]);
    }
    return [d];
  };
}

const reduceMax: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const x = ctx.node.inputs[0]!;
  const axes = reduceAxes(ctx);
  if (!axes) return [dy];
  const max = keptGradient(ctx, ctx.node.outputs[0]!, axes);
  return [where(ctx, ctx.g.op('Equal', [x, max]), keptGradient(ctx, dy, axes), ctx.g.scalar(0))];
};

/** Explicit begin and end pads of a windowed op over the spatial axes of a rank-(2 + n) input. */
function windowPads(ctx: RuleContext, input: number[], output: number[], kernel: number[], strides: number[], dilations: number[]): { begin: number[]; end: number[] } {
  const n = kernel.length;
  const autoPad = ctx.node.string('auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') {
    const pads = ctx.node.ints('pads', new Array<number>(2 * n).fill(0));
    return { begin: pads.slice(0, n), end: pads.slice(n) };
  }
  if (autoPad === 'VALID') return { begin: new Array<number>(n).fill(0), end: new Array<number>(n).fill(0) };
  const begin: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < n; i++) {
    const total = Math.max(0, (output[i]! - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - input[i]!);
    const small = Math.floor(total / 2);
    const first = autoPad === 'SAME_LOWER' ? total - small : small;
    begin.push(first);
    end.push(total - first);
  }
  return { begin, end };
}

/** The attributes of a pooling or convolution node, with its spatial sizes. */
function windowOf(ctx: RuleContext, kernel: number[]) {
  const x = ctx.node.inputs[0]!;
  const dims = ctx.staticDims(x, Array.from({ length: ctx.shape(x).dims.length - 1 }, (_, i) => i + 1));
  const outDims = ctx.staticDims(ctx.node.outputs[0]!, Array.from({ length: dims.length - 1 }, (_, i) => i + 1));
  const n = kernel.length;
  const strides = ctx.node.ints('strides', new Array<number>(n).fill(1));
  const dilations = ctx.node.ints('dilations', new Array<number>(n).fill(1));
  const input = dims.slice(2);
  const output = outDims.slice(2);
  return { input, output, channels: dims[1]!, strides, dilations, ...windowPads(ctx, input, output, kernel, strides, dilations) };
}

/**
 * A gradient over the windows' positions, `d` `[B, C·K, Ho, Wo]` (K = kh·kw offsets per channel),
 * summed back onto the input `[B, C, H, W]`: a grouped ConvTranspose with one-hot (or constant)
 * filters places each offset's value where it was read; overlapping windows add up. The result is
 * in the padded input's coordinates, then cropped to the input.
 */
function scatterWindows(ctx: RuleContext, d: string, filter: Float32Array, filterDims: number[], w: ReturnType<typeof windowOf>, kernel: number[]): string {
  const g = ctx.g;
  const placed = g.op('ConvTranspose', [d, g.weight('window_filter', filterDims, filter)], {
    group: w.channels,
    kernel_shape: kernel,
    strides: w.strides,
    dilations: w.dilations,
  });
  const extent = kernel.map((k, i) => (w.output[i]! - 1) * w.strides[i]! + (k - 1) * w.dilations[i]! + 1);
  const short = extent.map((e, i) => Math.max(0, w.begin[i]! + w.input[i]! - e));
  const padded = short.some((s) => s > 0) ? g.op('Pad', [placed, g.ints([0, 0, 0, 0, 0, 0, ...short])]) : placed;
  return g.op('Slice', [padded, g.ints(w.begin), g.ints(w.begin.map((b, i) => b + w.input[i]!)), g.ints([2, 3])]);
}

const maxPool: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const g = ctx.g;
  const kernel = ctx.node.ints('kernel_shape', []);
  if (kernel.length !== 2) ctx.fail(`only 2-D max-pooling has a rule (kernel_shape [${kernel.join(', ')}])`);
  const w = windowOf(ctx, kernel);
  const [kh, kw] = kernel as [number, number];
  const [ho, wo] = w.output as [number, number];
  const extent = kernel.map((k, i) => (w.output[i]! - 1) * w.strides[i]! + (k - 1) * w.dilations[i]! + 1);
  const endPad = extent.map((e, i) => Math.max(w.end[i]!, e - w.input[i]! - w.begin[i]!));
  const x = ctx.node.inputs[0]!;
  const xp = g.op('Pad', [x, g.ints([0, 0, ...w.begin, 0, 0, ...endPad]), g.scalar(-Infinity)]);
  const y = ctx.node.outputs[0]!;
  const zero = g.scalar(0);
  const parts: string[] = [];
  let taken: string | undefined;
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const at = [a * w.dilations[0]!, b * w.dilations[1]!];
      const view = g.op('Slice', [xp, g.ints(at), g.ints([at[0]! + (ho - 1) * w.strides[0]! + 1, at[1]! + (wo - 1) * w.strides[1]! + 1]), g.ints([2, 3]), g.ints(w.strides)]);
      const hit = g.op('Equal', [view, y]);
      // The first maximum of each window: a hit at an offset no earlier offset has hit.
      const first = taken ? g.op('And', [hit, g.op('Not', [taken])]) : hit;
      taken = taken ? g.op('Or', [taken, hit]) : hit;
      parts.push(g.op('Unsqueeze', [where(ctx, first, dy, zero), g.ints([2])]));
    }
  }
  const K = kh * kw;
  const stacked = g.op('Reshape', [g.op('Concat', parts, { axis: 2 }), g.ints([0, w.channels * K, ho, wo])]);
  const filter = new Float32Array(w.channels * K * K);
  for (let c = 0; c < w.channels; c++) for (let k = 0; k < K; k++) filter[(c * K + k) * K + k] = 1;
  return [scatterWindows(ctx, stacked, filter, [w.channels * K, 1, kh, kw], w, kernel)];
};

const averagePool: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const g = ctx.g;
  const kernel = ctx.node.ints('kernel_shape', []);
  if (kernel.length !== 2) ctx.fail(`only 2-D average-pooling has a rule (kernel_shape [${kernel.join(', ')}])`);
  const w = windowOf(ctx, kernel);
  if (w.dilations.some((d) => d !== 1)) ctx.fail('average-pooling with dilations has no rule');
  const includePad = ctx.node.int('count_include_pad', 0) === 1;
  // Each output's divisor, as ONNX Runtime and PyTorch count it: the window clipped to the padded
  // input, and to the input itself unless padding counts.
  const counts = w.output.map((o, i) =>
    Array.from({ length: o }, (_, j) => {
      const start = j * w.strides[i]! - w.begin[i]!;
      const end = Math.min(start + kernel[i]!, w.input[i]! + w.end[i]!);
      return includePad ? end - start : Math.min(end, w.input[i]!) - Math.max(start, 0);
    }),
  );
  const [ho, wo] = w.output as [number, number];
  const scale = new Float32Array(ho * wo);
  for (let r = 0; r < ho; r++) for (let c = 0; c < wo; c++) scale[r * wo + c] = 1 / (counts[0]![r]! * counts[1]![c]!);
  const scaled = g.op('Mul', [dy, g.weight('pool_scale', [1, 1, ho, wo], scale)]);
  const filter = new Float32Array(w.channels * kernel[0]! * kernel[1]!).fill(1);
  return [scatterWindows(ctx, scaled, filter, [w.channels, 1, kernel[0]!, kernel[1]!], w, kernel)];
};

const globalAveragePool: Rule = (ctx, dys) => {
  const x = ctx.node.inputs[0]!;
  const dims = ctx.staticDims(x, Array.from({ length: ctx.shape(x).dims.length - 2 }, (_, i) => i + 2));
  const size = dims.slice(2).reduce((a, b) => a * b, 1);
  return [ctx.g.op('Expand', [ctx.g.op('Div', [dyOf(ctx, dys), ctx.g.scalar(size)]), ctx.shapeOf(x)])];
};

const conv: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  if (ctx.needs(1) || (ctx.node.inputs[2] && ctx.needs(2))) ctx.fail('a convolution whose filter or bias depends on the input has no rule');
  const W = ctx.node.inputs[1]!;
  const kernel = ctx.staticDims(W).slice(2);
  const w = windowOf(ctx, kernel);
  const outputPadding = w.input.map((size, i) => size - ((w.output[i]! - 1) * w.strides[i]! + (kernel[i]! - 1) * w.dilations[i]! + 1 - w.begin[i]! - w.end[i]!));
  if (outputPadding.some((p) => p < 0)) ctx.fail('the convolution reads past its padded input');
  const group = ctx.node.int('group', 1);
  const reach = kernel.map((k, i) => (k - 1) * w.dilations[i]!);
  if (w.strides.every((st) => st === 1) && reach.every((r, i) => r >= w.begin[i]! && r >= w.end[i]!)) {
    // Stride 1: the input gradient is a plain convolution with the filter transposed per group and
    // flipped, which ONNX Runtime runs about twice as fast as a ConvTranspose (folded at load).
    const g = ctx.g;
    const [M, Cg] = ctx.staticDims(W) as [number, number];
    const n = kernel.length;
    const spatial = Array.from({ length: n }, (_, i) => i + 3);
    const swapped = g.op('Transpose', [g.op('Reshape', [W, g.ints([group, M / group, Cg, ...kernel])])], { perm: [0, 2, 1, ...spatial] });
    const axes = Array.from({ length: n }, (_, i) => i + 2);
    const flipped = g.op('Slice', [
      g.op('Reshape', [swapped, g.ints([Cg * group, M / group, ...kernel])]),
      g.ints(axes.map(() => -1)),
      g.ints(kernel.map((k) => -k - 1)),
      g.ints(axes),
      g.ints(axes.map(() => -1)),
    ]);
    return [g.op('Conv', [dy, flipped], { group, kernel_shape: kernel, dilations: w.dilations, pads: [...reach.map((r, i) => r - w.begin[i]!), ...reach.map((r, i) => r - w.end[i]!)] })];
  }
  return [
    ctx.g.op('ConvTranspose', [dy, W], {
      group,
      kernel_shape: kernel,
      strides: w.strides,
      dilations: w.dilations,
      pads: [...w.begin, ...w.end],
      output_padding: outputPadding,
    }),
  ];
};

const convTranspose: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  if (ctx.needs(1) || (ctx.node.inputs[2] && ctx.needs(2))) ctx.fail('a transposed convolution whose filter or bias depends on the input has no rule');
  if (ctx.node.has('output_shape') || ctx.node.string('auto_pad', 'NOTSET') !== 'NOTSET') ctx.fail('a transposed convolution sized by output_shape or auto_pad has no rule');
  const W = ctx.node.inputs[1]!;
  const kernel = ctx.staticDims(W).slice(2);
  const n = kernel.length;
  return [
    ctx.g.op('Conv', [dy, W], {
      group: ctx.node.int('group', 1),
      kernel_shape: kernel,
      strides: ctx.node.ints('strides', new Array<number>(n).fill(1)),
      dilations: ctx.node.ints('dilations', new Array<number>(n).fill(1)),
      pads: ctx.node.ints('pads', new Array<number>(2 * n).fill(0)),
    }),
  ];
};

const gemm: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const n = ctx.node;
  const [A, B, C] = n.inputs as [string, string, string | undefined];
  const alpha = n.float('alpha', 1);
  const beta = n.float('beta', 1);
  const transA = n.int('transA', 0);
  const transB = n.int('transB', 0);
  const scaled: Record<string, { float: number }> = alpha === 1 ? {} : { alpha: f(alpha) };
  const g = ctx.g;
  const dA = !ctx.needs(0)
    ? undefined
    : transA
      ? g.op('Gemm', [B, dy], { transA: transB, transB: 1, ...scaled })
      : g.op('Gemm', [dy, B], { transB: transB ? 0 : 1, ...scaled });
  const dB = !ctx.needs(1)
    ? undefined
    : transB
      ? g.op('Gemm', [dy, A], { transA: 1, transB: transA, ...scaled })
      : g.op('Gemm', [A, dy], { transA: transA ? 0 : 1, ...scaled });
  const dC = C && ctx.needs(2) ? ctx.unbroadcast(beta === 1 ? dy : g.op('Mul', [dy, g.scalar(beta)]), n.outputs[0]!, C) : undefined;
  return [dA, dB, dC];
};

function swapLast(ctx: RuleContext, v: string): string {
  const rank = ctx.shape(v).dims.length;
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return ctx.g.op('Transpose', [v], { perm });
}

const matMul: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const [A, B] = ctx.node.inputs as [string, string];
  if (ctx.shape(A).dims.length < 2 || ctx.shape(B).dims.length < 2) ctx.fail('a MatMul of a vector has no rule');
  const y = ctx.node.outputs[0]!;
  return [
    ctx.needs(0) ? ctx.unbroadcast(ctx.g.op('MatMul', [dy, swapLast(ctx, B)]), y, A) : undefined,
    ctx.needs(1) ? ctx.unbroadcast(ctx.g.op('MatMul', [swapLast(ctx, A), dy]), y, B) : undefined,
  ];
};

const batchNormalization: Rule = (ctx, dys) => {
  const n = ctx.node;
  if (n.int('training_mode', 0) !== 0 || n.outputs.filter((o) => o).length > 1) ctx.fail('batch normalisation in training mode has no rule');
  if ([1, 2, 3, 4].some((i) => ctx.needs(i))) ctx.fail('batch normalisation whose statistics depend on the input has no rule');
  const g = ctx.g;
  const rank = ctx.shape(n.inputs[0]!).dims.length;
  const [, scale, , , variance] = n.inputs as [string, string, string, string, string];
  const factor = g.op('Div', [scale, g.op('Sqrt', [g.op('Add', [variance, g.scalar(n.float('epsilon', 1e-5))])])]);
  const perChannel = g.op('Reshape', [factor, g.ints([-1, ...new Array<number>(rank - 2).fill(1)])]);
  return [g.op('Mul', [dyOf(ctx, dys), perChannel])];
};

function softmaxAxis(ctx: RuleContext): number {
  return norm(ctx.node.int('axis', -1), ctx.shape(ctx.node.inputs[0]!).dims.length);
}

const softmax: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const y = ctx.node.outputs[0]!;
  const g = ctx.g;
  const sum = g.op('ReduceSum', [g.op('Mul', [dy, y]), g.ints([softmaxAxis(ctx)])], { keepdims: 1 });
  return [g.op('Mul', [g.op('Sub', [dy, sum]), y])];
};

const logSoftmax: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const g = ctx.g;
  const sum = g.op('ReduceSum', [dy, g.ints([softmaxAxis(ctx)])], { keepdims: 1 });
  return [g.op('Sub', [dy, g.op('Mul', [g.op('Exp', [ctx.node.outputs[0]!]), sum])])];
};

const transpose: Rule = (ctx, dys) => {
  const rank = ctx.shape(ctx.node.inputs[0]!).dims.length;
  const perm = ctx.node.ints('perm', Array.from({ length: rank }, (_, i) => rank - 1 - i));
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return [ctx.g.op('Transpose', [dyOf(ctx, dys)], { perm: inverse })];
};

const concat: Rule = (ctx, dys) => {
  const dy = dyOf(ctx, dys);
  const n = ctx.node;
  const axis = norm(n.int('axis', 0), ctx.shape(n.inputs[0]!).dims.length);
  let at = 0;
  return n.inputs.map((v, i) => {
    const size = ctx.staticDims(v, [axis])[axis]!;
    const from = at;
    at += size;
    return ctx.needs(i) ? ctx.g.op('Slice', [dy, ctx.g.ints([from]), ctx.g.ints([from + size]), ctx.g.ints([axis])]) : undefined;
  });
};

const split: Rule = (ctx, dys) => {
  const n = ctx.node;
  const axis = norm(n.int('axis', 0), ctx.shape(n.inputs[0]!).dims.length);
  const parts = n.outputs.map((o, i) => dys[i] ?? ctx.zerosLike(o));
  return [ctx.g.op('Concat', parts, { axis })];
};

const slice: Rule = (ctx, dys) => {
  const n = ctx.node;
  const x = n.inputs[0]!;
  const rank = ctx.shape(x).dims.length;
  const starts = ctx.ints(n.inputs[1]!);
  const ends = ctx.ints(n.inputs[2]!);
  const axes = n.inputs[3] ? ctx.ints(n.inputs[3]).map((a) => norm(a, rank)) : starts.map((_, i) => i);
  const steps = n.inputs[4] ? ctx.ints(n.inputs[4]) : starts.map(() => 1);
  if (steps.some((s) => s !== 1)) ctx.fail(`a Slice with steps [${steps.join(', ')}] has no rule (steps of 1 only)`);
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((axis, i) => {
    const shape = ctx.shape(x);
    const clamp = (v: number, d: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    if (shape.batch[axis]) {
      // The batch axis sliced whole (PyTorch's `x[:, …]`) needs no padding back.
      if (starts[i] === 0 && ends[i]! >= 2 ** 31 - 1) return;
      ctx.fail(`a Slice over the batch axis has no rule`);
    }
    const d = shape.dims[axis]!;
    const begin = clamp(starts[i]!, d);
    const end = Math.max(clamp(ends[i]!, d), begin);
    pads[axis] = begin;
    pads[rank + axis] = d - end;
  });
  return [ctx.g.op('Pad', [dyOf(ctx, dys), ctx.g.ints(pads)])];
};

const pad: Rule = (ctx, dys) => {
  const n = ctx.node;
  if (n.string('mode', 'constant') !== 'constant') ctx.fail(`a Pad in mode '${n.string('mode', 'constant')}' has no rule (constant only)`);
  const x = n.inputs[0]!;
  const rank = ctx.shape(x).dims.length;
  const pads = ctx.ints(n.inputs[1]!);
  const axes = n.inputs[3] ? ctx.ints(n.inputs[3]).map((a) => norm(a, rank)) : Array.from({ length: rank }, (_, i) => i);
  if (pads.some((p) => p < 0)) ctx.fail('a Pad with negative pads has no rule');
  const padded = axes.filter((_, i) => pads[i] !== 0 || pads[axes.length + i] !== 0);
  if (padded.length === 0) return [dyOf(ctx, dys)];
  const dims = ctx.staticDims(x, padded);
  const begin = padded.map((a) => pads[axes.indexOf(a)]!);
  return [ctx.g.op('Slice', [dyOf(ctx, dys), ctx.g.ints(begin), ctx.g.ints(padded.map((a, i) => begin[i]! + dims[a]!)), ctx.g.ints(padded)])];
};

const clip: Rule = (ctx, dys) => {
  const [x, lo, hi] = ctx.node.inputs as [string, string | undefined, string | undefined];
  const g = ctx.g;
  if ((lo && ctx.needs(1)) || (hi && ctx.needs(2))) ctx.fail('a Clip whose bounds depend on the input has no rule');
  const conds = [lo ? g.op('Greater', [x, lo]) : undefined, hi ? g.op('Less', [x, hi]) : undefined].filter((c): c is string => c !== undefined);
  if (conds.length === 0) return [dyOf(ctx, dys)];
  const cond = conds.length === 2 ? g.op('And', conds) : conds[0]!;
  return [where(ctx, cond, dyOf(ctx, dys), g.scalar(0))];
};

/** The first maximum over the spatial axes of each channel, as a one-hot mask of the input's shape. */
const globalMaxPool: Rule = (ctx, dys) => {
  const x = ctx.node.inputs[0]!;
  const dims = ctx.staticDims(x, Array.from({ length: ctx.shape(x).dims.length - 1 }, (_, i) => i + 1));
  const size = dims.slice(2).reduce((a, b) => a * b, 1);
  const g = ctx.g;
  const flat = g.op('Reshape', [x, g.ints([0, dims[1]!, size])]);
  const first = g.op('ArgMax', [flat], { axis: 2, keepdims: 1, select_last_index: 0 });
  const mask = g.op('OneHot', [first, g.ints([size]), g.weight('one_hot_values', [2], Float32Array.from([0, 1]))], { axis: -1 });
  const spread = g.op('Mul', [g.op('Reshape', [mask, g.ints([0, dims[1]!, size])]), g.op('Reshape', [dyOf(ctx, dys), g.ints([0, dims[1]!, 1])])]);
  return [g.op('Reshape', [spread, ctx.shapeOf(x)])];
};

/**
 * Gather with constant indices: its gradient sums each output slice back onto the input position it
 * was read from, as a MatMul with a one-hot matrix `[n, D]` over the gathered axis (exact, and
 * repeated indices add up).
 */
const gather: Rule = (ctx, dys) => {
  const [data, indices] = ctx.node.inputs as [string, string];
  if (ctx.needs(1)) ctx.fail('a Gather whose indices depend on the input has no rule');
  const rank = ctx.shape(data).dims.length;
  const axis = norm(ctx.node.int('axis', 0), rank);
  const size = ctx.staticDims(data, [axis])[axis]!;
  const picked = ctx.ints(indices).map((i) => (i < 0 ? i + size : i));
  const q = ctx.shape(indices).dims.length;
  const post = rank - axis - 1;
  const g = ctx.g;
  const oneHot = new Float32Array(picked.length * size);
  picked.forEach((i, j) => (oneHot[j * size + i] = 1));
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
  // [pre, idx, post] → [pre, post, idx] → [pre, post, n] · onehot → [pre, post, D] → [pre, D, post].
  const moved = g.op('Transpose', [dyOf(ctx, dys)], { perm: [...range(0, axis), ...range(axis + q, post), ...range(axis, q)] });
  const rows = q === 0 ? g.op('Unsqueeze', [moved, g.ints([axis + post])]) : g.op('Reshape', [moved, g.ints([...new Array<number>(axis + post).fill(0), picked.length])]);
  const summed = g.op('MatMul', [rows, g.weight('gather_one_hot', [picked.length, size], oneHot)]);
  return [g.op('Transpose', [summed], { perm: [...range(0, axis), axis + post, ...range(axis, post)] })];
};

/** Every op type with a rule. */
export const RULES: Readonly<Record<string, Rule>> = {
  Identity: passThrough,
  Dropout: passThrough,
  Cast: passThrough,
  Flatten: reshapeBack,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Expand: (ctx, dys) => [ctx.unbroadcast(dyOf(ctx, dys), ctx.node.outputs[0]!, ctx.node.inputs[0]!)],
  Transpose: transpose,
  Concat: concat,
  Gather: gather,
  Split: split,
  Slice: slice,
  Pad: pad,
  Add: binary((_c, dy) => dy),
  Sub: binary((ctx, dy, _a, _b, i) => (i === 0 ? dy : ctx.g.op('Neg', [dy]))),
  Mul: binary((ctx, dy, a, b, i) => ctx.g.op('Mul', [dy, i === 0 ? b : a])),
  Div: binary((ctx, dy, a, b, i) =>
    i === 0 ? ctx.g.op('Div', [dy, b]) : ctx.g.op('Neg', [ctx.g.op('Div', [ctx.g.op('Mul', [dy, a]), ctx.g.op('Mul', [b, b])])]),
  ),
  Pow: binary((ctx, dy, a, b, i) => {
    if (i === 1) return ctx.fail('a Pow whose exponent depends on the input has no rule');
    const g = ctx.g;
    return g.op('Mul', [dy, g.op('Mul', [b, g.op('Pow', [a, g.op('Sub', [b, g.scalar(1)])])])]);
  }),
  Mean: (ctx, dys) => {
    const d = ctx.g.op('Div', [dyOf(ctx, dys), ctx.g.scalar(ctx.node.inputs.length)]);
    return ctx.node.inputs.map((v, i) => (ctx.needs(i) ? ctx.unbroadcast(d, ctx.node.outputs[0]!, v) : undefined));
  },
  Where: (ctx, dys) => {
    const dy = dyOf(ctx, dys);
    const [cond, a, b] = ctx.node.inputs as [string, string, string];
    const y = ctx.node.outputs[0]!;
    const zero = ctx.g.scalar(0);
    return [
      undefined,
      ctx.needs(1) ? ctx.unbroadcast(where(ctx, cond, dy, zero), y, a) : undefined,
      ctx.needs(2) ? ctx.unbroadcast(where(ctx, cond, zero, dy), y, b) : undefined,
    ];
  },
  Sum: (ctx, dys) => ctx.node.inputs.map((v, i) => (ctx.needs(i) ? ctx.unbroadcast(dyOf(ctx, dys), ctx.node.outputs[0]!, v) : undefined)),
  Neg: unary((ctx, dy) => ctx.g.op('Neg', [dy])),
  Abs: unary((ctx, dy, x) => ctx.g.op('Mul', [dy, ctx.g.op('Sign', [x])])),
  Exp: unary((ctx, dy, _x, y) => ctx.g.op('Mul', [dy, y])),
  Log: unary((ctx, dy, x) => ctx.g.op('Div', [dy, x])),
  Sqrt: unary((ctx, dy, _x, y) => ctx.g.op('Div', [dy, ctx.g.op('Mul', [y, ctx.g.scalar(2)])])),
  Reciprocal: unary((ctx, dy, _x, y) => ctx.g.op('Neg', [ctx.g.op('Mul', [dy, ctx.g.op('Mul', [y, y])])])),
  Erf: unary((ctx, dy, x) => {
    const g = ctx.g;
    return g.op('Mul', [dy, g.op('Mul', [g.scalar(2 / Math.sqrt(Math.PI)), g.op('Exp', [g.op('Neg', [g.op('Mul', [x, x])])])])]);
  }),
  Elu: unary((ctx, dy, x, y) => {
    const g = ctx.g;
    return where(ctx, g.op('Greater', [x, g.scalar(0)]), dy, g.op('Mul', [dy, g.op('Add', [y, g.scalar(ctx.node.float('alpha', 1))])]));
  }),
  Selu: unary((ctx, dy, x) => {
    const g = ctx.g;
    const gamma = ctx.node.float('gamma', 1.0507009873554805);
    const alpha = ctx.node.float('alpha', 1.6732632423543772);
    const negative = g.op('Mul', [dy, g.op('Mul', [g.scalar(gamma * alpha), g.op('Exp', [x])])]);
    return where(ctx, g.op('Greater', [x, g.scalar(0)]), g.op('Mul', [dy, g.scalar(gamma)]), negative);
  }),
  Softplus: unary((ctx, dy, x) => ctx.g.op('Mul', [dy, ctx.g.op('Sigmoid', [x])])),
  Relu: unary((ctx, dy, x) => where(ctx, ctx.g.op('Greater', [x, ctx.g.scalar(0)]), dy, ctx.g.scalar(0))),
  LeakyRelu: unary((ctx, dy, x) =>
    where(ctx, ctx.g.op('Greater', [x, ctx.g.scalar(0)]), dy, ctx.g.op('Mul', [dy, ctx.g.scalar(ctx.node.float('alpha', 0.01))])),
  ),
  PRelu: (ctx, dys) => {
    if (ctx.needs(1)) ctx.fail('a PRelu whose slope depends on the input has no rule');
    const [x, slope] = ctx.node.inputs as [string, string];
    const dy = dyOf(ctx, dys);
    return [where(ctx, ctx.g.op('Greater', [x, ctx.g.scalar(0)]), dy, ctx.g.op('Mul', [dy, slope]))];
  },
  Sigmoid: unary((ctx, dy, _x, y) => ctx.g.op('Mul', [dy, ctx.g.op('Mul', [ctx.g.op('Sub', [ctx.g.scalar(1), y]), y])])),
  Tanh: unary((ctx, dy, _x, y) => ctx.g.op('Mul', [dy, ctx.g.op('Sub', [ctx.g.scalar(1), ctx.g.op('Mul', [y, y])])])),
  Clip: clip,
  HardSigmoid: unary((ctx, dy, x) => {
    const g = ctx.g;
    const alpha = ctx.node.float('alpha', 0.2);
    const z = g.op('Add', [g.op('Mul', [x, g.scalar(alpha)]), g.scalar(ctx.node.float('beta', 0.5))]);
    return where(ctx, g.op('And', [g.op('Greater', [z, g.scalar(0)]), g.op('Less', [z, g.scalar(1)])]), g.op('Mul', [dy, g.scalar(alpha)]), g.scalar(0));
  }),
  HardSwish: unary((ctx, dy, x) => {
    const g = ctx.g;
    const inner = g.op('Mul', [dy, g.op('Add', [g.op('Div', [x, g.scalar(3)]), g.scalar(0.5)])]);
    const upper = where(ctx, g.op('LessOrEqual', [x, g.scalar(3)]), inner, dy);
    return where(ctx, g.op('Less', [x, g.scalar(-3)]), g.scalar(0), upper);
  }),
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  Gemm: gemm,
  MatMul: matMul,
  Conv: conv,
  ConvTranspose: convTranspose,
  BatchNormalization: batchNormalization,
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
  GlobalMaxPool: globalMaxPool,
  ReduceSum: reduceRule(false),
  ReduceMean: reduceRule(true),
  ReduceMax: reduceMax,
};
