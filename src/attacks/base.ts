/**
 * The two attack base classes (Foolbox 3's design): {@link FixedEpsilonAttack} searches inside an ε
 * ball, {@link MinimizationAttack} searches for the smallest perturbation. Each has one sealed public
 * method, `run`; subclasses implement only `search`. The base builds the criterion, projects the
 * search's answer onto the ε ball and the input bounds [0,1], judges success and returns plain data.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import { inputSize, type Classifier, type LossName } from '../models/classifier.js';
import { asRunner, type ModelRunner } from '../models/runner.js';
import { misclassification, targetedMisclassification, type Criterion } from './criteria.js';
import { L0, L1, L2, Linf, type Distance, type DistanceName } from './distances.js';
import { EvalCounter } from './losses.js';
import type { ResolvedParams } from './params.js';
import { Rng } from './rng.js';

export interface RunOptions {
  /** Seeds every random choice of the run: the same seed gives identical results on the same backend. */
  seed: number;
  /** Target labels, int32 `[B]`: the run is then targeted (success means predicting the target). */
  targets?: Tensor1D;
}

export interface FixedEpsilonRunOptions extends RunOptions {
  /**
   * Per-sample ε `[B]` in place of the spec's ε (the minimal-ε search uses it). Step sizes scale with
   * it: an attack keeps its step-to-ε ratio.
   */
  epsilons?: Float32Array;
}

/** Which stage of a cascade broke each sample. */
export interface CascadeInfo {
  /** `clean` first, then each stage's attack id. */
  stages: string[];
  /** Index into `stages` of the first stage that broke the sample; -1 for still robust. */
  brokenBy: Int8Array;
}

/**
 * What every attack returns, per sample, as plain data that can cross a worker thread. Arrays of
 * length `count`, except `adversarial` (`count × dim`, row-major).
 */
export interface AttackResult {
  /** The attack's canonical spec. */
  id: string;
  count: number;
  dim: number;
  /** The returned points, inside the ε ball and [0,1] (FGSM with clip=false: the ε ball only). */
  adversarial: Float32Array;
  /** 1 where the criterion holds at the returned point. Samples that already met it are returned unchanged. */
  success: Uint8Array;
  /** The model's prediction at the returned point. */
  predicted: Int32Array;
  /** Norms of the perturbation: L2, L∞, L1 and L0 (the number of input values changed). */
  l2: Float32Array;
  linf: Float32Array;
  l1: Float32Array;
  l0: Float32Array;
  /** The targets of a targeted run (given in the options or chosen by the attack, `pgd:target=…`). */
  targets?: Int32Array;
  /**
   * The attack's `loss` (`ce` for attacks without one) at the returned point, of the true labels, or
   * of the targets in a targeted run.
   */
  loss: Float32Array;
  /**
   * Input-gradient evaluations (one forward and one backward pass each) computed on each sample's
   * row, per sample. Attacks that keep a batch together until all of it is done (PGD, APGD within a
   * run) charge every row of the batch for every step; attacks that drop finished rows (restarts,
   * Square, DeepFool, the DAM boundary attack, cascade stages) stop charging them. Samples already
   * meeting the criterion at the start cost nothing.
   */
  gradients: Uint32Array;
  /**
   * Forward-only passes (score queries) per sample, counted the same way. The model's own loss needs
   * a forward pass for the scores beside each gradient; the base's own passes (the clean verdict and
   * the final verdict) are not counted.
   */
  forwards: Uint32Array;
  /** Minimal-ε attacks: the smallest ε found per sample; 0 if misclassified clean, Infinity if never. */
  minEpsilon?: Float32Array;
  /** Cascades (`autoattack`): which stage broke each sample. */
  cascade?: CascadeInfo;
}

/** What a search hands back to its base: the candidate points, which the base then projects. */
export interface SearchOutput {
  adversarial: Tensor2D;
  minEpsilon?: Float32Array;
  cascade?: CascadeInfo;
}

