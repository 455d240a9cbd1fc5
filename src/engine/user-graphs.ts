/**
 * The native programs of a user's ONNX model: its graph behind the pixel preprocessing the sidecar
 * declares, and that whole forward graph differentiated (`autodiff/`), so that a user's model
 * offers what the zoo's families offer: `scores`, `vjp`, the attacks' fused `ce`, and `model` (a
 * user model's own loss is cross-entropy over its scores, as for user tfjs models).
 *
 * Every program takes pixels `[B, H·W·C]` in [0,1], row-major HWC as records hold them; the
 * graph reshapes them to the model's layout and normalises them, (pixel − mean_c) / std_c, so
 * that ε is in pixel units and the gradient is with respect to pixels.
 *
 * A graph the differentiation cannot go through (an op without a rule) keeps its `scores` program
 * and runs black-box; `blackBox` says why.
 */
import onnxProto from 'onnx-proto';
import { Errors, isAdvstreamError } from '../errors.js';
import { Autodiff } from './autodiff/index.js';
import { decodeGraph, toNumber } from './autodiff/ir.js';
import { attackCrossEntropy, headedProgram, plainCrossEntropy, scoreProgram, type NativeGraphs, type NativeProgram } from './export.js';
import { GraphBuilder, type Dim } from './graph.js';
import type { OnnxInputSpec } from './onnx-file.js';
import { createSession, ort } from './ort.js';

const { onnx } = onnxProto;

/** The user's graph with the preprocessing in front: input `x` `[B, D]` pixels, output `scores` `[B, C]`. */
function forwardGraph(bytes: Uint8Array, spec: OnnxInputSpec, where: string): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = decodeGraph(bytes, where);
  const domains = (model.opsetImport ?? []).filter((o) => o.domain && o.domain !== 'ai.onnx').map((o) => ({ domain: o.domain!, version: toNumber(o.version) }));
  const g = new GraphBuilder('user-forward', { opset: graph.opset, prefix: 'p/', domains });
  const [h, w, c] = spec.shape;
  const batch: Dim = spec.batch ?? 'batch';
  const x = g.input('x', [batch, h * w * c]);
  let v = spec.layout === 'flat' ? x : g.op('Reshape', [x, g.ints([-1, h, w, c])]);
  if (spec.mean.some((m) => m !== 0)) v = g.op('Sub', [v, g.weight('mean', [c], Float32Array.from(spec.mean))]);
  if (spec.std.some((s) => s !== 1)) v = g.op('Div', [v, g.weight('std', [c], Float32Array.from(spec.std))]);
  if (spec.layout === 'nchw') v = g.op('Transpose', [v], { perm: [0, 3, 1, 2] });
  const pre = v;
  // The user's names get a prefix: none of them can then meet a name of the programs ('x', 'scores', …).
  const rename = (name: string) => (name === '' ? '' : name === spec.input ? pre : `m/${name}`);
  for (const t of graph.initializers) g.rawInitializer({ ...t, name: rename(t.name ?? '') });
  for (const n of graph.nodes) g.raw({ ...n.proto, input: n.inputs.map(rename), output: n.outputs.map(rename) });
  g.output(g.op('Flatten', [rename(spec.output)], { axis: 1 }), 'scores');
  return g.encode();
}

/** The number of classes: one run of the scores program. */
async function classesOf(scores: Uint8Array, spec: OnnxInputSpec, where: string): Promise<number> {
  const session = await createSession(scores, 'cpu', where);
  try {
    const rows = spec.batch ?? 1;
    const size = spec.shape[0] * spec.shape[1] * spec.shape[2];
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(rows * size), [rows, size]) });
    const s = out.scores;
    if (!s || s.type !== 'float32') throw Errors.badModel(where, `output '${spec.output}' is not a float32 tensor`);
    if (s.dims[0] !== rows) throw Errors.badModel(where, `output '${spec.output}' [${s.dims.join(', ')}] is not one row of scores per image`);
    return s.dims[1] ?? 1;
  } catch (e) {
    if (isAdvstreamError(e)) throw e;
    throw Errors.badModel(where, `onnxruntime could not run the model: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    await session.release();
  }
}

/**
 * The programs of a user's ONNX model. Bytes ONNX Runtime cannot run are a `BAD_MODEL` error; a
 * graph it runs but that has an op without a gradient rule gets its scores program only, with the
 * `NOT_DIFFERENTIABLE` reason in `blackBox`.
 *
 * @example
 *   const graphs = await userGraphs(bytes, spec, './cnn.onnx');
 *   graphs.blackBox; // undefined: white-box
 */
export async function userGraphs(bytes: Uint8Array, spec: OnnxInputSpec, where: string): Promise<NativeGraphs> {
  const forward = forwardGraph(bytes, spec, where);
  const dim = spec.shape[0] * spec.shape[1] * spec.shape[2];
  const batch: Dim = spec.batch ?? 'batch';
  const numClasses = await classesOf(forward, spec, where);
  const programs: Partial<Record<NativeProgram, Uint8Array>> = { scores: forward };
  const graphs: NativeGraphs = { family: 'onnx', inputDim: dim, numClasses, programs, batch: spec.batch, ownLossIsCe: true };
  let ad: Autodiff;
  try {
    ad = await Autodiff.create(forward, where);
  } catch (e) {
    if (isAdvstreamError(e) && e.code === 'NOT_DIFFERENTIABLE') return { ...graphs, blackBox: e.message };
    throw e;
  }
  const shape = { batch, classes: numClasses, dim };
  programs.vjp = scoreProgram(ad, 'user', shape).vjp;
  programs.ce = headedProgram(ad, 'user-ce', attackCrossEntropy, shape);
  programs.model = headedProgram(ad, 'user-model', plainCrossEntropy, shape);
  return graphs;
}
