/**
 * The ONNX fixtures PyTorch exported (`fixtures/onnx/make.py`): their derived input gradients
 * against torch autograd's on 16 fixed inputs, through the sidecar's normalisation and layout.
 * Metric: max |native − torch| / max |torch| over the whole array, as in `export.test.ts`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor2D } from '../../src/backend/index.js';
import { ceObjective } from '../../src/attacks/losses.js';
import { buildRunner } from '../../src/engine/build.js';
import { loadArtifact } from '../../src/models/artifact.js';

const DIR = path.join(import.meta.dirname, '..', '..', 'fixtures', 'onnx');

interface Reference {
  count: number;
  shape: [number, number, number];
  labels: number[];
  arrays: Record<string, Float32Array>;
}

async function reference(name: string): Promise<Reference> {
  const meta = JSON.parse(await readFile(path.join(DIR, `${name}.ref.json`), 'utf8')) as { count: number; shape: [number, number, number]; labels: number[]; arrays: { name: string; shape: number[] }[] };
  const bin = await readFile(path.join(DIR, `${name}.ref.bin`));
  const arrays: Record<string, Float32Array> = {};
  let at = 0;
  for (const a of meta.arrays) {
    const n = a.shape.reduce((p, q) => p * q, 1);
    arrays[a.name] = new Float32Array(bin.buffer.slice(bin.byteOffset + at * 4, bin.byteOffset + (at + n) * 4));
    at += n;
  }
  return { count: meta.count, shape: meta.shape, labels: meta.labels, arrays };
}

function relative(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}

describe('PyTorch-exported fixtures: derived gradients against torch autograd', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  for (const name of ['cnn', 'resnet']) {
    it(`${name}: scores within 1e-5, gradients within 1e-4 of torch`, async () => {
      const ref = await reference(name);
      const artifact = await loadArtifact(path.join(DIR, `${name}.onnx`));
      expect(artifact.modelJson).toMatchObject({ format: 'onnx', shape: ref.shape, blackBox: null });
      const before = tf.memory().numTensors;
      const runner = await buildRunner(artifact, 'onnx');
      expect(runner.gradientEngine).toBe('onnx-cpu');
      const dim = ref.shape[0] * ref.shape[1] * ref.shape[2];
      const x = tf.tensor2d(ref.arrays.pixels!, [ref.count, dim]);
      const labels = tf.tensor1d(Int32Array.from(ref.labels), 'int32');
      const dscores = tf.tensor2d(ref.arrays.dscores!, [ref.count, 10]);
      const figures: Record<string, number> = {};

      const scores = await runner.scores(x);
      figures.scores = relative(await scores.data(), ref.arrays.scores!);
      const vjp = await runner.gradient({ kind: 'scores', fn: (s) => tf.sum(tf.mul(s, dscores), 1) }, x);
      figures.vjp = relative(await vjp.grad.data(), ref.arrays.grad!);
      const own = await runner.gradient({ kind: 'model', labels, sign: 1 }, x);
      figures.ce = relative(await own.grad.data(), ref.arrays.ce_grad!);
      // The attacks' fused CE program against the vector–Jacobian program fed its score gradient (q − e_y).
      const fused = await runner.gradient(ceObjective(labels), x);
      const q = tf.tidy(() => {
        const onehot = tf.oneHot(labels, 10).toFloat();
        return tf.sub(tf.softmax(tf.sub(scores, tf.mul(onehot, 1e30))), onehot) as Tensor2D;
      });
      const viaVjp = await runner.gradient({ kind: 'scores', fn: (s) => tf.sum(tf.mul(s, q), 1) }, x);
      figures.fused = relative(await fused.grad.data(), await viaVjp.grad.data());
      console.log(`${name}: max|Δ|/max|torch|`, figures);
      expect(figures.scores).toBeLessThan(1e-5);
      expect(figures.vjp).toBeLessThan(1e-4);
      expect(figures.ce).toBeLessThan(1e-4);
      expect(figures.fused).toBeLessThan(1e-5);
      for (const e of [vjp, own, fused, viaVjp]) tf.dispose([e.grad, e.value, e.scores]);
      tf.dispose([x, labels, dscores, scores, q]);
      runner.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }, 60_000);
  }
});
