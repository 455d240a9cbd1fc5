/**
 * Adaptive attacks on the detectors: one {@link Classifier} over a detector's models, so that any
 * registered attack can attack them jointly (Tramèr et al. 2020, "On Adaptive Attacks to
 * Adversarial Example Defenses": attack the whole defence, not the model it protects).
 *
 * The ensemble differentiates through every member on tfjs: its agreement scores mix the members'
 * standardised log-softmaxes, which no engine's exported program computes. So each member must have
 * a tfjs classifier: a zoo model on the tfjs engine or under `--engine auto` does; a user's ONNX
 * model (black-box: no gradients at all) and a zoo model under `--engine onnx` do not, and the
 * adaptive attack refuses them (`ATTACK_UNSUPPORTED`; audit-bench skips the pair and says why).
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors, isAdvstreamError } from '../errors.js';
import type { Classifier, LossName } from '../models/classifier.js';
import { isRunner } from '../models/runner.js';
import { standardizeRows } from './ops.js';
import type { DetectorPlan, PlanModel } from './plan.js';

export type EnsembleCombination = 'sum' | 'agreement';

export interface EnsembleOptions {
  /** Default `ensemble(<member ids joined by +>)`, or `agreement(...)`. */
  id?: string;
  /** `sum` (default) or `agreement`; see {@link ensembleClassifier}. */
  combine?: EnsembleCombination;
  /** One non-negative weight per member; default 1 each. */
  weights?: readonly number[];
  /**
   * How each member's scores enter: `zscore` (default) standardised across classes and scaled by
   * `sharpness`, as order-disagreement compares them, so that no member's scale drowns the others (a
   * DAM's raw scores span ±0.5, a ReLU MLP's ±10); `none`: the raw scores.
   */
  normalize?: 'zscore' | 'none';
  /** κ for `zscore`; default 4, order-disagreement's default. */
  sharpness?: number;
}

/** Per class, member m's margin ℓ(c) − max_{c' ≠ c} ℓ(c'): positive exactly for its predicted class. */
function margins(l: Tensor2D): Tensor2D {
  const isTop = tf.cast(tf.oneHot(tf.argMax(l, 1), l.shape[1]), 'float32');
  const best = tf.max(l, 1, true);
  const second = tf.max(tf.sub(l, tf.mul(isTop, 1e9)), 1, true);
  return tf.sub(l, tf.add(tf.mul(best, tf.sub(1, isTop)), tf.mul(second, isTop))) as Tensor2D;
}

/**
 * The members as one classifier for attacks, with ℓ_m = log softmax(z_m(x)), z_m member m's scores
 * standardised as order-disagreement does (κ·(s − mean)/sd; raw with `normalize: 'none'`):
 * - `combine: 'sum'` (default): `scores = Σ_m w_m·ℓ_m`, the log of the weighted product of the
 *   members' softmaxes up to a constant per row; its argmax is the class the members find most likely
 *   together. An attack stops as soon as that class moves, usually with the low-order model alone
 *   fooled, so this is not the worst case against order-disagreement.
 * - `combine: 'agreement'`: numClasses + 1 scores. Class c < C scores min_m w_m·(ℓ_m(c) −
 *   max_{c'≠c} ℓ_m(c')), positive exactly when every member predicts c; the extra class C ("the
 *   members disagree") scores 0. So the argmax is a real class only when all members agree on it, and
 *   a targeted attack succeeds exactly when every member predicts the target: the worst case against
 *   order-disagreement. Its cross-entropy pushes the member furthest from the target. Run it
 *   targeted: untargeted success would count disagreement (class C) as success.
 * `loss('ce')` is cross-entropy over these scores (what the attacks ascend); `loss('model')` is
 * Σ_m w_m·loss_m('model'). It owns no tensors: `dispose` leaves the members to their owner. Members
 * must share input shape and class count.
 *
 * @example
 *   const joint = ensembleClassifier([mlp, dam20, dam30], { combine: 'agreement' });
 *   await parseAttackSpec('pgd:eps=0.3,steps=100').run(joint, x, labels, { seed: 1, targets });
 */
