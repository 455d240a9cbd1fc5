/**
 * The evaluation task: what one batch costs a thread. It scores the clean batch on every model,
 * runs every attack against every model (the source), and scores every adversarial batch on every
 * model, so that robustness and the transfer matrix come from one pass. Plain data in, plain typed
 * arrays out; no I/O.
 *
 * The same {@link EvalRuntime} runs inside a piscina worker (`eval-worker.ts`) and in the main
 * thread, where tfjs-node must run (it cannot load in worker threads, tfjs#2079).
 */
import { performance } from 'node:perf_hooks';
import { initBackend, tf, type BackendInfo } from '../src/backend/index.js';
import { deriveSeed, parseAttackSpec, type Attack } from '../src/attacks/index.js';
import { Errors } from '../src/errors.js';
import type { ModelArtifact } from '../src/models/artifact.js';
import { inputSize } from '../src/models/classifier.js';
import { stoppable, type ModelRunner } from '../src/models/runner.js';
import { buildRunner, type EngineChoice } from '../src/engine/build.js';
import { describeFailure, describeRuntime, sum, type RuntimeReady, type TaskFailure, type TaskResultHeader, type TaskRuntime } from './protocol.js';

/** One (attack, source model) pair, by index into the setup's attacks and models. */
export interface EvalPair {
  attack: number;
  source: number;
}

/** What a thread needs to evaluate: model bytes, attack specs, the pairs to run, the backend to start. */
export interface EvalSetup {
  models: ModelArtifact[];
  /** Canonical attack specs, in evaluation order. */
  attacks: string[];
  /**
   * The pairs to run, decided once by the pipeline from the models' capabilities, in the order of
   * the result's slots; every model is still scored on every pair's adversarials.
   */
  pairs: EvalPair[];
  /** A forced backend; the default is the first that starts (never tfjs-node in a worker). */
  backend?: string;
  /** Which engine computes the models (see `src/engine/build.ts`); default `auto`. */
  engine?: EngineChoice;
}

/** One batch. `pixels` is `count × dim`, row-major; the seed fixes every attack's randomness. */
export interface EvalTask {
  /** The batch's sequence number in this run. */
  index: number;
  /** 0 for the first try; the pipeline retries a batch whose worker died. */
  attempt: number;
  /** The batch seed ({@link batchSeed}). */
  seed: number;
  ids: string[];
  count: number;
  dim: number;
  pixels: Float32Array;
  labels: Int32Array;
  /**
   * Return the adversarial pixels of the batch's first `pixelCount` images (default 0): the image
   * grids of a report need a few, and only a few cross back, to keep memory bounded.
   */
  pixelCount?: number;
}

/**
 * A finished batch. With M models and the Q pairs of `EvalSetup.pairs`, pair q in their order,
 * arrays are flat: `clean[m·count + i]`, `success[q·count + i]` (likewise `linf`, `l2`,
 * `l1`, `l0`, `confidence`, `minEps`), `preds[(q·M + t)·count + i]` (model t's prediction on the adversarial of
 * pair q), `adversarial[(q·pixelCount + i)·dim + j]` (value j of the adversarial of image
 * i < pixelCount under pair q).
 */
export interface EvalTaskResult extends TaskResultHeader {
  /** Input-gradient evaluations spent by the attacks. */
  gradEvals: number;
  /** Forward-only passes: the attacks' plus the clean and adversarial scoring passes. */
  forwardEvals: number;
  clean: Int32Array;
  success: Uint8Array;
  linf: Float32Array;
  l2: Float32Array;
  l1: Float32Array;
  l0: Float32Array;
  /** The source model's softmax probability of its predicted class on the adversarial. */
  confidence: Float32Array;
  /** The minimal ε of minimal-ε attacks; NaN for attacks that report none. */
  minEps: Float32Array;
  preds: Int32Array;
  /** Images of the batch, from its first, whose adversarial pixels are in `adversarial`. */
  pixelCount: number;
  /** `P × pixelCount × dim` adversarial pixels; empty when the task asked for none. */
  adversarial: Float32Array;
  /** Live tfjs tensors in this thread after the task: constant across tasks unless something leaks. */
  tensors: number;
}

