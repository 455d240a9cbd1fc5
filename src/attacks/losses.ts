/**
 * What gradient attacks ascend, and the one place where a loss, its input gradient and the scores
 * are evaluated and counted. Losses computed from the scores (CE, DLR, margins) share one forward
 * pass with the scores; the family's own loss (`model`) needs a second forward for the scores.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { LossName } from '../models/classifier.js';
import type { Evaluation, GradEvaluation, ModelRunner, Objective } from '../models/runner.js';

export type { Evaluation, GradEvaluation, Objective } from '../models/runner.js';

/** Per-sample evaluation counts of one run, indexed by the run's rows. */
export class EvalCounter {
  readonly gradients: Uint32Array;
  readonly forwards: Uint32Array;

  constructor(n: number) {
    this.gradients = new Uint32Array(n);
    this.forwards = new Uint32Array(n);
  }

  /** Charges `times` evaluations to `rows` (the run's row numbers; all rows when omitted). */
  add(kind: 'gradients' | 'forwards', rows?: ArrayLike<number>, times = 1): void {
    const counts = this[kind];
    if (rows === undefined) for (let i = 0; i < counts.length; i++) counts[i]! += times;
    else for (let i = 0; i < rows.length; i++) counts[rows[i]!]! += times;
  }
}

/**
 * Cross-entropy of the softmax of the scores, per sample: the `ce` loss of {@link Classifier}.
 *
 * Its gradient is CE's exact direction, rescaled per sample by 1/(1 − p_y): with q the softmax over
 * the wrong classes only, ∇_scores CE = p − e_y = (1 − p_y)(q − e_y). A confident model saturates
 * p_y to exactly 1 in float32, which zeroes the plain gradient and masks it from every attack;
 * q − e_y never underflows. Every attack that ascends CE normalises its gradient per sample (sign,
 * L2 or L1), so the rescaling changes nothing but that.
 */
