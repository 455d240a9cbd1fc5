/** Iterative gradient attacks: BIM, PGD (L∞ and L2, targeted or not), SLIDE (L1) and MI-FGSM, on one shared loop. */
import { exactSign, tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { LossName } from '../models/classifier.js';
import type { ModelRunner } from '../models/runner.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { L1, L2, Linf, type NormDistance } from './distances.js';
import { Evaluator, lossObjective } from './losses.js';
import {
  configure,
  EOT_PARAM,
  epsilonParam,
  LOSS_PARAM,
  num,
  type ParamSchema,
  type ParamValue,
  type ParamValues,
  type ResolvedParams,
} from './params.js';
import { Rng, deriveSeed } from './rng.js';
import { PointKeeper, randomStart, subset, withRestarts, type RunOutcome } from './runs.js';

interface LoopOptions {
  distance: NormDistance;
  loss: LossName;
  steps: number;
  /** Step size as a fraction of ε, so that per-sample ε keep the spec's step-to-ε ratio. */
  relativeStep: number;
  restarts: number;
  randomStart: boolean;
  /** MI-FGSM's decay μ of the accumulated, L1-normalised gradient; none for plain steps. */
  decay?: number;
  /** Gradient evaluations averaged per step (expectation over transformation). */
  eot: number;
  /** The step direction at `x` for the gradient `g`; by default the norm's steepest direction. */
  direction?: (g: Tensor2D, x: Tensor2D) => Tensor2D;
}

/**
 * SLIDE's L1 steepest direction (Tramèr & Boneh, "Adversarial Training and Robustness for Multiple
 * Perturbations", NeurIPS 2019): the sign of the gradient on its `k` largest coordinates, scaled to
 * unit L1 norm. Coordinates the box stops (a pixel at 0 pushed down, at 1 pushed up) are left out
 * first, as in Croce & Hein's "Mind the box" (ICML 2021): on MNIST most pixels sit at a bound.
 */
export function slideDirection(g: Tensor2D, x: Tensor2D, k: number): Tensor2D {
  return tf.tidy(() => {
    const blocked = tf.logicalOr(tf.logicalAnd(tf.lessEqual(x, 0), tf.less(g, 0)), tf.logicalAnd(tf.greaterEqual(x, 1), tf.greater(g, 0)));
    const open = tf.where(blocked, tf.zerosLike(g), g);
    const size = tf.abs(open);
    const kth = tf.min(tf.topk(size, k).values, 1, true);
    const chosen = tf.cast(tf.logicalAnd(tf.greaterEqual(size, kth), tf.greater(size, 0)), 'float32');
    const count = tf.maximum(tf.sum(chosen, 1, true), 1);
    return tf.div(tf.mul(chosen, exactSign(open)), count) as Tensor2D;
  });
}

/**
 * `x ← Π(x + α·direction(g))` for `steps` steps from the clean or a random point, keeping per row
 * the first adversarial iterate (or else the highest-loss one); restarts attack the rows still robust.
 */
function iterate(
  ctx: FixedEpsilonContext,
  o: LoopOptions,
  project: (x0: Tensor2D, x: Tensor2D, eps: Tensor2D) => Tensor2D,
): Promise<SearchOutput> {
  const once = async (rows: Int32Array, restart: number): Promise<RunOutcome> => {
    const sub = subset(ctx, rows);
    const rng = new Rng(deriveSeed(ctx.seed, restart));
    const ev = new Evaluator(ctx.model, lossObjective(o.loss, sub.labels, sub.targets), ctx.counter, rows, o.eot);
    const direction = o.direction ?? ((g: Tensor2D) => o.distance.direction(g));
    const stepSize = tf.mul(sub.eps, o.relativeStep) as Tensor2D;
    const keeper = new PointKeeper(sub.x);
    let x = o.randomStart
      ? tf.tidy(() => project(sub.x, randomStart(o.distance.name, sub.x, sub.eps, rng), sub.eps))
      : tf.clone(sub.x);
    let velocity = o.decay === undefined ? undefined : (tf.zerosLike(sub.x) as Tensor2D);
    try {
      for (let k = 0; k < o.steps; k++) {
        const r = await ev.withGrad(x);
        const e = { ...r, adversarial: tf.tidy(() => sub.criterion.isAdversarial(r.scores)) };
        keeper.offer(x, e.adversarial, e.value);
        const finished = await keeper.allFound();
        const next = finished
          ? undefined
          : tf.tidy(() => {
              let g = e.grad;
              let v: Tensor2D | undefined;
              if (velocity) {
                const l1 = tf.maximum(tf.sum(tf.abs(g), 1, true), 1e-12);
                v = tf.add(tf.mul(velocity, o.decay ?? 1), tf.div(g, l1)) as Tensor2D;
                g = v;
              }
              return { x: project(sub.x, tf.add(x, tf.mul(stepSize, direction(g, x))) as Tensor2D, sub.eps), v };
            });
        tf.dispose(e);
        if (!next) return await keeper.outcome();
        tf.dispose([x, velocity]);
        x = next.x;
        velocity = next.v;
      }
      const r = await ev.forward(x);
      const last = { ...r, adversarial: tf.tidy(() => sub.criterion.isAdversarial(r.scores)) };
      keeper.offer(x, last.adversarial, last.value);
      tf.dispose(last);
      return await keeper.outcome();
    } finally {
      tf.dispose([x, velocity, stepSize]);
      keeper.dispose();
      sub.dispose();
    }
  };
  return withRestarts(ctx, o.restarts, once);
}

/** The parts every member of the family shares: a norm, ε, a loss and a loop. */
abstract class IterativeAttack<S extends ParamSchema> extends FixedEpsilonAttack {
  readonly id: string;
  readonly params: ParamValues<S>;
  readonly epsilon: number;
  override readonly lossName: LossName;

  constructor(name: string, schema: S, options: Readonly<Partial<Record<keyof S & string, ParamValue>>>) {
    super();
    ({ params: this.params, id: this.id } = configure(name, schema, options));
    const resolved: ResolvedParams = this.params;
    this.epsilon = num(resolved, 'eps');
    this.lossName = resolved.loss === 'model' ? 'model' : 'ce';
  }

  protected abstract loop(): Omit<LoopOptions, 'distance' | 'loss' | 'eot'>;

  protected search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const eot = (this.params as ResolvedParams).eot;
    return iterate(
      ctx,
      { ...this.loop(), distance: this.distance as NormDistance, loss: this.lossName, eot: typeof eot === 'number' ? eot : 1 },
      (x0, x, eps) => this.project(x0, x, eps),
    );
  }
}