export function ensembleClassifier(models: readonly Classifier[], options: EnsembleOptions = {}): Classifier {
  const first = models[0];
  if (!first) throw Errors.badArgument('an ensemble needs at least one model');
  for (const m of models) {
    if (m.numClasses !== first.numClasses || m.inputShape.join('x') !== first.inputShape.join('x')) {
      throw Errors.badModel(m.id, `differs from ${first.id} in input shape or classes; an ensemble needs them equal`);
    }
  }
  const weights = options.weights ?? models.map(() => 1);
  if (weights.length !== models.length || weights.some((w) => !(w >= 0) || !Number.isFinite(w))) {
    throw Errors.badArgument(`ensemble weights must be ${models.length} finite non-negative numbers`, { weights });
  }
  const sharpness = options.sharpness ?? 4;
  if (!(sharpness > 0) || !Number.isFinite(sharpness)) throw Errors.badArgument(`sharpness must be positive, got ${sharpness}`);
  const agreement = options.combine === 'agreement';
  const logProbs = (m: Classifier, x: Tensor2D): Tensor2D => {
    const s = m.scores(x);
    return tf.logSoftmax(options.normalize === 'none' ? s : standardizeRows(s, sharpness));
  };
  const scores = (x: Tensor2D): Tensor2D =>
    tf.tidy(() => {
      if (!agreement) return tf.addN(models.map((m, k) => tf.mul(weights[k]!, logProbs(m, x)))) as Tensor2D;
      const joint = models.map((m, k) => tf.mul(weights[k]!, margins(logProbs(m, x))) as Tensor2D).reduce((a, b) => tf.minimum(a, b));
      return tf.concat([joint, tf.zeros([x.shape[0], 1])], 1) as Tensor2D;
    });
  const numClasses = first.numClasses + (agreement ? 1 : 0);
  return {
    id: options.id ?? `${agreement ? 'agreement' : 'ensemble'}(${models.map((m) => m.id).join('+')})`,
    family: 'ensemble',
    inputShape: first.inputShape,
    numClasses,
    scores,
    loss: (name: LossName, x: Tensor2D, labels: Tensor1D) =>
      tf.tidy(() => {
        if (name === 'model') return tf.addN(models.map((m, k) => tf.mul(weights[k]!, m.loss(name, x, labels)))) as Tensor1D;
        const onehot = tf.oneHot(tf.cast(labels, 'int32'), numClasses);
        return tf.neg(tf.sum(tf.mul(tf.logSoftmax(scores(x)), onehot), 1)) as Tensor1D;
      }),
    dispose() {},
  };
}

/**
 * The ensemble of every model one detector of a plan uses (for order-disagreement: the low model,
 * then the high ones), matched by id among `models`, normalised as the detector normalises (its
 * `normalize` and `sharpness` parameters, where it has them), and by default combined by
 * `agreement`: a targeted attack on it succeeds only when every model predicts the target. Runners
 * contribute their tfjs classifier; one without (see the module comment) is `ATTACK_UNSUPPORTED`.
 *
 * @example
 *   const joint = detectorEnsemble(plan, 'order-disagreement', models);
 */
export function detectorEnsemble(plan: DetectorPlan, detector: string, models: readonly PlanModel[], options: EnsembleOptions = {}): Classifier {
  const members = detectorMembers(plan, detector, models);
  const { normalize, sharpness } = plan.detectors.find((d) => d.name === detector)!.params;
  return ensembleClassifier(members, {
    combine: 'agreement',
    ...(normalize === 'none' || normalize === 'zscore' ? { normalize } : {}),
    ...(typeof sharpness === 'number' ? { sharpness } : {}),
    ...options,
  });
}

/**
 * Why the adaptive attack on `detector` cannot run on these models (a member without a tfjs
 * classifier), or undefined when it can.
 *
 * @example
 *   adaptiveRefusal(plan, 'order-disagreement', runners); // undefined on the shipped zoo under --engine auto
 */
export function adaptiveRefusal(plan: DetectorPlan, detector: string, models: readonly PlanModel[]): string | undefined {
  try {
    detectorMembers(plan, detector, models);
    return undefined;
  } catch (e) {
    if (isAdvstreamError(e) && e.code === 'ATTACK_UNSUPPORTED') return e.message;
    throw e;
  }
}

/** The tfjs classifiers of one detector's models, in role order, each once. */
function detectorMembers(plan: DetectorPlan, detector: string, models: readonly PlanModel[]): Classifier[] {
  const config = plan.detectors.find((d) => d.name === detector);
  if (!config) throw Errors.badArgument(`detector '${detector}' is not in the plan`, { detectors: plan.detectors.map((d) => d.name) });
  const ids = [...new Set(Object.values(config.models).flat())];
  return ids.map((id) => {
    const m = models.find((c) => c.id === id);
    if (!m) throw Errors.badArgument(`model '${id}' of ${detector} was not given`, { id });
    if (!isRunner(m)) return m;
    if (m.classifier) return m.classifier;
    const why =
      m.gradientEngine === 'none'
        ? 'it runs black-box (an ONNX model offers no input gradients)'
        : `it has no tfjs classifier on engine ${m.engine} (the adaptive ensemble differentiates on tfjs: use --engine auto or tfjs)`;
    throw Errors.attackUnsupported(`the adaptive attack on ${detector}`, id, why);
  });
}