/** A task that threw, as plain data (see {@link TaskFailure}). */
export type EvalTaskFailure = TaskFailure;

/** What a runtime says about itself once started. */
export type EvalReady = RuntimeReady;

/** The transferable buffers of a result, for `Piscina.move`. */
export function resultBuffers(r: EvalTaskResult): ArrayBuffer[] {
  return [r.clean, r.success, r.linf, r.l2, r.l1, r.l0, r.confidence, r.minEps, r.preds, r.adversarial].map((a) => a.buffer as ArrayBuffer);
}

export { describeFailure };

/**
 * One thread's evaluation state: the backend, started once; a model cache keyed by model id, each
 * built from its artifact bytes on first use; the parsed attacks.
 */
export class EvalRuntime implements TaskRuntime<EvalTask, EvalTaskResult, EvalReady> {
  private readonly cache = new Map<string, Promise<ModelRunner>>();
  private readonly attacks: Attack[];

  private constructor(
    private readonly setup: EvalSetup,
    private readonly info: BackendInfo,
    readonly workerId: string,
  ) {
    this.attacks = setup.attacks.map((spec) => parseAttackSpec(spec));
  }

  /** Starts the backend (once per thread: tfjs is a per-thread global) and parses the attacks. */
  static async create(setup: EvalSetup, workerId: string): Promise<EvalRuntime> {
    const info = await initBackend(setup.backend === undefined ? {} : { backend: setup.backend });
    return new EvalRuntime(setup, info, workerId);
  }

  private model(artifact: ModelArtifact): Promise<ModelRunner> {
    let built = this.cache.get(artifact.id);
    if (!built) {
      built = buildRunner(artifact, this.setup.engine ?? 'auto');
      this.cache.set(artifact.id, built);
    }
    return built;
  }

  private models(): Promise<ModelRunner[]> {
    return Promise.all(this.setup.models.map((a) => this.model(a)));
  }

  async ready(): Promise<EvalReady> {
    return describeRuntime(this.workerId, this.info, await this.models());
  }