export const BIM_PARAMS = {
  eps: epsilonParam(0.3),
  steps: { type: 'int', min: 1, max: 100_000, default: 10, doc: 'iterations' },
  step: {
    type: 'number',
    min: 0,
    max: 1000,
    exclusiveMin: true,
    default: (p) => num(p, 'eps') / num(p, 'steps'),
    doc: 'step size α in [0,1] units (default ε/steps)',
  },
  loss: LOSS_PARAM,
  eot: EOT_PARAM,
} as const satisfies ParamSchema;

/**
 * BIM / I-FGSM, the basic iterative method: FGSM steps of size α, each projected onto the ε ball
 * and [0,1], from the clean point. Kurakin, Goodfellow & Bengio, "Adversarial examples in the
 * physical world", 2016. Norm L∞. Defaults: ε = 0.3, steps = 10, α = ε/steps, loss = ce.
 *
 * @example
 *   new LinfBim({ eps: 0.1 }).id; // 'bim:eps=0.1,loss=ce,step=0.01,steps=10'
 */
export class LinfBim extends IterativeAttack<typeof BIM_PARAMS> {
  readonly name = 'bim';
  readonly distance = Linf;

  constructor(options: Partial<ParamValues<typeof BIM_PARAMS>> = {}) {
    super('bim', BIM_PARAMS, options);
  }

  protected loop(): Omit<LoopOptions, 'distance' | 'loss' | 'eot'> {
    const p = this.params;
    return { steps: p.steps, relativeStep: p.step / p.eps, restarts: 1, randomStart: false };
  }
}