export function crossEntropy(scores: Tensor2D, labels: Tensor1D): Tensor1D {
  const f = tf.customGrad(((s: Tensor2D, save: tf.GradSaveFunc) => {
    const onehot = tf.oneHot(labels, s.shape[1]).cast('float32');
    save([s, onehot]);
    return {
      value: tf.neg(tf.sum(tf.mul(tf.logSoftmax(s), onehot), 1)),
      gradFunc: (dy: Tensor1D, saved: tf.Tensor[]) => {
        const [kept, hot] = saved as [Tensor2D, Tensor2D];
        const wrong = tf.softmax(tf.sub(kept, tf.mul(hot, 1e30)));
        return tf.mul(tf.expandDims(dy, 1), tf.sub(wrong, hot));
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(scores) as Tensor1D;
}

/**
 * One-hot masks `[B, C]` of the `k` highest scores, highest first. Built from argmax rather than
 * topk: TopK has no gradient in tfjs, and these masks sit inside differentiated losses.
 */
export function topMasks(scores: Tensor2D, k: number): Tensor2D[] {
  return tf.tidy(() => {
    const classes = scores.shape[1];
    const masks: Tensor2D[] = [];
    let rest: Tensor2D = scores;
    for (let j = 0; j < k; j++) {
      const mask = tf.oneHot(tf.argMax(rest, 1), classes).cast('float32') as Tensor2D;
      masks.push(mask);
      rest = tf.where(tf.cast(mask, 'bool'), tf.fill(rest.shape, -Infinity), rest) as Tensor2D;
    }
    return masks;
  });
}

function pick(scores: Tensor2D, mask: Tensor2D): Tensor1D {
  return tf.sum(tf.mul(scores, mask), 1) as Tensor1D;
}

/** Untargeted DLR loss (Croce & Hein 2020), to ascend: `−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)`. */
export function dlrLoss(scores: Tensor2D, labels: Tensor1D): Tensor1D {
  return tf.tidy(() => {
    const [m1, m2, m3] = topMasks(scores, 3) as [Tensor2D, Tensor2D, Tensor2D];
    const y = tf.oneHot(labels, scores.shape[1]).cast('float32') as Tensor2D;
    const zy = pick(scores, y);
    const z1 = pick(scores, m1);
    const topIsLabel = tf.sum(tf.mul(m1, y), 1);
    const other = tf.add(tf.mul(topIsLabel, pick(scores, m2)), tf.mul(tf.sub(1, topIsLabel), z1));
    return tf.neg(tf.div(tf.sub(zy, other), tf.add(tf.sub(z1, pick(scores, m3)), 1e-12))) as Tensor1D;
  });
}

/** Targeted DLR loss (AutoAttack's APGD-T), to ascend: `−(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4))`. */
export function targetedDlrLoss(scores: Tensor2D, labels: Tensor1D, targets: Tensor1D): Tensor1D {
  return tf.tidy(() => {
    const [m1, , m3, m4] = topMasks(scores, 4) as [Tensor2D, Tensor2D, Tensor2D, Tensor2D];
    const classes = scores.shape[1];
    const zy = pick(scores, tf.oneHot(labels, classes).cast('float32') as Tensor2D);
    const zt = pick(scores, tf.oneHot(targets, classes).cast('float32') as Tensor2D);
    const scale = tf.sub(pick(scores, m1), tf.mul(0.5, tf.add(pick(scores, m3), pick(scores, m4))));
    return tf.neg(tf.div(tf.sub(zy, zt), tf.add(scale, 1e-12))) as Tensor1D;
  });
}

/**
 * The objectives attacks ascend, by name: `ce` (cross-entropy), `dlr` (untargeted DLR),
 * `dlr-targeted`, and `model` (the family's own loss). A custom objective is any other scores
 * objective an attack writes itself (C&W's margin, DeepFool's linearisation).
 */
export type ObjectiveName = 'ce' | 'dlr' | 'dlr-targeted' | 'model';

/**
 * The one builder of named objectives, so that every engine ascends the same loss: untargeted,
 * the loss of the labels is ascended; with targets, the loss of the targets is descended (its
 * negative ascended), and `dlr-targeted` measures the labels against the targets. Only `ce` carries
 * the tag a fused native cross-entropy program reads.
 *
 * @example
 *   const ev = new Evaluator(model, objective('dlr', labels), counter);
 */
export function objective(name: ObjectiveName, labels: Tensor1D, targets?: Tensor1D): Objective {
  switch (name) {
    case 'model':
      return { kind: 'model', labels: targets ?? labels, sign: targets ? -1 : 1 };
    case 'ce':
      return targets
        ? { kind: 'scores', fn: (s) => tf.neg(crossEntropy(s, targets)), ce: { labels: targets, sign: -1 } }
        : { kind: 'scores', fn: (s) => crossEntropy(s, labels), ce: { labels, sign: 1 } };
    case 'dlr':
      return { kind: 'scores', fn: (s) => dlrLoss(s, labels) };
    case 'dlr-targeted': {
      if (!targets) throw Errors.badArgument('the targeted DLR objective needs targets');
      const t = targets;
      return { kind: 'scores', fn: (s) => targetedDlrLoss(s, labels, t) };
    }
  }
}

/** The objective for a spec's `loss` (`ce` or `model`); see {@link objective}. */
export function lossObjective(loss: LossName, labels: Tensor1D, targets?: Tensor1D): Objective {
  return objective(loss, labels, targets);
}

/** Cross-entropy of the labels to ascend, or of the targets to descend; see {@link objective}. */
export function ceObjective(labels: Tensor1D, targets?: Tensor1D): Objective {
  return objective('ce', labels, targets);
}

/**
 * Evaluates an objective on a batch whose rows are `rows` of the run (for the counts). Every tensor
 * returned is new and owned by the caller. The calls are asynchronous (a native engine answers
 * asynchronously): never call them inside `tf.tidy`; keep tfjs arithmetic in tidies between them.
 */
export class Evaluator {
  constructor(
    private readonly model: ModelRunner,
    private readonly objective: Objective,
    private readonly counter: EvalCounter,
    private readonly rows?: ArrayLike<number>,
    /** Expectation over transformation: gradients and values averaged over this many evaluations. */
    private readonly eot = 1,
  ) {}

  /**
   * One gradient evaluation (forward and backward); the model's own loss adds a forward for the
   * scores. With `eot` > 1 the mean value and gradient of that many evaluations, with the last
   * one's scores (as AutoAttack's APGD does).
   */
  async withGrad(x: Tensor2D): Promise<GradEvaluation> {
    const once = (): Promise<GradEvaluation> => {
      this.counter.add('gradients', this.rows);
      if (this.objective.kind === 'model') this.counter.add('forwards', this.rows);
      return this.model.gradient(this.objective, x);
    };
    let sum = await once();
    for (let i = 1; i < this.eot; i++) {
      const e = await once();
      const prev = sum;
      sum = tf.tidy(() => ({ value: tf.add(prev.value, e.value) as Tensor1D, grad: tf.add(prev.grad, e.grad) as Tensor2D, scores: tf.clone(e.scores) }));
      tf.dispose([prev.value, prev.grad, prev.scores, e.value, e.grad, e.scores]);
    }
    if (this.eot === 1) return sum;
    const total = sum;
    const mean = tf.tidy(() => ({ value: tf.div(total.value, this.eot) as Tensor1D, grad: tf.div(total.grad, this.eot) as Tensor2D }));
    tf.dispose([total.value, total.grad]);
    return { ...mean, scores: total.scores };
  }

  /** Forward only: one pass, two for the model's own loss. */
  async forward(x: Tensor2D): Promise<Evaluation> {
    const { model, objective } = this;
    this.counter.add('forwards', this.rows);
    const scores = await model.scores(x);
    if (objective.kind === 'scores') return { value: tf.tidy(() => objective.fn(scores)), scores };
    this.counter.add('forwards', this.rows);
    const loss = await model.loss('model', x, objective.labels);
    const value = tf.tidy(() => tf.mul(loss, objective.sign) as Tensor1D);
    loss.dispose();
    return { value, scores };
  }
}
