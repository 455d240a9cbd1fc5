/**
 * The training dataflow: an Observable of progress events for one model of the zoo. Deterministic
 * under a seed on one backend (seeded init, per-epoch shuffles and per-step dropout seeds), and
 * resumable: after every epoch the weights, optimiser state and progress go to `<out>/checkpoint/`,
 * and a rerun of the same command continues from there.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Observable } from 'rxjs';
import { tf, type NamedTensorMap, type Tensor1D, type Tensor2D } from '../src/backend/index.js';
import type { Classifier } from '../src/models/classifier.js';
import { loadClassifier, saveArtifact, type ModelManifest } from '../src/models/artifact.js';
import type { FamilyConfig } from '../src/models/family.js';
import { getFamily } from '../src/models/registry.js';

/** Dense in-memory data: `x` is `[count, dim]` pixels in [0,1], `y` integer labels. */
export interface DenseData {
  x: Float32Array;
  y: Int32Array;
  count: number;
  dim: number;
}

export interface TrainOptions {
  family: string;
  /** Family options as parsed from the command line (see each family's `options`). */
  options: Record<string, unknown>;
  out: string;
  name: string;
  train: DenseData;
  test: DenseData;
  seed: number;
  epochs?: number;
  batch?: number;
  /** Provenance for the manifest. */
  command: string;
  commit: string;
  backend: string;
  /** Clean-accuracy target for the manifest, in [0,1]. */
  target?: number;
}

export type TrainEvent =
  | { type: 'start'; name: string; family: string; epochs: number; batch: number; resumedFrom: number; config: FamilyConfig }
  | { type: 'batch'; epoch: number; batch: number; batches: number; loss: number }
  | {
      type: 'epoch';
      epoch: number;
      epochs: number;
      loss: number;
      trainAcc: number;
      testAcc: number;
      seconds: number;
      etaSeconds: number;
    }
  | { type: 'done'; manifest: ModelManifest; dir: string };

/** mulberry32: a tiny seeded PRNG, so that shuffles are reproducible and resumable. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function permutation(n: number, seed: number): Uint32Array {
  const rand = seededRandom(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

function gather(data: DenseData, order: Uint32Array, from: number, to: number): { x: Tensor2D; y: Tensor1D } {
  const n = to - from;
  const x = new Float32Array(n * data.dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const src = order[from + i]!;
    x.set(data.x.subarray(src * data.dim, (src + 1) * data.dim), i * data.dim);
    y[i] = data.y[src]!;
  }
  return { x: tf.tensor2d(x, [n, data.dim]), y: tf.tensor1d(y, 'int32') };
}

/** Accuracy of `model` on the first `limit` records of `data`, in batches. */
export function accuracy(model: Classifier, data: DenseData, limit = data.count, batch = 500): number {
  let correct = 0;
  const n = Math.min(limit, data.count);
  for (let from = 0; from < n; from += batch) {
    const to = Math.min(n, from + batch);
    correct += tf.tidy(() => {
      const x = tf.tensor2d(data.x.subarray(from * data.dim, to * data.dim), [to - from, data.dim]);
      const pred = tf.argMax(model.scores(x), 1);
      const y = tf.tensor1d(data.y.subarray(from, to), 'int32');
      return tf.sum(tf.cast(tf.equal(pred, y), 'int32')).dataSync()[0]!;
    });
  }
  return n ? correct / n : 0;
}

/** How many test images' predictions a manifest records, so a load can be checked against training. */
export const SAMPLE_PREDICTIONS = 32;

/** Predicted classes of the first `n` records. */
export function predict(model: Classifier, data: DenseData, n: number): number[] {
  const count = Math.min(n, data.count);
  return tf.tidy(() => Array.from(tf.argMax(model.scores(tf.tensor2d(data.x.subarray(0, count * data.dim), [count, data.dim])), 1).dataSync()));
}

interface CheckpointState {
  name: string;
  family: string;
  config: FamilyConfig;
  seed: number;
  epochs: number;
  batch: number;
  completedEpochs: number;
  elapsedSeconds: number;
}

async function writeTensors(file: string, tensors: NamedTensorMap): Promise<void> {
  const { data, specs } = await tf.io.encodeWeights(tensors);
  await writeFile(file, new Uint8Array(data));
  await writeFile(`${file}.json`, JSON.stringify(specs));
}

async function readTensors(file: string): Promise<NamedTensorMap> {
  const specs = JSON.parse(await readFile(`${file}.json`, 'utf8')) as tf.io.WeightsManifestEntry[];
  const bytes = await readFile(file);
  return tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), specs);
}

async function readCheckpoint(dir: string): Promise<CheckpointState | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8')) as CheckpointState;
  } catch {
    return undefined;
  }
}

function sameRun(a: CheckpointState, b: Omit<CheckpointState, 'completedEpochs' | 'elapsedSeconds'>): boolean {
  return a.family === b.family && a.seed === b.seed && a.batch === b.batch && JSON.stringify(a.config) === JSON.stringify(b.config);
}

/**
 * Trains one model and writes its artifact and manifest to `out`.
 *
 * @example
 *   train({ family: 'mlp', options: {}, out: 'runs/mlp', name: 'mlp', train, test, seed: 1,
 *           command: 'advstream train --family mlp', commit: 'abc', backend: 'wasm' })
 *     .subscribe((e) => console.log(e));
 */