export const PGD_PARAMS = {
  norm: { type: 'enum', values: ['linf', 'l2'], default: 'linf', doc: 'norm of the ε ball' },
  eps: epsilonParam(),
  steps: { type: 'int', min: 1, max: 100_000, default: 40, doc: 'iterations per restart' },
  step: {
    type: 'number',
    min: 0,
    max: 1000,
    exclusiveMin: true,
    default: (p) => (2.5 * num(p, 'eps')) / num(p, 'steps'),
    doc: 'step size α in [0,1] units (default 2.5·ε/steps, Madry et al.)',
  },
  restarts: { type: 'int', min: 1, max: 1000, default: 1, doc: 'random restarts, each on the samples still robust' },
  random: { type: 'bool', default: true, doc: 'start from a uniformly random point of the ε ball' },
  loss: LOSS_PARAM,
  target: {
    type: 'string',
    default: 'none',
    implicit: true,
    doc: 'none (untargeted), or a targeted run toward: random (a random wrong class), next (label + 1 mod C), least (the least likely class of the clean scores), or a class number k',
  },
  eot: EOT_PARAM,
} as const satisfies ParamSchema;
export type PgdOptions = Partial<Omit<ParamValues<typeof PGD_PARAMS>, 'norm'>>;

const TARGET_RULES = ['none', 'random', 'next', 'least'] as const;

/**
 * PGD, projected gradient descent with random start and restarts. Madry et al., "Towards Deep
 * Learning Models Resistant to Adversarial Attacks", ICLR 2018. Defaults: ε = 0.3 (L∞) or 2 (L2), steps = 40, α = 2.5·ε/steps, restarts = 1, random start, loss = ce, untargeted, eot = 1.
 * Per sample the first adversarial iterate over all steps and restarts is kept; a sample never
 * broken keeps its highest-loss iterate. The loop stops once every sample of the batch is broken.
 * `target=random|next|least|k` makes it targeted PGD (Kurakin et al. 2017's least-likely class among
 * the rules): it descends the target's loss and succeeds only on the target; explicit targets in
 * the run options take precedence. Samples already predicted as their target count as successes.
 */
abstract class Pgd extends IterativeAttack<typeof PGD_PARAMS> {
  readonly name = 'pgd';

  constructor(options: Readonly<Partial<Record<keyof typeof PGD_PARAMS & string, ParamValue>>>) {
    super('pgd', PGD_PARAMS, options);
    const t = this.params.target;
    if (!(TARGET_RULES as readonly string[]).includes(t) && !/^\d+$/.test(t)) {
      throw Errors.badSpec(this.id, `target=${t}: not a rule or a class number`, [...TARGET_RULES, 'k (a class number)']);
    }
  }

  protected loop(): Omit<LoopOptions, 'distance' | 'loss' | 'eot'> {
    const p = this.params;
    return { steps: p.steps, relativeStep: p.step / p.eps, restarts: p.restarts, randomStart: p.random };
  }

  override async chooseTargets(model: ModelRunner, x: Tensor2D, labels: Tensor1D, seed: number): Promise<Tensor1D | undefined> {
    const rule = this.params.target;
    if (rule === 'none') return undefined;
    const classes = model.numClasses;
    const y = Int32Array.from(await labels.data());
    if (rule === 'least') {
      const scores = await model.scores(x);
      const least = tf.tidy(() => tf.cast(tf.argMin(scores, 1), 'int32') as Tensor1D);
      scores.dispose();
      return least;
    }
    if (rule === 'next') return tf.tensor1d(y.map((v) => (v + 1) % classes), 'int32');
    if (rule === 'random') {
      const rng = new Rng(deriveSeed(seed, 0x7461));
      return tf.tensor1d(
        y.map((v) => {
          const t = rng.int(0, classes - 2);
          return t >= v ? t + 1 : t;
        }),
        'int32',
      );
    }
    const k = Number(rule);
    if (k >= classes) throw Errors.attackUnsupported(this.id, model.id, `target class ${k} does not exist: the model has ${classes} classes`);
    return tf.tensor1d(new Int32Array(y.length).fill(k), 'int32');
  }
}

/**
 * L∞ PGD (see {@link Pgd}): steps `α·sign(∇)`, uniform random start in the ε cube.
 *
 * @example
 *   new LinfPgd({ eps: 0.3, steps: 40, step: 0.01 }).id;
 *   // 'pgd:eps=0.3,loss=ce,norm=linf,random=true,restarts=1,step=0.01,steps=40'
 */
export class LinfPgd extends Pgd {
  readonly distance = Linf;