/** Everything a search sees. The tensors belong to the base: a search never disposes them. */
export interface SearchContext {
  /** The model, on whatever engine computes it: every call is asynchronous (see `models/runner.ts`). */
  model: ModelRunner;
  /** Clean inputs `[B, D]` in [0,1]. */
  x: Tensor2D;
  /** True labels, int32 `[B]`. */
  labels: Tensor1D;
  /** Target labels of a targeted run. */
  targets?: Tensor1D;
  criterion: Criterion;
  /** 1 where the criterion already holds at `x`: the base returns `x` for these, so searches may skip them. */
  done: Uint8Array;
  rng: Rng;
  seed: number;
  counter: EvalCounter;
}

export interface FixedEpsilonContext extends SearchContext {
  /** Per-sample ε, `[B, 1]`. */
  eps: Tensor2D;
  epsilons: Float32Array;
}

/** The base's view of an attack: what it needs to finish a run. */
interface Finisher {
  readonly id: string;
  readonly distance: Distance;
  readonly lossName: LossName;
  readonly bounded: boolean;
  readonly gradientFree: boolean;
  chooseTargets(model: ModelRunner, x: Tensor2D, labels: Tensor1D, seed: number): Promise<Tensor1D | undefined>;
}

/** A result's perturbation sizes in one distance. */
export function normsOf(result: AttackResult, name: DistanceName): Float32Array {
  return { l0: result.l0, l1: result.l1, l2: result.l2, linf: result.linf }[name];
}

export type AttackKind = 'fixed-epsilon' | 'minimization';

/** Any attack: its id, name and distance, and the one public method each base defines. */
export abstract class Attack {
  abstract readonly kind: AttackKind;
  /** The canonical spec: every parameter, sorted, defaults filled. */
  abstract readonly id: string;
  /** The registry name (`pgd`, `apgd-ce`, ...). */
  abstract readonly name: string;
  /** Every parameter, resolved: the values behind {@link id}. */
  abstract readonly params: ResolvedParams;
  /** The norm of the ε ball, or the norm a minimization attack minimises. */
  abstract readonly distance: Distance;
  /** The loss reported in {@link AttackResult.loss}. */
  readonly lossName: LossName = 'ce';
  /** Whether returned points are clipped to [0,1]; only FGSM's paper mode turns it off. */
  readonly bounded: boolean = true;
  /** Whether the attack needs scores only (black-box): it then runs on models without input gradients. */
  get gradientFree(): boolean {
    return false;
  }

  /**
   * Targets the attack picks itself when the caller gives none (targeted PGD's `target=`): the run
   * is then targeted. None by default: the run is untargeted.
   */
  chooseTargets(_model: ModelRunner, _x: Tensor2D, _labels: Tensor1D, _seed: number): Promise<Tensor1D | undefined> {
    return Promise.resolve(undefined);
  }

  abstract run(model: Classifier | ModelRunner, x: Tensor2D, labels: Tensor1D, options: RunOptions): Promise<AttackResult>;
}

/**
 * Searches inside an ε ball around each input. Subclasses implement {@link search}; `run` is sealed
 * (do not override it): it projects onto the ball and the bounds and judges success.
 */
export abstract class FixedEpsilonAttack extends Attack {
  readonly kind = 'fixed-epsilon' as const;
  /** The spec's ε, in the units of {@link distance}. */
  abstract readonly epsilon: number;

