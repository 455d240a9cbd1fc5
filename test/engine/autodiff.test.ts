/**
 * One test per gradient rule: a one-node graph (symbolic batch, batch 2 here), its derived
 * vector–Jacobian program against central finite differences of the forward graph, along three
 * random directions, with random output weights. Every registered rule has a case (a test checks
 * the table and the cases match), and a few rules have a second case for a configuration that
 * takes another path (groups, auto_pad, ceil mode, broadcasting on the differentiated side).
 */
import { describe, expect, it } from 'vitest';
import { Autodiff, RULES } from '../../src/engine/autodiff/index.js';
import { GraphBuilder, type AttrValue } from '../../src/engine/graph.js';
import { createSession, ort } from '../../src/engine/ort.js';

interface Case {
  op: string;
  /** Input dims after the batch. */
  dims: number[];
  attrs?: Record<string, AttrValue>;
  /** The node's inputs (default [x]). */
  inputs?: (g: GraphBuilder, x: string) => string[];
  outputs?: number;
  /** Input values: uniform in [lo, hi] (default [−1, 1]). */
  range?: [number, number];
  label?: string;
  opset?: number;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = (r: () => number, n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
const c = (g: GraphBuilder, dims: number[], seed: number, lo = -1, hi = 1) => g.weight('c', dims, rand(rng(seed), dims.reduce((a, b) => a * b, 1), lo, hi));

const CASES: Case[] = [
  { op: 'Identity', dims: [5] },
  { op: 'Dropout', dims: [5] },
  { op: 'Cast', dims: [5], attrs: { to: 1 } },
  { op: 'Flatten', dims: [2, 3, 2], attrs: { axis: 1 } },
  { op: 'Reshape', dims: [2, 6], inputs: (g, x) => [x, g.ints([0, 3, 4])] },
  { op: 'Squeeze', dims: [1, 4], inputs: (g, x) => [x, g.ints([1])] },
  { op: 'Unsqueeze', dims: [4], inputs: (g, x) => [x, g.ints([1])] },
  { op: 'Expand', dims: [1, 4], inputs: (g, x) => [x, g.ints([1, 3, 4])] },
  { op: 'Transpose', dims: [3, 4], attrs: { perm: [0, 2, 1] } },
  { op: 'Concat', dims: [2, 3], attrs: { axis: 2 }, inputs: (g, x) => [x, x] },
  { op: 'Gather', dims: [5, 3], attrs: { axis: 1 }, inputs: (g, x) => [x, g.ints([4, 0, -1, 2])], label: 'repeated and negative indices' },
  { op: 'Gather', dims: [5, 3], attrs: { axis: 2 }, inputs: (g, x) => [x, scalarIndex(g, 1)], label: 'a scalar index' },
  { op: 'Split', dims: [6], attrs: { axis: 1 }, outputs: 2, inputs: (g, x) => [x, g.ints([2, 4])] },
  { op: 'Slice', dims: [5, 6], inputs: (g, x) => [x, g.ints([1, -4]), g.ints([4, 100]), g.ints([1, 2])] },
  { op: 'Pad', dims: [3, 4], inputs: (g, x) => [x, g.ints([0, 1, 2, 0, 2, 1]), g.scalar(0.5)] },
  { op: 'Add', dims: [3, 4], inputs: (g, x) => [x, c(g, [4], 2)] },
  { op: 'Add', dims: [1, 4], inputs: (g, x) => [x, c(g, [3, 4], 3)], label: 'broadcast on the input side' },
  { op: 'Sub', dims: [3, 4], inputs: (g, x) => [c(g, [3, 1], 4), x] },
  { op: 'Mul', dims: [3, 4], inputs: (g, x) => [x, x], label: 'the same value on both sides' },
  { op: 'Mul', dims: [3, 4], inputs: (g, x) => [x, c(g, [1, 4], 5)] },
  { op: 'Div', dims: [3], range: [0.5, 1.5], inputs: (g, x) => [c(g, [3], 6), x] },
  { op: 'Div', dims: [3], range: [0.5, 1.5], inputs: (g, x) => [x, c(g, [3], 7, 0.5, 2)], label: 'by a constant' },
  { op: 'Pow', dims: [4], range: [0.5, 1.5], inputs: (g, x) => [x, g.scalar(2.5)] },
  { op: 'Sum', dims: [4], inputs: (g, x) => [x, x, c(g, [4], 8)] },
  { op: 'Neg', dims: [4] },
  { op: 'Abs', dims: [6] },
  { op: 'Exp', dims: [4] },
  { op: 'Log', dims: [4], range: [0.5, 2] },
  { op: 'Sqrt', dims: [4], range: [0.5, 2] },
  { op: 'Reciprocal', dims: [4], range: [0.5, 2] },
  { op: 'Erf', dims: [4] },
  { op: 'Elu', dims: [8], attrs: { alpha: { float: 0.7 } } },
  { op: 'Selu', dims: [8] },
  { op: 'Softplus', dims: [8] },
  { op: 'Mean', dims: [4], inputs: (g, x) => [x, c(g, [4], 23), x] },
  { op: 'Where', dims: [2, 4], inputs: (g, x) => [g.op('Greater', [c(g, [4], 24), g.scalar(0)]), x, c(g, [2, 1], 25)] },
  { op: 'Where', dims: [4], inputs: (g, x) => [g.op('Greater', [x, g.scalar(0)]), x, g.op('Neg', [x])], label: 'both branches the input' },
  { op: 'GlobalMaxPool', dims: [3, 4, 5] },
  { op: 'Relu', dims: [8] },
  { op: 'LeakyRelu', dims: [8], attrs: { alpha: { float: 0.1 } } },
  { op: 'PRelu', dims: [3, 4], inputs: (g, x) => [x, c(g, [3, 1], 9, 0, 0.5)] },
  { op: 'Sigmoid', dims: [6] },
  { op: 'Tanh', dims: [6] },
  { op: 'Clip', dims: [8], inputs: (g, x) => [x, g.scalar(-0.5), g.scalar(0.5)] },
  { op: 'HardSigmoid', dims: [8], range: [-4, 4] },
  { op: 'HardSwish', dims: [8], range: [-4, 4], opset: 14 },
  { op: 'Softmax', dims: [5], attrs: { axis: 1 } },
  { op: 'LogSoftmax', dims: [2, 5] },
  { op: 'Gemm', dims: [3], attrs: { transB: 1, alpha: { float: 0.5 }, beta: { float: 2 } }, inputs: (g, x) => [x, c(g, [4, 3], 10), c(g, [4], 11)] },
  { op: 'MatMul', dims: [2, 3], inputs: (g, x) => [x, c(g, [3, 4], 12)] },
  { op: 'MatMul', dims: [3, 3], inputs: (g, x) => [x, x], label: 'the same value on both sides' },
  { op: 'Conv', dims: [2, 7, 7], attrs: { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] }, inputs: (g, x) => [x, c(g, [4, 1, 3, 3], 13), c(g, [4], 14)] },
  { op: 'Conv', dims: [3, 6, 5], attrs: { auto_pad: { string: 'SAME_UPPER' }, strides: [1, 2] }, inputs: (g, x) => [x, c(g, [2, 3, 3, 2], 15)], label: 'auto_pad' },
  { op: 'Conv', dims: [3, 8, 7], attrs: { dilations: [2, 1], pads: [1, 0, 2, 1] }, inputs: (g, x) => [x, c(g, [2, 3, 3, 2], 22)], label: 'dilations, uneven pads' },
  { op: 'Conv', dims: [4, 5, 6], attrs: { group: 2, pads: [1, 1, 1, 1] }, inputs: (g, x) => [x, c(g, [6, 2, 3, 3], 26)], label: 'stride 1, groups: a flipped-filter Conv' },
  { op: 'ConvTranspose', dims: [2, 4, 4], attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, inputs: (g, x) => [x, c(g, [2, 3, 3, 3], 16), c(g, [3], 17)] },
  { op: 'BatchNormalization', dims: [3, 4, 4], inputs: (g, x) => [x, c(g, [3], 18), c(g, [3], 19), c(g, [3], 20), c(g, [3], 21, 0.5, 2)] },
  { op: 'MaxPool', dims: [2, 7, 7], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } },
  { op: 'MaxPool', dims: [2, 7, 7], attrs: { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }, label: 'ceil mode' },
  { op: 'MaxPool', dims: [2, 7, 8], attrs: { kernel_shape: [2, 2], strides: [2, 2] }, label: 'a row dropped' },
  { op: 'MaxPool', dims: [2, 7, 7], attrs: { kernel_shape: [2, 3], strides: [2, 2], pads: [0, 1, 1, 0] }, label: 'overlapping, uneven pads' },
  { op: 'AveragePool', dims: [2, 7, 7], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } },
  { op: 'AveragePool', dims: [2, 7, 6], attrs: { kernel_shape: [2, 3], strides: [2, 2], pads: [0, 1, 0, 1], count_include_pad: 1, ceil_mode: 1 }, label: 'padding counted, ceil mode' },
  { op: 'GlobalAveragePool', dims: [3, 4, 5] },
  { op: 'ReduceSum', dims: [3, 4], attrs: { keepdims: 0 }, inputs: (g, x) => [x, g.ints([2])] },
  { op: 'ReduceMean', dims: [3, 4], attrs: { axes: [1], keepdims: 1 } },
  { op: 'ReduceMax', dims: [3, 4], attrs: { axes: [2], keepdims: 0 } },
  { op: 'ReduceMean', dims: [3, 4], opset: 18, inputs: (g, x) => [x, g.ints([-1])], attrs: { keepdims: 0 }, label: 'opset 18: axes as an input' },
  { op: 'ReduceMax', dims: [3, 4], opset: 18, inputs: (g, x) => [x, g.ints([1])], label: 'opset 18: axes as an input' },
  { op: 'Pad', dims: [3, 4], opset: 18, inputs: (g, x) => [x, g.ints([1, 2, 0, 1]), g.scalar(0), g.ints([2, 1])], label: 'opset 18: axes as an input' },
];