  constructor(options: PgdOptions = {}) {
    super({ ...options, norm: 'linf' });
  }
}

/**
 * L2 PGD (see {@link Pgd}): steps `α·∇/‖∇‖₂`, random start uniform in the ε ball.
 *
 * @example
 *   new L2Pgd({ eps: 2 }).id; // 'pgd:eps=2,loss=ce,norm=l2,random=true,restarts=1,step=0.125,steps=40'
 */
export class L2Pgd extends Pgd {
  readonly distance = L2;

  constructor(options: PgdOptions = {}) {
    super({ ...options, norm: 'l2' });
  }
}

export const SLIDE_PARAMS = {
  eps: epsilonParam(10),
  steps: PGD_PARAMS.steps,
  step: PGD_PARAMS.step,
  restarts: PGD_PARAMS.restarts,
  random: { type: 'bool', default: true, doc: 'start from a uniformly random point of the L1 ball' },
  sparsity: { type: 'number', min: 0, max: 1, default: 0.99, doc: 'q: each step moves the coordinates above this quantile of |∇|' },
  loss: LOSS_PARAM,
  eot: EOT_PARAM,
} as const satisfies ParamSchema;

/**
 * SLIDE, L1 PGD with sparse steps (see {@link slideDirection}): each step moves the coordinates
 * above the `sparsity` quantile of |∇| (box-blocked ones left out) by `α/k` each, then projects
 * onto the L1 ball (Duchi et al. 2008) and [0,1]. Tramèr & Boneh, "Adversarial Training and
 * Robustness for Multiple Perturbations", NeurIPS 2019. Norm L1. Defaults: ε = 10, steps = 40,
 * α = 2.5·ε/steps, q = 0.99, 1 restart, random start uniform in the L1 ball, loss = ce, eot = 1.
 * Per sample the first adversarial iterate is kept, as in {@link Pgd}.
 *
 * @example
 *   new L1Slide().id; // 'slide:eps=10,loss=ce,random=true,restarts=1,sparsity=0.99,step=0.625,steps=40'
 */
export class L1Slide extends IterativeAttack<typeof SLIDE_PARAMS> {
  readonly name = 'slide';
  readonly distance = L1;

  constructor(options: Partial<ParamValues<typeof SLIDE_PARAMS>> = {}) {
    super('slide', SLIDE_PARAMS, options);
  }

  protected loop(): Omit<LoopOptions, 'distance' | 'loss' | 'eot'> {
    const p = this.params;
    const k = (dim: number): number => Math.max(1, Math.round((1 - p.sparsity) * dim));
    return {
      steps: p.steps,
      relativeStep: p.step / p.eps,
      restarts: p.restarts,
      randomStart: p.random,
      direction: (g, x) => slideDirection(g, x, k(g.shape[1])),
    };
  }
}

export const MIFGSM_PARAMS = {
  eps: epsilonParam(0.3),
  steps: { type: 'int', min: 1, max: 100_000, default: 10, doc: 'iterations T' },
  decay: { type: 'number', min: 0, max: 10, default: 1, doc: 'decay μ of the accumulated gradient' },
  loss: LOSS_PARAM,
  eot: EOT_PARAM,
} as const satisfies ParamSchema;

/**
 * MI-FGSM, momentum iterative FGSM: `g ← μ·g + ∇/‖∇‖₁`, `x ← Π(x + α·sign(g))` with α = ε/T.
 * Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018. Norm L∞. Defaults: ε = 0.3,
 * T = 10 steps, μ = 1, loss = ce, from the clean point.
 *
 * @example
 *   new LinfMiFgsm({ eps: 0.3 }).id; // 'mifgsm:decay=1,eps=0.3,loss=ce,steps=10'
 */
export class LinfMiFgsm extends IterativeAttack<typeof MIFGSM_PARAMS> {
  readonly name = 'mifgsm';
  readonly distance = Linf;

  constructor(options: Partial<ParamValues<typeof MIFGSM_PARAMS>> = {}) {
    super('mifgsm', MIFGSM_PARAMS, options);
  }

  protected loop(): Omit<LoopOptions, 'distance' | 'loss' | 'eot'> {
    const p = this.params;
    return { steps: p.steps, relativeStep: 1 / p.steps, restarts: 1, randomStart: false, decay: p.decay };
  }
}