export function train(o: TrainOptions): Observable<TrainEvent> {
  return new Observable<TrainEvent>((subscriber) => {
    let stopped = false;
    (async () => {
      const family = getFamily(o.family);
      const epochs = o.epochs ?? family.training.epochs;
      const batch = o.batch ?? family.training.batch;
      const ckptDir = path.join(o.out, 'checkpoint');
      const previous = await readCheckpoint(ckptDir);
      const config = family.configure(o.options);
      let weights: NamedTensorMap;
      let optState: NamedTensorMap | undefined;
      let startEpoch = 0;
      let elapsed = 0;
      const freshState = { name: o.name, family: o.family, seed: o.seed, batch, epochs };
      if (previous && sameRun(previous, { ...freshState, config })) {
        weights = await readTensors(path.join(ckptDir, 'weights.bin'));
        optState = await readTensors(path.join(ckptDir, 'optimizer.bin'));
        startEpoch = previous.completedEpochs;
        elapsed = previous.elapsedSeconds;
      } else {
        weights = family.init(config, o.seed);
      }
      const trainer = family.trainer(config, weights);
      if (optState && Object.keys(optState).length) await trainer.setOptimizerState(optState);
      subscriber.next({ type: 'start', name: o.name, family: o.family, epochs, batch, resumedFrom: startEpoch, config });
      const batches = Math.ceil(o.train.count / batch);
      const runStart = performance.now();
      for (let epoch = startEpoch; epoch < epochs && !stopped; epoch++) {
        const t0 = performance.now();
        trainer.epochStart(epoch);
        const order = permutation(o.train.count, o.seed * 1000 + epoch);
        let lossSum = 0;
        for (let b = 0; b < batches && !stopped; b++) {
          const { x, y } = gather(o.train, order, b * batch, Math.min(o.train.count, (b + 1) * batch));
          const { loss } = trainer.step(x, y, o.seed * 1_000_003 + epoch * batches + b);
          x.dispose();
          y.dispose();
          if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at epoch ${epoch + 1}, batch ${b + 1}`);
          lossSum += loss;
          subscriber.next({ type: 'batch', epoch: epoch + 1, batch: b + 1, batches, loss });
          // Yield to the event loop so that unsubscription and signals are seen mid-epoch.
          if (b % 20 === 19) await new Promise((r) => setImmediate(r));
        }
        if (stopped) break;
        const trainAcc = accuracy(trainer.model, o.train, 5000);
        const testAcc = accuracy(trainer.model, o.test);
        const seconds = (performance.now() - t0) / 1000;
        elapsed += seconds;
        await mkdir(ckptDir, { recursive: true });
        await writeTensors(path.join(ckptDir, 'weights.bin'), trainer.variables);
        await writeTensors(path.join(ckptDir, 'optimizer.bin'), await trainer.optimizerState());
        const state: CheckpointState = { ...freshState, config, completedEpochs: epoch + 1, elapsedSeconds: elapsed };
        await writeFile(path.join(ckptDir, 'state.json'), JSON.stringify(state, null, 2));
        subscriber.next({
          type: 'epoch',
          epoch: epoch + 1,
          epochs,
          loss: lossSum / batches,
          trainAcc,
          testAcc,
          seconds,
          etaSeconds: ((performance.now() - runStart) / 1000 / (epoch + 1 - startEpoch)) * (epochs - epoch - 1),
        });
      }
      if (stopped) {
        trainer.dispose();
        return;
      }
      const final: NamedTensorMap = { ...trainer.variables };
      const parameters = Object.values(final).reduce((a, t) => a + t.size, 0);
      const weightBytes = await saveArtifact(o.out, { family: o.family, config, weights: final });
      const notes = family.notes(config, final);
      trainer.dispose();
      // Measure what was saved: load the artifact back and score all test images.
      const model = await loadClassifier(o.out);
      const clean = accuracy(model, o.test);
      const predictions = predict(model, o.test, SAMPLE_PREDICTIONS);
      model.dispose();
      const manifest: ModelManifest = {
        name: o.name,
        family: o.family,
        summary: family.summary,
        config,
        inputEncoding: 'flat [B, 784] pixels in [0,1], row-major 28×28×1; families that work in another range convert inside',
        training: {
          command: o.command,
          seed: o.seed,
          epochs,
          batch,
          trainImages: o.train.count,
          wallTimeSeconds: Math.round(elapsed),
          backend: o.backend,
        },
        accuracy: { clean, testImages: o.test.count, source: 'mnist:test' },
        samplePredictions: predictions,
        parameters,
        weightBytes,
        commit: o.commit,
        notes,
        ...(o.target !== undefined
          ? { targets: { clean: o.target, met: clean >= o.target, ...(clean < o.target ? { comment: `missed by ${((o.target - clean) * 100).toFixed(2)} points` } : {}) } }
          : {}),
      };
      await writeFile(path.join(o.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      await rm(ckptDir, { recursive: true, force: true });
      subscriber.next({ type: 'done', manifest, dir: o.out });
      subscriber.complete();
    })().catch((e: unknown) => subscriber.error(e));
    return () => {
      stopped = true;
    };
  });
}