/** A rank-0 int64 index, as PyTorch writes `x[:, :, 1]`. */
function scalarIndex(g: GraphBuilder, i: number): string {
  return g.op('Squeeze', [g.ints([i])]);
}

const BATCH = 2;
const H = 1e-3;

async function run(session: ort.InferenceSession, feeds: Record<string, Float32Array>, dims: Record<string, number[]>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) tensors[k] = new ort.Tensor('float32', v, dims[k]!);
  return session.run(tensors);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

async function check(k: Case, seed: number): Promise<{ analytic: number; numeric: number }[]> {
  const g = new GraphBuilder(`case-${k.op}`, k.opset ? { opset: k.opset } : {});
  const x = g.input('x', ['batch', ...k.dims]);
  const n = k.outputs ?? 1;
  const outs = g.opN(k.op, k.inputs ? k.inputs(g, x) : [x], n, k.attrs ?? {});
  outs.forEach((o, i) => g.output(o, `y${i}`));
  const forwardBytes = g.encode();
  const ad = await Autodiff.create(forwardBytes, `${k.op} case`);
  const forward = await createSession(forwardBytes, 'cpu', 'forward');
  const r = rng(seed);
  const xDims = [BATCH, ...k.dims];
  const size = xDims.reduce((a, b) => a * b, 1);
  const xv = rand(r, size, ...(k.range ?? [-1, 1]));
  const ys = await run(forward, { x: xv }, { x: xDims });
  const names = outs.map((_, i) => `y${i}`);
  const weights = names.map((y) => rand(r, ys[y]!.size));
  const vjpBytes = ad.program('vjp', (p, grad) => {
    const seeds = names.map((y, i) => [y, p.input(`d${i}`, ys[y]!.dims as number[])] as const);
    p.output(grad(seeds), 'grad', xDims);
  });
  const vjp = await createSession(vjpBytes, 'cpu', 'vjp');
  const feeds: Record<string, Float32Array> = { x: xv };
  const dims: Record<string, number[]> = { x: xDims };
  names.forEach((y, i) => {
    feeds[`d${i}`] = weights[i]!;
    dims[`d${i}`] = [...ys[y]!.dims];
  });
  const gradient = (await run(vjp, feeds, dims)).grad!.data as Float32Array;
  const objective = async (at: Float32Array) => {
    const out = await run(forward, { x: at }, { x: xDims });
    return names.reduce((s, y, i) => s + dot(out[y]!.data as Float32Array, weights[i]!), 0);
  };
  const results: { analytic: number; numeric: number }[] = [];
  for (let d = 0; d < 3; d++) {
    const v = rand(r, size);
    const plus = Float32Array.from(xv, (a, i) => a + H * v[i]!);
    const minus = Float32Array.from(xv, (a, i) => a - H * v[i]!);
    results.push({ analytic: dot(gradient, v), numeric: ((await objective(plus)) - (await objective(minus))) / (2 * H) });
  }
  await forward.release();
  await vjp.release();
  return results;
}

