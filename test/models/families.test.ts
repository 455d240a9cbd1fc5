import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lastValueFrom, Observable, takeWhile, tap } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { LOSS_NAMES, type Classifier } from '../../src/models/classifier.js';
import { loadClassifier, saveArtifact } from '../../src/models/artifact.js';
import { getFamily } from '../../src/models/registry.js';
import { accuracy, train, type TrainEvent } from '../../pipelines/train.js';
import { mnist, TINY } from './helpers.js';

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = await mkdtemp(path.join(tmpdir(), 'advstream-models-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * A freshly initialised model. Zero biases put every all-background conv patch exactly on a ReLU
 * kink, where no finite difference agrees with any subgradient, so biases get small random values.
 */
function build(family: string, options: Record<string, unknown>, seed = 3): { model: Classifier; config: Record<string, unknown> } {
  const f = getFamily(family);
  const config = f.configure(options);
  const weights = f.init(config, seed);
  for (const [name, t] of Object.entries(weights)) {
    if (name.endsWith('/b')) {
      weights[name] = tf.randomNormal(t.shape, 0, 0.1, 'float32', seed);
      t.dispose();
    }
  }
  return { model: f.build(`test:${family}`, config, weights), config };
}

async function batch(n: number): Promise<{ x: Tensor2D; y: Tensor1D }> {
  const data = await mnist('test', n);
  return { x: tf.tensor2d(data.x, [n, 784]), y: tf.tensor1d(data.y, 'int32') };
}

describe.each(TINY)('$label', ({ family, options, gradOptions, batch: batchSize, minAcc }) => {
  it('input gradients match finite differences for every loss', async () => {
    const { model } = build(family, { ...options, ...gradOptions });
    const clean = await batch(4);
    const y = clean.y;
    // MNIST's flat backgrounds tie max-pool windows, where the function has no gradient; a little
    // noise moves the check to points where it has one.
    const x = tf.tidy(() => tf.clipByValue(tf.add(clean.x, tf.randomUniform(clean.x.shape, 0, 0.02, 'float32', 4)), 0, 1)) as Tensor2D;
    clean.x.dispose();
    for (const loss of LOSS_NAMES) {
      const f = (input: Tensor2D) => tf.sum(model.loss(loss, input, y));
      const grad = tf.grad((input) => f(input as Tensor2D))(x);
      // A flat model passes any finite-difference check: make sure there is a gradient to check.
      expect(tf.norm(grad).dataSync()[0], `${loss} gradient norm`).toBeGreaterThan(1e-3);
      // Directional derivatives by central differences over a ladder of steps. Too large a step
      // leaves the linear regime (or crosses a ReLU/max kink), too small a one drowns in float32
      // cancellation; where two neighbouring steps agree, the estimate has converged and the
      // analytic value must match it. Directions lean toward the analytic gradient so that the
      // change measured stands well above float32 noise.
      const steps = [1, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4];
      const misses: string[] = [];
      for (let k = 0; k < 4; k++) {
        const d = tf.tidy(() => {
          const r = tf.randomNormal(x.shape, 0, 1, 'float32', 10 + k);
          const mixed = tf.add(tf.div(grad, tf.norm(grad)), tf.mul(0.7, tf.div(r, tf.norm(r))));
          return tf.div(mixed, tf.norm(mixed));
        });
        const analytic = tf.tidy(() => tf.sum(tf.mul(grad, d)).dataSync()[0]!);
        const numeric = steps.map((h) =>
          tf.tidy(() => (f(tf.add(x, tf.mul(h, d)) as Tensor2D).dataSync()[0]! - f(tf.sub(x, tf.mul(h, d)) as Tensor2D).dataSync()[0]!) / (2 * h)),
        );
        const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);
        const converged = numeric.slice(1).some((v, i) => rel(v, numeric[i]!) < 0.03 && rel(analytic, (v + numeric[i]!) / 2) < 0.05);
        if (!converged) misses.push(`direction ${k}: analytic ${analytic}, numeric ${numeric.map((v) => v.toPrecision(4)).join(' ')}`);
        d.dispose();
      }
      expect(misses, `${loss} loss`).toEqual([]);
      grad.dispose();
    }
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it('save, load and predict give identical scores', async () => {
    const f = getFamily(family);
    const config = f.configure(options);
    const weights = f.init(config, 5);
    const out = path.join(dir, `${family}-${Object.values(options).join('-')}`);
    await saveArtifact(out, { family, config, weights });
    const built = f.build('a', config, weights);
    const loaded = await loadClassifier(out);
    const { x, y } = await batch(16);
    const [a, b] = [built.scores(x), loaded.scores(x)];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(loaded.family).toBe(built.family);
    tf.dispose([a, b, x, y]);
    built.dispose();
    loaded.dispose();
  });

  it('one epoch on 2,000 images lifts accuracy well above chance', async () => {
    const [trainData, testData] = await Promise.all([mnist('train', 2000), mnist('test', 1000)]);
    const out = path.join(dir, `train-${family}-${batchSize}-${Object.keys(options).join('-')}`);
    const events = train({
      family,
      options,
      out,
      name: 'tiny',
      train: trainData,
      test: testData,
      seed: 1,
      epochs: 1,
      batch: batchSize,
      command: 'test',
      commit: 'test',
      backend: 'wasm',
    });
    const done = await lastValueFrom(events);
    expect(done.type).toBe('done');
    if (done.type !== 'done') return;
    expect(done.manifest.accuracy.clean).toBeGreaterThan(minAcc);
    expect(done.manifest.samplePredictions).toHaveLength(32);
    const model = await loadClassifier(out);
    expect(accuracy(model, testData)).toBe(done.manifest.accuracy.clean);
    model.dispose();
  });

  it('leaks no tensors over 100 forward-and-gradient calls', async () => {
    const { model } = build(family, options);
    const { x, y } = await batch(8);
    const call = () =>
      tf.tidy(() => {
        model.scores(x);
        for (const loss of LOSS_NAMES) tf.grad((input) => tf.sum(model.loss(loss, input as Tensor2D, y)))(x);
      });
    call();
    const after1 = tf.memory().numTensors;
    for (let i = 0; i < 99; i++) call();
    expect(tf.memory().numTensors).toBe(after1);
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe('training', () => {
  it('is deterministic under a seed and resumes from its checkpoint to the same weights', async () => {
    const [trainData, testData] = await Promise.all([mnist('train', 600), mnist('test', 200)]);
    const base = { family: 'mlp', options: { hidden: [16] }, name: 'det', train: trainData, test: testData, seed: 7, batch: 50, command: 't', commit: 't', backend: 'wasm' };
    const full = await lastValueFrom(train({ ...base, out: path.join(dir, 'det-a'), epochs: 3 }));
    // Two epochs, then a rerun of the same command for three: it resumes after epoch 2.
    const partial = path.join(dir, 'det-b');
    await lastValueFrom(train({ ...base, out: partial, epochs: 3 }).pipe(stopAfterEpochs(2)), { defaultValue: undefined });
    const resumed: string[] = [];
    const rest = await lastValueFrom(
      train({ ...base, out: partial, epochs: 3 }).pipe(tapStart((e) => resumed.push(String(e)))),
    );
    expect(resumed).toEqual(['2']);
    expect(full.type === 'done' && rest.type === 'done').toBe(true);
    if (full.type !== 'done' || rest.type !== 'done') return;
    expect(rest.manifest.samplePredictions).toEqual(full.manifest.samplePredictions);
    expect(rest.manifest.accuracy.clean).toBe(full.manifest.accuracy.clean);
    const [a, b] = [await loadClassifier(path.join(dir, 'det-a')), await loadClassifier(partial)];
    const { x, y } = await batch(32);
    // Bit-exact except for Adam: tfjs restores its β^t accumulators as pow(β, t), not as the
    // running product, which moves the weights in the 7th digit.
    const [sa, sb] = [a.scores(x).dataSync(), b.scores(x).dataSync()];
    sa.forEach((v, i) => expect(sb[i]).toBeCloseTo(v, 4));
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
  });
});

/** Completes the run after `n` epochs, as an interrupted process would (the checkpoint stays). */
function stopAfterEpochs(n: number) {
  return (source: Observable<TrainEvent>) => source.pipe(takeWhile((e) => !(e.type === 'epoch' && e.epoch >= n), true));
}

function tapStart(f: (resumedFrom: number) => void) {
  return (source: Observable<TrainEvent>) => source.pipe(tap((e) => e.type === 'start' && f(e.resumedFrom)));
}
