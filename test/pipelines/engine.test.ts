/**
 * The engines in the evaluation: `--engine auto` puts the zoo's exported families and ONNX models on
 * ONNX Runtime and names the engine in every output record; its statistics agree with tfjs's within
 * their intervals; an ONNX model is attacked black-box and is a transfer target of the others;
 * native batches leak no tensors; a model whose input does not fit the data is a clear error.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { openSource } from '../../src/data/index.js';
import { loadArtifact } from '../../src/models/artifact.js';
import { evaluate, imagePixels, sampleLine, type BatchEvent, type EvalEvent, type FinalEvent, type StartEvent } from '../../pipelines/index.js';
import { isBlackBox } from '../../pipelines/eval-plan.js';
import { runningPairs } from '../../pipelines/samples.js';
import { EvalRuntime, type EvalTask } from '../../workers/eval-task.js';
import { writeTorchLikeMlp } from '../engine/onnx-fixture.js';

const IMAGES = 256;
const ATTACKS = ['fgsm:eps=0.1', 'pgd:eps=0.1,steps=10'];

async function run(engine: 'auto' | 'tfjs' | 'onnx', models: string[], attacks = ATTACKS, limit = IMAGES): Promise<EvalEvent[]> {
  return lastValueFrom(
    evaluate({ uri: 'mnist:test', limit }, { models, attacks, workers: 2, batch: 64, seed: 5, engine, statsEvery: { seconds: 3600 } }).pipe(toArray()),
  );
}

describe('engines in the evaluation', () => {
  let dir: string;
  let onnxFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'advstream-engine-'));
    onnxFile = await writeTorchLikeMlp(dir, 'torch-mlp', { opaque: true });
  });

  it('auto runs the zoo natively, names the engine in every record, and agrees with tfjs within the intervals', async () => {
    const models = ['zoo:mlp-relu', 'zoo:dam-n20'];
    const [native, wasm] = [await run('auto', models), await run('tfjs', models)];
    const start = native[0] as StartEvent;
    const final = native.at(-1) as FinalEvent;
    expect(start.engine).toBe('onnx-cpu');
    expect(final.engine).toBe('onnx-cpu');
    expect(start.models.map((m) => [m.engine, m.gradient_engine])).toEqual([['onnx-cpu', 'onnx-cpu'], ['onnx-cpu', 'onnx-cpu']]);
    expect((wasm.at(-1) as FinalEvent).engine).toBe('tfjs-wasm');
    const reference = wasm.at(-1) as FinalEvent;
    for (const model of models) {
      const a = final.models[model]!;
      const b = reference.models[model]!;
      expect(a.clean.acc).toBeCloseTo(b.clean.acc!, 6);
      for (const [attack, r] of Object.entries(a.attacks)) {
        const ref = b.attacks[attack]!;
        // Each engine's estimate lies inside the other's 95% interval.
        expect(r.robust_acc!).toBeGreaterThanOrEqual(ref.ci[0] - 1e-9);
        expect(r.robust_acc!).toBeLessThanOrEqual(ref.ci[1] + 1e-9);
      }
    }
  }, 300_000);

  it('attacks an ONNX model black-box and scores it as a transfer target of the gradient attacks', async () => {
    const events = await run('auto', ['zoo:mlp-relu', onnxFile], ['pgd:eps=0.1,steps=10', 'square:eps=0.3,queries=100'], 128);
    const final = events.at(-1) as FinalEvent;
    const start = events[0] as StartEvent;
    expect(start.models[1]).toMatchObject({ family: 'onnx', engine: 'onnx-cpu', gradient_engine: 'none' });
    const onnx = final.models[onnxFile]!;
    // PGD cannot run on it as a source; Square can, and breaks it.
    expect(Object.keys(onnx.attacks).some((id) => id.startsWith('pgd:'))).toBe(false);
    const square = Object.entries(onnx.attacks).find(([id]) => id.startsWith('square:'))![1];
    expect(square.robust_acc!).toBeLessThan(onnx.clean.acc!);
    // The ONNX model is the zoo MLP re-exported: PGD from the MLP transfers to it exactly.
    const pgd = Object.keys(final.transfer).find((id) => id.startsWith('pgd:'))!;
    const cells = final.transfer[pgd]!['zoo:mlp-relu']!;
    expect(cells[onnxFile]!.err).toBeCloseTo(cells['zoo:mlp-relu']!.err, 6);
    expect(final.transfer[pgd]![onnxFile]).toBeUndefined();
  }, 300_000);

  it('refuses an ONNX model on the tfjs engine, and one whose input does not fit the data', async () => {
    await expect(run('tfjs', [onnxFile], ATTACKS, 8)).rejects.toMatchObject({ code: 'BAD_MODEL' });
    const cifar = await writeTorchLikeMlp(dir, 'cifar', { dims: [3, 32, 32], sidecar: { layout: 'nchw' } });
    await expect(run('auto', [cifar], ['square:eps=0.1,queries=10'], 8)).rejects.toMatchObject({
      code: 'BAD_ARGUMENT',
      message: expect.stringMatching(/mnist:test holds 28x28x1 images but the models take 32x32x3/),
    });
  }, 120_000);

  it('maps each pixel block to its pair when a pair is skipped (samples and grids)', async () => {
    const attacks = ['pgd:eps=0.1,steps=3', 'square:eps=0.3,queries=10'];
    const events = await lastValueFrom(
      evaluate({ uri: 'mnist:test', limit: 8 }, { models: ['zoo:mlp-relu', onnxFile], attacks, workers: 1, batch: 8, seed: 5, samplePixels: 4, statsEvery: { seconds: 3600 } }).pipe(
        toArray(),
      ),
    );
    const batch = events.find((e): e is BatchEvent => e.type === 'batch')!;
    const px = batch.pixels!;
    // PGD cannot run on the black-box model: three pairs ran, and three blocks came back.
    expect(px.adversarial.length).toBe(3 * px.count * 784);
    for (let i = 0; i < px.count; i++) {
      const image = imagePixels(px, i)!;
      const line = sampleLine(batch.ids[i]!, batch.samples[i]!, image);
      expect(line.adversarials.map((a) => [a.attack.split(':')[0], a.source === onnxFile ? 'onnx' : a.source])).toEqual([
        ['pgd', 'zoo:mlp-relu'],
        ['square', 'zoo:mlp-relu'],
        ['square', 'onnx'],
      ]);
      line.adversarials.forEach((entry, q) => {
        const adv = image.adversarials[q]!;
        const linf = adv.reduce((m, v, j) => Math.max(m, Math.abs(v - image.clean[j]!)), 0);
        expect(linf).toBeCloseTo(entry.linf, 5);
      });
    }
  }, 120_000);

  it('counts the forward passes of the pairs that ran only', async () => {
    const mlp = await loadArtifact('zoo:mlp-relu');
    const onnx = await loadArtifact(onnxFile);
    const n = 8;
    const pixels = new Float32Array(n * 784);
    const labels = new Int32Array(n);
    let i = 0;
    for await (const r of openSource('mnist:test', { limit: n })) {
      pixels.set(r.pixels, i * 784);
      labels[i++] = r.label!;
    }
    const task: EvalTask = { index: 0, attempt: 0, seed: 3, ids: Array.from({ length: n }, (_, k) => `i${k}`), count: n, dim: 784, pixels, labels };
    const forwards = async (artifacts: typeof mlp[]) => {
      const attacks = ['fgsm:eps=0.1'];
      const pairs = runningPairs(attacks.map((a) => parseAttackSpec(a)), artifacts.map(isBlackBox));
      const rt = await EvalRuntime.create({ models: artifacts, attacks, pairs, backend: 'wasm', engine: 'auto' }, 'main');
      return (await rt.run(task)).forwardEvals;
    };
    // FGSM runs from the MLP only; adding the black-box model adds its clean pass and its scoring of that one adversarial.
    expect((await forwards([mlp, onnx])) - (await forwards([mlp]))).toBe(2 * n);
  }, 120_000);

  it('leaks no tensors over many native batches', async () => {
    const artifacts = [await loadArtifact('zoo:mlp-relu'), await loadArtifact('zoo:dam-n20'), await loadArtifact(onnxFile)];
    const attacks = ['fgsm:eps=0.1', 'pgd:eps=0.3,steps=3', 'apgd-ce:eps=0.3,steps=3', 'square:eps=0.3,queries=10'];
    const pairs = runningPairs(attacks.map((a) => parseAttackSpec(a)), artifacts.map(isBlackBox));
    const rt = await EvalRuntime.create({ models: artifacts, attacks, pairs, backend: 'wasm', engine: 'onnx' }, 'main');
    const pixels = new Float32Array(16 * 784);
    const labels = new Int32Array(16);
    let i = 0;
    for await (const r of openSource('mnist:test', { limit: 16 })) {
      pixels.set(r.pixels, i * 784);
      labels[i++] = r.label!;
    }
    const task = (index: number): EvalTask => ({ index, attempt: 0, seed: index, ids: Array.from({ length: 16 }, (_, k) => `i${k}`), count: 16, dim: 784, pixels, labels });
    const first = await rt.run(task(0));
    let last = first;
    for (let b = 1; b < 30; b++) last = await rt.run(task(b));
    expect(last.tensors).toBe(first.tensors);
  }, 300_000);
});