describe('gradient rules against finite differences (one-node graphs)', () => {
  it('every registered rule has a case', () => {
    expect(new Set(CASES.map((k) => k.op))).toEqual(new Set(Object.keys(RULES)));
  });

  for (const k of CASES) {
    it(`${k.op}${k.label ? ` (${k.label})` : ''}`, async () => {
      for (const { analytic, numeric } of await check(k, 7)) {
        expect(Math.abs(analytic - numeric), `analytic ${analytic}, numeric ${numeric}`).toBeLessThanOrEqual(2e-3 * Math.max(1, Math.abs(numeric)));
      }
    });
  }
});

describe('differentiation of whole graphs', () => {
  it("MaxPool sends a window's gradient to its first maximum (PyTorch's and ONNX Runtime's rule)", async () => {
    const g = new GraphBuilder('ties');
    const x = g.input('x', ['batch', 1, 4, 4]);
    g.output(g.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] }), 'y');
    const ad = await Autodiff.create(g.encode(), 'ties');
    const vjp = await createSession(
      ad.program('vjp', (p, grad) => p.output(grad([['y', p.input('dy', ['batch', 1, 2, 2])]]), 'grad')),
      'cpu',
      'ties',
    );
    // Two tied windows (all equal), one with its maximum last, one with a tie of its last two.
    const xs = Float32Array.from([0.5, 0.5, 0, 0.1, 0.5, 0.5, 0.2, 0.3, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.7, 0.7]);
    const out = await run(vjp, { x: xs, dy: Float32Array.from([1, 2, 3, 4]) }, { x: [1, 1, 4, 4], dy: [1, 1, 2, 2] });
    expect(Array.from(out.grad!.data as Float32Array)).toEqual([1, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0, 4, 0]);
    await vjp.release();
  });

  it('an op without a rule on the path is a NOT_DIFFERENTIABLE error naming its type and node; ops off the path need none', async () => {
    const g = new GraphBuilder('lrn');
    const x = g.input('x', ['batch', 2, 3, 3]);
    const y = g.op('LRN', [g.op('Relu', [x])], { size: 3 });
    g.output(g.op('Flatten', [y], { axis: 1 }), 'scores');
    g.output(g.op('ArgMax', [g.op('Flatten', [x], { axis: 1 })], { axis: 1 }), 'argmax');
    const err = await Autodiff.create(g.encode(), 'model.onnx').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_DIFFERENTIABLE', message: expect.stringMatching(/^model\.onnx: no gradient rule for LRN \(node 'n_LRN_\d+'\)$/) });
    expect((err as { details: { nodes: { op: string }[] } }).details.nodes.map((n) => n.op)).toEqual(['LRN']);
  });

  it('a configuration a rule does not cover is named at load time too', async () => {
    const g = new GraphBuilder('steps');
    const x = g.input('x', ['batch', 6]);
    g.output(g.op('Slice', [x, g.ints([0]), g.ints([6]), g.ints([1]), g.ints([2])]), 'y');
    await expect(Autodiff.create(g.encode(), 'steps.onnx')).rejects.toMatchObject({
      code: 'NOT_DIFFERENTIABLE',
      message: expect.stringContaining("Slice (node 'n_Slice_"),
    });
  });

  it('folds the Shape→Gather→Unsqueeze→Concat chain PyTorch writes around a view(x.size(0), -1), and runs at any batch', async () => {
    const g = new GraphBuilder('view');
    const x = g.input('x', ['batch', 2, 3]);
    const shape = g.op('Shape', [x]);
    const size = g.op('Squeeze', [g.op('Gather', [shape, g.ints([0])], { axis: 0 }), g.ints([0])]);
    const b = g.op('Unsqueeze', [size, g.ints([0])]);
    const target = g.op('Concat', [b, g.ints([-1])], { axis: 0 });
    g.output(g.op('Relu', [g.op('Reshape', [x, target])]), 'y');
    const ad = await Autodiff.create(g.encode(), 'view');
    const bytes = ad.program('vjp', (p, grad) => p.output(grad([['y', p.input('dy', ['batch', 6])]]), 'grad'));
    const vjp = await createSession(bytes, 'cpu', 'view');
    const xs = rand(rng(3), 5 * 6);
    const out = await run(vjp, { x: xs, dy: new Float32Array(30).fill(1) }, { x: [5, 2, 3], dy: [5, 6] });
    expect(Array.from(out.grad!.data as Float32Array)).toEqual(Array.from(xs, (v) => (v > 0 ? 1 : 0)));
    await vjp.release();
  });
});

describe('values off float32', () => {
  it('a Cast to float64 on the path is named, not silently given a zero gradient', async () => {
    const g = new GraphBuilder('double');
    const x = g.input('x', ['batch', 3]);
    g.output(g.op('Cast', [g.op('Relu', [g.op('Cast', [x], { to: 11 })])], { to: 1 }), 'y');
    await expect(Autodiff.create(g.encode(), 'double.onnx')).rejects.toMatchObject({
      code: 'NOT_DIFFERENTIABLE',
      message: expect.stringMatching(/Cast \(node 'n_Cast_\d+': its output leaves float32/),
    });
  });
});