  /** Evaluates one batch; see {@link EvalTaskResult} for the layout. Aborting `signal` stops it at its next model call. */
  async run(task: EvalTask, signal: AbortSignal = new AbortController().signal): Promise<EvalTaskResult> {
    signal.throwIfAborted();
    const startMs = performance.timeOrigin + performance.now();
    const models = (await this.models()).map((m) => stoppable(m, signal));
    const { count: n, dim } = task;
    for (const m of models) {
      if (inputSize(m) !== dim) {
        throw Errors.badModel(m.id, `takes ${m.inputShape.join('×')} images (${inputSize(m)} values), but the data has ${dim} values per image`);
      }
    }
    const kept = task.pixelCount ?? 0;
    if (!(Number.isSafeInteger(kept) && kept >= 0 && kept <= n)) throw Errors.badArgument(`pixelCount must be an integer in [0, ${n}], got ${kept}`);
    const M = models.length;
    const pairs = this.setup.pairs;
    const Q = pairs.length;
    const clean = new Int32Array(M * n);
    const success = new Uint8Array(Q * n);
    const linf = new Float32Array(Q * n);
    const l2 = new Float32Array(Q * n);
    const l1 = new Float32Array(Q * n);
    const l0 = new Float32Array(Q * n);
    const confidence = new Float32Array(Q * n);
    const minEps = new Float32Array(Q * n).fill(Number.NaN);
    const preds = new Int32Array(Q * M * n);
    const adversarial = new Float32Array(Q * kept * dim);
    let gradEvals = 0;
    // The clean pass, and one scoring pass of every model per pair that ran.
    let forwardEvals = n * M * (1 + Q);
    const x = tf.tensor2d(task.pixels, [n, dim]);
    const labels = tf.tensor1d(task.labels, 'int32');
    try {
      for (let m = 0; m < M; m++) {
        const scores = await models[m]!.scores(x);
        const pred = tf.tidy(() => tf.argMax(scores, 1));
        scores.dispose();
        clean.set(await pred.data(), m * n);
        pred.dispose();
      }
      for (let q = 0; q < Q; q++) {
        const { attack: a, source: s } = pairs[q]!;
        const attack = this.attacks[a]!;
        const source = models[s]!;
        const res = await attack.run(source, x, labels, { seed: pairSeed(task.seed, attack.id, source.id) });
        gradEvals += sum(res.gradients);
        forwardEvals += sum(res.forwards);
        success.set(res.success, q * n);
        linf.set(res.linf, q * n);
        l2.set(res.l2, q * n);
        l1.set(res.l1, q * n);
        l0.set(res.l0, q * n);
        if (res.minEpsilon) minEps.set(res.minEpsilon, q * n);
        // Copied out: the result's buffers are transferred, and an attack's array may alias a tensor's storage.
        if (kept > 0) adversarial.set(res.adversarial.subarray(0, kept * dim), q * kept * dim);
        const adv = tf.tensor2d(res.adversarial, [n, dim]);
        try {
          for (let t = 0; t < M; t++) {
            const scores = await models[t]!.scores(adv);
            const scored = tf.tidy(() => ({ pred: tf.argMax(scores, 1), conf: t === s ? tf.max(tf.softmax(scores), 1) : undefined }));
            scores.dispose();
            preds.set(await scored.pred.data(), (q * M + t) * n);
            if (scored.conf) confidence.set(await scored.conf.data(), q * n);
            tf.dispose([scored.pred, ...(scored.conf ? [scored.conf] : [])]);
          }
        } finally {
          adv.dispose();
        }
      }
    } finally {
      tf.dispose([x, labels]);
    }
    // float32 softmax can round a near-certain class to a hair above 1.
    for (let i = 0; i < confidence.length; i++) confidence[i] = Math.min(1, Math.max(0, confidence[i]!));
    const endMs = performance.timeOrigin + performance.now();
    return {
      ok: true,
      index: task.index,
      count: n,
      workerId: this.workerId,
      startMs,
      endMs,
      gradEvals,
      forwardEvals,
      clean,
      success,
      linf,
      l2,
      l1,
      l0,
      confidence,
      minEps,
      preds,
      pixelCount: kept,
      adversarial,
      tensors: tf.memory().numTensors,
    };
  }

  /** {@link run}, with a thrown error returned as plain data. */
  async runSafely(task: EvalTask): Promise<EvalTaskResult | EvalTaskFailure> {
    try {
      return await this.run(task);
    } catch (e) {
      return describeFailure(e);
    }
  }

  /** Disposes every model built (their tensors and ONNX Runtime sessions); the runtime is done. */
  close(): void {
    const built = [...this.cache.values()];
    this.cache.clear();
    for (const m of built) void m.then((runner) => runner.dispose(), () => {});
  }
}

/** FNV-1a over the UTF-16 code units: a stable 32-bit name for an attack or model id. */
export function hashId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The seed of a batch: from the run's seed and the source position of the batch's first record, so
 * that it does not depend on which worker runs the batch, nor on when.
 */
export function batchSeed(seed: number, first: number): number {
  return deriveSeed(seed, first);
}

/**
 * The seed of one (attack, source model) run on a batch: it depends on the batch seed and on the two
 * ids only, so a result is the same whichever worker computes it and whatever else is evaluated.
 */
export function pairSeed(batchSeedValue: number, attackId: string, modelId: string): number {
  return deriveSeed(batchSeedValue, hashId(attackId), hashId(modelId));
}