  /**
   * Attacks a batch: `x` `[B, D]` in [0,1], `labels` int32 `[B]`.
   *
   * @example
   *   const result = await parseAttackSpec('pgd:eps=0.3').run(model, x, labels, { seed: 1 });
   *   result.success; // Uint8Array [B]
   */
  async run(model: Classifier | ModelRunner, x: Tensor2D, labels: Tensor1D, options: FixedEpsilonRunOptions): Promise<AttackResult> {
    const epsilons = options.epsilons ?? new Float32Array(x.shape[0]).fill(this.epsilon);
    if (epsilons.length !== x.shape[0] || epsilons.some((e) => !(e >= 0) || !Number.isFinite(e))) {
      throw Errors.badArgument(`${this.id}: epsilons must hold ${x.shape[0]} finite values ≥ 0`);
    }
    return execute(this, model, x, labels, options, epsilons, (ctx) => {
      const eps = tf.tensor2d(epsilons, [epsilons.length, 1]);
      return this.search({ ...ctx, eps, epsilons }).finally(() => eps.dispose());
    });
  }

  protected abstract search(ctx: FixedEpsilonContext): Promise<SearchOutput>;

  /** Projection onto each sample's ε ball, then (unless unbounded) onto [0,1]. */
  protected project(x0: Tensor2D, x: Tensor2D, eps: Tensor2D): Tensor2D {
    return tf.tidy(() => {
      const inBall = this.distance.project(x0, x, eps);
      return this.bounded ? (tf.clipByValue(inBall, 0, 1) as Tensor2D) : inBall;
    });
  }
}

/**
 * Searches for the smallest perturbation that meets the criterion. Subclasses implement
 * {@link search}; `run` is sealed (do not override it): it clips to [0,1] and judges success.
 */
export abstract class MinimizationAttack extends Attack {
  readonly kind = 'minimization' as const;

  /**
   * Attacks a batch: `x` `[B, D]` in [0,1], `labels` int32 `[B]`.
   *
   * @example
   *   const result = await parseAttackSpec('deepfool:norm=l2').run(model, x, labels, { seed: 1 });
   *   result.l2; // the size of each perturbation found
   */
  async run(model: Classifier | ModelRunner, x: Tensor2D, labels: Tensor1D, options: RunOptions): Promise<AttackResult> {
    return execute(this, model, x, labels, options, undefined, (ctx) => this.search(ctx));
  }

  protected abstract search(ctx: SearchContext): Promise<SearchOutput>;
}

function checkInputs(id: string, model: ModelRunner, x: Tensor2D, labels: Tensor1D, targets?: Tensor1D): void {
  const dim = inputSize(model);
  if (x.rank !== 2 || x.shape[1] !== dim) {
    throw Errors.badArgument(`${id}: inputs must be [B, ${dim}] for ${model.id}, got [${x.shape.join(', ')}]`);
  }
  for (const [what, t] of [['labels', labels], ['targets', targets]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== x.shape[0] || t.dtype !== 'int32')) {
      throw Errors.badArgument(`${id}: ${what} must be int32 [${x.shape[0]}], got ${t.dtype} [${t.shape.join(', ')}]`);
    }
  }
}

/**
 * The search's candidates made valid (finite, in the ε ball, in [0,1]; the clean input where the
 * criterion already held) and judged: verdict, prediction, loss and norms.
 */
async function judge(
  attack: Finisher,
  model: ModelRunner,
  x: Tensor2D,
  candidates: Tensor2D,
  done: Uint8Array,
  criterion: Criterion,
  lossLabels: Tensor1D,
  epsilons: Float32Array | undefined,
) {
  const count = x.shape[0];
  const adv = tf.tidy(() => {
    // A row the search left non-finite (a numerical blow-up) failed: it gets its clean input back.
    const finite = tf.cast(tf.min(tf.cast(tf.isFinite(candidates), 'float32'), 1, true), 'bool');
    let a = tf.where(finite, candidates, x) as Tensor2D;
    if (epsilons) a = attack.distance.project(x, a, tf.tensor2d(epsilons, [count, 1]));
    if (attack.bounded) a = tf.clipByValue(a, 0, 1) as Tensor2D;
    return tf.where(tf.tensor2d(done, [count, 1], 'bool'), x, a) as Tensor2D;
  });
  let scores: Tensor2D | undefined;
  let loss: Tensor1D | undefined;
  try {
    scores = await model.scores(adv);
    loss = await model.loss(attack.lossName, adv, lossLabels);
    const s = scores;
    const verdict = tf.tidy(() => ({
      success: criterion.isAdversarial(s),
      predicted: tf.argMax(s, 1),
      l2: L2.measure(x, adv),
      linf: Linf.measure(x, adv),
      l1: L1.measure(x, adv),
      l0: L0.measure(x, adv),
    }));
    return { adv, loss, ...verdict };
  } catch (e) {
    tf.dispose([adv, ...(loss ? [loss] : [])]);
    throw e;
  } finally {
    scores?.dispose();
  }
}

