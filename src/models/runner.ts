/**
 * How attacks and evaluations reach a model: asynchronously, so that one attack implementation runs
 * on every engine. tfjs computes synchronously; ONNX Runtime's `session.run` is asynchronous, and
 * `tf.tidy` cannot span an `await`. So every call here returns new tensors that the caller owns, and
 * callers keep their tfjs arithmetic in `tf.tidy` blocks between the awaits.
 */
import { tf, currentBackend, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { Classifier, EnergyClassifier, LossName, PrototypeClassifier } from './classifier.js';
import { crossEntropy } from './ops.js';

/**
 * A per-sample quantity to ascend: computed from the scores, or the family's own loss times `sign`.
 * A scores objective that is the attacks' cross-entropy says so in `ce`, so that an engine with a
 * fused cross-entropy program can compute it in one run; `fn` stays its definition.
 */
export type Objective =
  | {
      readonly kind: 'scores';
      readonly fn: (scores: Tensor2D) => Tensor1D;
      readonly ce?: { readonly labels: Tensor1D; readonly sign: 1 | -1 };
    }
  | { readonly kind: 'model'; readonly labels: Tensor1D; readonly sign: 1 | -1 };

/** A prototype model's geometry, as a runner offers it; each call returns tensors the caller owns. */
export interface EmbeddingCapability {
  embed(x: Tensor2D): Promise<Tensor2D>;
  prototypes(): Promise<Tensor2D>;
}

export interface Evaluation {
  /** `[B]` objective values. */
  value: Tensor1D;
  /** `[B, C]` scores. */
  scores: Tensor2D;
}
export interface GradEvaluation extends Evaluation {
  /** `[B, D]` gradient of the objective with respect to the input. */
  grad: Tensor2D;
}

/**
 * A model behind some engine. Every method returns new tensors owned by the caller and never keeps
 * the inputs; none may be called inside `tf.tidy` (they are asynchronous).
 */
export interface ModelRunner {
  readonly id: string;
  readonly family: string;
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  /** What computes the scores: `tfjs-wasm`, `onnx-cpu`, `onnx-cuda`, … */
  readonly engine: string;
  /** What computes input gradients: an engine name, or `none` for a black-box model. */
  readonly gradientEngine: string;
  /** The tfjs classifier behind the runner, where there is one (the adaptive ensemble differentiates through it). */
  readonly classifier: Classifier | undefined;
  /**
   * The model's energy `[B]` (see {@link EnergyClassifier.energy}), where it has one: a Dense
   * Associative Memory, natively or through its tfjs fallback. Detectors ask for it here.
   */
  readonly energy?: (x: Tensor2D) => Promise<Tensor1D>;
  /** The embedding `[B, d]` and the prototypes `[C, d]` of a prototype model (DRP), where it has them. */
  readonly embedding?: EmbeddingCapability;
  /** Class scores `[B, C]`. */
  scores(x: Tensor2D): Promise<Tensor2D>;
  /** The objective, the scores and the objective's input gradient, from one forward and backward pass where the engine can. */
  gradient(objective: Objective, x: Tensor2D): Promise<GradEvaluation>;
  /** Per-sample loss `[B]` (see {@link Classifier.loss}). */
  loss(name: LossName, x: Tensor2D, labels: Tensor1D): Promise<Tensor1D>;
  dispose(): void;
}

let stopFlag: Int32Array | undefined;

/**
 * Watches a flag the pool raises when it closes: every model call then fails at once instead of
 * running. A pool must never terminate a thread inside an ONNX Runtime run (onnxruntime-node aborts
 * the whole process when it does), so it raises the flag and waits for its tasks to settle, which
 * takes one model call at most.
 */
export function watchStopFlag(flag: Int32Array): void {
  stopFlag = flag;
}

/** Whether this thread's pool is closing. */
export function isStopping(): boolean {
  return stopFlag !== undefined && Atomics.load(stopFlag, 0) !== 0;
}

/** Throws when this thread's pool is closing (see {@link watchStopFlag}). */
export function throwIfStopping(): void {
  if (isStopping()) throw Errors.workerFailed('the pool is closing: the task stopped', { stopped: true });
}

/** What a wrapper of `runner` says it is: the same model, on the same engines. */
function identityOf(runner: ModelRunner): Pick<ModelRunner, 'id' | 'family' | 'inputShape' | 'numClasses' | 'engine' | 'gradientEngine' | 'classifier'> {
  const { id, family, inputShape, numClasses, engine, gradientEngine, classifier } = runner;
  return { id, family, inputShape, numClasses, engine, gradientEngine, classifier };
}

/** The longest a stoppable model computes before it lets the event loop run. */
const YIELD_EVERY_MS = 25;

/**
 * `runner`, with every call refused once `signal` aborts: how a runtime stops a running task at its
 * next model call (an attack calls its model many times per batch). tfjs computes synchronously
 * behind its promises, so an attack's chain of awaits would never let a timer, a signal handler or
 * an unsubscription run; the wrapper lets the event loop turn every {@link YIELD_EVERY_MS}.
 * Disposing the wrapper disposes nothing: the runtime that made it owns the model.
 *
 * @example
 *   const source = stoppable(model, signal); // pass `source` to attack.run; abort `signal` to stop it
 */
export function stoppable(runner: ModelRunner, signal: AbortSignal): ModelRunner {
  let turned = performance.now();
  const check = async () => {
    if (performance.now() - turned > YIELD_EVERY_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      turned = performance.now();
    }
    if (signal.aborted) throw Errors.workerFailed('the task was stopped', { stopped: true });
  };
  return {
    ...identityOf(runner),
    scores: async (x) => {
      await check();
      return runner.scores(x);
    },
    gradient: async (objective, x) => {
      await check();
      return runner.gradient(objective, x);
    },
    loss: async (name, x, labels) => {
      await check();
      return runner.loss(name, x, labels);
    },
    ...(runner.energy && { energy: runner.energy }),
    ...(runner.embedding && { embedding: runner.embedding }),
    dispose: () => {},
  };
}

/** The value and input gradient of an objective on a tfjs classifier (one forward for score objectives). */
export function tfjsGradient(model: Classifier, objective: Objective, x: Tensor2D): GradEvaluation {
  return tf.tidy(() => {
    if (objective.kind === 'model') {
      const { value, grad } = tf.valueAndGrad((xi: Tensor2D) => tf.mul(model.loss('model', xi, objective.labels), objective.sign) as Tensor1D)(x);
      return { value, grad, scores: model.scores(x) };
    }
    const classes = model.numClasses;
    // One forward: the objective and the scores side by side, with the upstream gradient on the
    // objective's column only.
    const dy = tf.concat([tf.ones([x.shape[0], 1]), tf.zeros([x.shape[0], classes])], 1) as Tensor2D;
    const { value, grad } = tf.valueAndGrad((xi: Tensor2D) => {
      const scores = model.scores(xi);
      return tf.concat([objective.fn(scores).reshape([-1, 1]), scores], 1) as Tensor2D;
    })(x, dy);
    const [column, scores] = tf.split(value, [1, classes], 1) as [Tensor2D, Tensor2D];
    return { value: column.reshape([-1]) as Tensor1D, grad, scores };
  });
}

/** The engine name of the active tfjs backend. */
export function tfjsEngine(): string {
  return `tfjs-${currentBackend()?.backend ?? tf.getBackend()}`;
}

/**
 * A tfjs classifier as a {@link ModelRunner}: its synchronous calls, each in its own `tf.tidy`.
 *
 * @example
 *   const runner = tfjsRunner(await loadClassifier('zoo:mlp-relu'));
 *   const scores = await runner.scores(x); // the caller disposes it
 */
export function tfjsRunner(model: Classifier): ModelRunner {
  const engine = tfjsEngine();
  const energy = hasEnergy(model) ? model : undefined;
  const embedding = hasEmbedding(model) ? model : undefined;
  return {
    id: model.id,
    family: model.family,
    inputShape: model.inputShape,
    numClasses: model.numClasses,
    engine,
    gradientEngine: engine,
    classifier: model,
    scores: async (x) => {
      throwIfStopping();
      return tf.tidy(() => model.scores(x));
    },
    gradient: async (objective, x) => {
      throwIfStopping();
      return tfjsGradient(model, objective, x);
    },
    loss: async (name, x, labels) => {
      throwIfStopping();
      return tf.tidy(() => model.loss(name, x, labels));
    },
    ...(energy && {
      energy: async (x: Tensor2D) => {
        throwIfStopping();
        return tf.tidy(() => energy.energy(x));
      },
    }),
    ...(embedding && {
      embedding: {
        embed: async (x: Tensor2D) => tf.tidy(() => embedding.embed(x)),
        prototypes: async () => embedding.prototypes(),
      },
    }),
    dispose: () => model.dispose(),
  };
}

/** Whether a classifier offers `energy(x)` (the dam family). */
export function hasEnergy(model: Classifier): model is EnergyClassifier {
  return typeof (model as Partial<EnergyClassifier>).energy === 'function';
}

/** Whether a classifier offers `embed(x)` and `prototypes()` (the drp family). */
export function hasEmbedding(model: Classifier): model is PrototypeClassifier {
  const m = model as Partial<PrototypeClassifier>;
  return typeof m.embed === 'function' && typeof m.prototypes === 'function';
}

/**
 * `runner` with the optional capabilities of `from` it lacks: a native runner gets the energy and
 * embedding of the tfjs runner behind it. Disposing it disposes `runner` only.
 */
export function withCapabilities(runner: ModelRunner, from: ModelRunner): ModelRunner {
  const energy = runner.energy ?? from.energy;
  const embedding = runner.embedding ?? from.embedding;
  return {
    ...identityOf(runner),
    scores: (x) => runner.scores(x),
    gradient: (objective, x) => runner.gradient(objective, x),
    loss: (name, x, labels) => runner.loss(name, x, labels),
    ...(energy && { energy }),
    ...(embedding && { embedding }),
    dispose: () => runner.dispose(),
  };
}

export function isRunner(m: Classifier | ModelRunner): m is ModelRunner {
  return 'gradient' in m && typeof m.gradient === 'function';
}

/** A runner as is; a tfjs classifier wrapped (disposing the wrapper disposes the classifier). */
export function asRunner(m: Classifier | ModelRunner): ModelRunner {
  return isRunner(m) ? m : tfjsRunner(m);
}

/** Cross-entropy from scores already computed, as the families' `loss('ce')` defines it. */
export function crossEntropyOfScores(scores: Tensor2D, labels: Tensor1D): Tensor1D {
  return tf.tidy(() => crossEntropy(scores, labels));
}
