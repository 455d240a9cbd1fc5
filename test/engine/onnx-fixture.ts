/**
 * ONNX models as another framework exports them, written with onnx-proto so that the tests need no
 * Python: a PyTorch-style MLP (`nn.Flatten → nn.Linear → nn.ReLU → nn.Linear`, NCHW input
 * `[batch, 1, 28, 28]` named `input.1`, Linear weights `[out, in]` used through Gemm with transB,
 * trained on inputs normalised by torchvision's `Normalize((0.1307,), (0.3081,))`).
 *
 * Its weights come from the zoo's ReLU MLP, folded through the normalisation: with z = (x − m)/s,
 * W·x + b = (s·W)·z + (b + W·m). So the exported model, fed normalised pixels, must score exactly
 * what `zoo:mlp-relu` scores on raw ones: a check of the layout and the sidecar's mean/std.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GraphBuilder } from '../../src/engine/graph.js';
import { plainWeights } from '../../src/engine/build.js';
import { loadArtifact } from '../../src/models/artifact.js';

export const MEAN = 0.1307;
export const STD = 0.3081;

export interface TorchLikeOptions {
  /** A fixed batch size instead of a symbolic one (a `torch.onnx.export` without dynamic axes). */
  batch?: number;
  /** Input dims after the batch, NCHW (default [1, 28, 28]). */
  dims?: number[];
  /** Write the sidecar (default true). */
  sidecar?: Record<string, unknown> | false;
  /**
   * Put an op without a gradient rule after the hidden ReLU (a one-input `Max`, the identity), so
   * that the model runs black-box: for the tests of how black-box models are attacked and reported.
   */
  opaque?: boolean;
}

/** Writes `dir/NAME.onnx` (and its sidecar) and returns the file path. */
export async function writeTorchLikeMlp(dir: string, name: string, o: TorchLikeOptions = {}): Promise<string> {
  const w = plainWeights(await loadArtifact('zoo:mlp-relu'));
  const [w0, b0, w1, b1] = [w['l0/w']!, w['l0/b']!, w['l1/w']!, w['l1/b']!];
  const [inputs, hidden] = w0.shape as [number, number];
  const classes = w1.shape[1]!;
  const dims = o.dims ?? [1, 28, 28];
  const flat = dims.reduce((a, b) => a * b, 1);
  // PyTorch's Linear stores [out, in]; fold the normalisation into the first layer.
  const fc1 = new Float32Array(hidden * flat);
  const bias1 = Float32Array.from(b0.data);
  for (let j = 0; j < hidden; j++) {
    for (let i = 0; i < flat; i++) {
      const v = i < inputs ? w0.data[i * hidden + j]! : 0;
      fc1[j * flat + i] = v * STD;
      bias1[j] = bias1[j]! + v * MEAN;
    }
  }
  const fc2 = new Float32Array(classes * hidden);
  for (let j = 0; j < classes; j++) for (let i = 0; i < hidden; i++) fc2[j * hidden + i] = w1.data[i * classes + j]!;

  const g = new GraphBuilder('torch_jit');
  const batch = o.batch ?? 'batch_size';
  const x = g.input('input.1', [batch, ...dims]);
  const relu = g.op('Relu', [g.op('Gemm', [g.op('Flatten', [x], { axis: 1 }), g.weight('fc1.weight', [hidden, flat], fc1), g.weight('fc1.bias', [hidden], bias1)], { transB: 1 })]);
  const h = o.opaque ? g.op('Max', [relu]) : relu;
  const logits = g.op('Gemm', [h, g.weight('fc2.weight', [classes, hidden], fc2), g.weight('fc2.bias', [classes], Float32Array.from(b1.data))], { transB: 1 });
  g.output(logits, 'logits', [batch, classes]);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.onnx`);
  await writeFile(file, g.encode());
  const sidecar = o.sidecar ?? { layout: 'NCHW', mean: [MEAN], std: [STD] };
  if (sidecar) await writeFile(`${file}.json`, `${JSON.stringify(sidecar)}\n`);
  return file;
}