async function readFloat(t: tf.Tensor): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

/** The run shared by both bases: context, search, projection, verdict, plain-data result. */
async function execute(
  attack: Finisher,
  classifier: Classifier | ModelRunner,
  x: Tensor2D,
  labels: Tensor1D,
  options: RunOptions,
  epsilons: Float32Array | undefined,
  search: (ctx: SearchContext) => Promise<SearchOutput>,
): Promise<AttackResult> {
  const model = asRunner(classifier);
  checkInputs(attack.id, model, x, labels, options.targets);
  if (!attack.gradientFree && model.gradientEngine === 'none') {
    throw Errors.attackUnsupported(attack.id, model.id, 'the model offers no input gradients (an ONNX graph with an op that has no gradient rule runs black-box); black-box attacks: square, sparse-rs (scores), hsj (labels only)');
  }
  const chosen = options.targets ? undefined : await attack.chooseTargets(model, x, labels, options.seed);
  try {
    return await runSearch(attack, model, x, labels, { ...options, ...(chosen ? { targets: chosen } : {}) }, epsilons, search);
  } finally {
    chosen?.dispose();
  }
}

/** The run once its targets are known: the clean verdict, the search, the judged result. */
async function runSearch(
  attack: Finisher,
  model: ModelRunner,
  x: Tensor2D,
  labels: Tensor1D,
  options: RunOptions,
  epsilons: Float32Array | undefined,
  search: (ctx: SearchContext) => Promise<SearchOutput>,
): Promise<AttackResult> {
  const [count, dim] = x.shape;
  const counter = new EvalCounter(count);
  const targets = options.targets;
  const criterion = targets ? targetedMisclassification(targets) : misclassification(labels);
  const cleanScores = await model.scores(x);
  const cleanHit = tf.tidy(() => criterion.isAdversarial(cleanScores));
  cleanScores.dispose();
  const done = Uint8Array.from(await cleanHit.data());
  cleanHit.dispose();

  // Nothing to attack (an empty batch, or every sample already meets the criterion): no search.
  const out = done.every((d) => d === 1)
    ? { adversarial: tf.clone(x) }
    : await search({ model, x, labels, targets, criterion, done, rng: new Rng(options.seed), seed: options.seed, counter });
  let verdict: Awaited<ReturnType<typeof judge>>;
  try {
    verdict = await judge(attack, model, x, out.adversarial, done, criterion, targets ?? labels, epsilons);
  } finally {
    out.adversarial.dispose();
  }
  try {
    const result: AttackResult = {
      id: attack.id,
      count,
      dim,
      adversarial: await readFloat(verdict.adv),
      success: Uint8Array.from(await verdict.success.data()),
      predicted: Int32Array.from(await verdict.predicted.data()),
      l2: await readFloat(verdict.l2),
      linf: await readFloat(verdict.linf),
      l1: await readFloat(verdict.l1),
      l0: await readFloat(verdict.l0),
      loss: await readFloat(verdict.loss),
      gradients: counter.gradients,
      forwards: counter.forwards,
    };
    if (out.minEpsilon) result.minEpsilon = out.minEpsilon;
    if (out.cascade) result.cascade = out.cascade;
    if (targets) result.targets = Int32Array.from(await targets.data());
    return result;
  } finally {
    tf.dispose(verdict);
  }
}
