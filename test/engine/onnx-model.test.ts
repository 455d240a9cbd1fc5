/** Users' ONNX models: the sidecar, the layout and range, fixed batches, white-box and black-box attacks, clear errors. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate, type FinalEvent, type StartEvent } from '../../pipelines/index.js';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { ceObjective } from '../../src/attacks/losses.js';
import { tfjsGradient } from '../../src/models/runner.js';
import { buildRunner } from '../../src/engine/build.js';
import { loadArtifact, loadClassifier } from '../../src/models/artifact.js';
import { mnist } from '../models/helpers.js';
import { MEAN, STD, writeTorchLikeMlp } from './onnx-fixture.js';

async function maxRelative(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const t = tf.tidy(() => tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.max(tf.abs(b))));
  const v = (await t.data())[0]!;
  t.dispose();
  return v;
}

describe('ONNX user models', () => {
  let dir: string;
  let x: Tensor2D;
  let labels: Tensor1D;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    dir = await mkdtemp(path.join(tmpdir(), 'advstream-onnx-'));
    const data = await mnist('test', 64);
    x = tf.tensor2d(data.x, [data.count, 784]);
    labels = tf.tensor1d(data.y, 'int32');
  });

  it('reads layout and normalisation from the sidecar and scores what the same network scores on tfjs', async () => {
    const file = await writeTorchLikeMlp(dir, 'mlp', { opaque: true });
    const artifact = await loadArtifact(file);
    expect(artifact.modelJson).toMatchObject({ format: 'onnx', input: 'input.1', output: 'logits', layout: 'nchw', shape: [28, 28, 1], batch: null, mean: [MEAN], std: [STD] });
    const runner = await buildRunner(artifact, 'auto');
    expect(runner.engine).toBe('onnx-cpu');
    expect(runner.gradientEngine).toBe('none');
    expect(runner.numClasses).toBe(10);
    const zoo = await loadClassifier('zoo:mlp-relu');
    const got = await runner.scores(x);
    const want = tf.tidy(() => zoo.scores(x));
    expect(await maxRelative(got, want)).toBeLessThan(1e-5);
    tf.dispose([got, want]);
    zoo.dispose();
    runner.dispose();
  });

  it('without the normalisation the same graph scores differently: the sidecar is applied, not ignored', async () => {
    const file = await writeTorchLikeMlp(dir, 'raw', { sidecar: false });
    const runner = await buildRunner(await loadArtifact(file), 'auto');
    const zoo = await loadClassifier('zoo:mlp-relu');
    const got = await runner.scores(x);
    const want = tf.tidy(() => zoo.scores(x));
    expect(await maxRelative(got, want)).toBeGreaterThan(0.1);
    tf.dispose([got, want]);
    zoo.dispose();
    runner.dispose();
  });

  it('runs a graph exported with a fixed batch size in chunks, padding the last', async () => {
    const file = await writeTorchLikeMlp(dir, 'fixed', { batch: 5 });
    const artifact = await loadArtifact(file);
    expect(artifact.modelJson).toMatchObject({ batch: 5 });
    const fixed = await buildRunner(artifact, 'onnx');
    const dynamic = await buildRunner(await loadArtifact(await writeTorchLikeMlp(dir, 'dyn')), 'onnx');
    const a = await fixed.scores(x);
    const b = await dynamic.scores(x);
    expect(a.shape).toEqual([64, 10]);
    expect(await maxRelative(a, b)).toBeLessThan(1e-6);
    tf.dispose([a, b]);
    fixed.dispose();
    dynamic.dispose();
  });

  it('is attacked black-box by Square, and gradient attacks refuse it up front', async () => {
    const runner = await buildRunner(await loadArtifact(await writeTorchLikeMlp(dir, 'attacked', { opaque: true })), 'auto');
    const before = tf.memory().numTensors;
    const square = parseAttackSpec('square:eps=0.3,queries=200');
    const res = await square.run(runner, x, labels, { seed: 3 });
    expect(Math.max(...res.linf)).toBeLessThanOrEqual(0.3 + 1e-6);
    expect(res.success.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    await expect(parseAttackSpec('pgd:eps=0.3,steps=5').run(runner, x, labels, { seed: 3 })).rejects.toMatchObject({ code: 'ATTACK_UNSUPPORTED' });
    runner.dispose();
  });

  it('is white-box when every op on its path has a gradient rule: the same gradients as the zoo MLP it re-exports, fixed batch or not', async () => {
    const zoo = await loadClassifier('zoo:mlp-relu');
    const objective = ceObjective(labels);
    const want = tfjsGradient(zoo, objective, x);
    for (const o of [{}, { batch: 5 }]) {
      const artifact = await loadArtifact(await writeTorchLikeMlp(dir, `white-${o.batch ?? 'any'}`, o));
      expect(artifact.modelJson).toMatchObject({ blackBox: null });
      const runner = await buildRunner(artifact, 'onnx');
      expect(runner.gradientEngine).toBe('onnx-cpu');
      const got = await runner.gradient(objective, x);
      expect(await maxRelative(got.grad, want.grad)).toBeLessThan(1e-4);
      expect(await maxRelative(got.value, want.value)).toBeLessThan(1e-5);
      tf.dispose([got.grad, got.value, got.scores]);
      runner.dispose();
    }
    tf.dispose([want.grad, want.value, want.scores]);
    zoo.dispose();
  });

  it('an op without a gradient rule is found at load, named in the spec, and named again when a gradient attack asks', async () => {
    const artifact = await loadArtifact(await writeTorchLikeMlp(dir, 'opaque', { opaque: true }));
    const reason = (artifact.modelJson as { blackBox: string | null }).blackBox;
    expect(reason).toMatch(/no gradient rule for Max \(node 'n_Max_\d+'\)/);
    const runner = await buildRunner(artifact, 'onnx');
    await expect(runner.gradient(ceObjective(labels), x)).rejects.toMatchObject({ code: 'ATTACK_UNSUPPORTED', message: expect.stringContaining('no gradient rule for Max') });
    runner.dispose();
  });

  it("evaluate's start record says why a model runs black-box; its gradient-attack pairs are skipped", async () => {
    const file = await writeTorchLikeMlp(dir, 'opaque-eval', { opaque: true });
    const events = await lastValueFrom(
      evaluate({ uri: 'mnist:test', limit: 16 }, { models: [file], attacks: ['fgsm:eps=0.1', 'square:eps=0.3,queries=20'], workers: 1, batch: 16, seed: 1, statsEvery: { seconds: 3600 } }).pipe(toArray()),
    );
    const start = events[0] as StartEvent;
    expect(start.models[0]).toMatchObject({ gradient_engine: 'none', black_box: expect.stringMatching(/no gradient rule for Max \(node /) });
    const attacks = Object.keys((events.at(-1) as FinalEvent).models[file]!.attacks);
    expect(attacks.some((a) => a.startsWith('fgsm:'))).toBe(false);
    expect(attacks.some((a) => a.startsWith('square:'))).toBe(true);
  }, 120_000);

  it('cannot run on the tfjs engine', async () => {
    const artifact = await loadArtifact(await writeTorchLikeMlp(dir, 'tfjs'));
    await expect(buildRunner(artifact, 'tfjs')).rejects.toMatchObject({ code: 'BAD_MODEL' });
  });

  it('says clearly what is wrong with a model or its sidecar', async () => {
    const bad = async (name: string, o: Parameters<typeof writeTorchLikeMlp>[2], pattern: RegExp) => {
      const file = await writeTorchLikeMlp(dir, name, o);
      await expect(loadArtifact(file)).rejects.toMatchObject({ code: 'BAD_MODEL', message: expect.stringMatching(pattern) });
    };
    await bad('layout', { sidecar: { layout: 'chwn' } }, /layout/);
    await bad('mean', { sidecar: { layout: 'nchw', mean: [0.1, 0.2], std: [0.3, 0.3] } }, /2 values for 1 channels/);
    await bad('half', { sidecar: { layout: 'nchw', mean: [0.1] } }, /mean without std/);
    await bad('rank', { sidecar: { layout: 'flat' } }, /rank-2/);
    await bad('unknown', { sidecar: { layout: 'nchw', colour: 'rgb' } }, /colour|Unrecognized/);
    const junk = path.join(dir, 'junk.onnx');
    await writeFile(junk, 'not a model');
    await expect(loadArtifact(junk)).rejects.toMatchObject({ code: 'BAD_MODEL' });
    await expect(loadArtifact(path.join(dir, 'missing.onnx'))).rejects.toMatchObject({ code: 'BAD_MODEL' });
  });
});
