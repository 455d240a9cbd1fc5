/** Iterative gradient attacks: BIM, PGD (L∞ and L2) and MI-FGSM, on one shared loop. */
import { tf, type Tensor2D } from '../backend/index.js';
import type { LossName } from '../models/classifier.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { Evaluator, lossObjective } from './losses.js';
import {
  configure,
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
    const ev = new Evaluator(ctx.model, lossObjective(o.loss, sub.labels, sub.targets), ctx.counter, rows);
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
              return { x: project(sub.x, tf.add(x, tf.mul(stepSize, o.distance.direction(g))) as Tensor2D, sub.eps), v };
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

  protected abstract loop(): Omit<LoopOptions, 'distance' | 'loss'>;

  protected search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    return iterate(
      ctx,
      { ...this.loop(), distance: this.distance as NormDistance, loss: this.lossName },
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

  protected loop(): Omit<LoopOptions, 'distance' | 'loss'> {
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
} as const satisfies ParamSchema;
export type PgdOptions = Partial<Omit<ParamValues<typeof PGD_PARAMS>, 'norm'>>;

/**
 * PGD, projected gradient descent with random start and restarts. Madry et al., "Towards Deep
 * Learning Models Resistant to Adversarial Attacks", ICLR 2018. Defaults: ε = 0.3 (L∞) or 2 (L2),
 * steps = 40, α = 2.5·ε/steps, restarts = 1, random start, loss = ce. Per sample the first
 * adversarial iterate over all steps and restarts is kept; a sample never broken keeps its
 * highest-loss iterate. The loop stops once every sample of the batch is broken.
 */
abstract class Pgd extends IterativeAttack<typeof PGD_PARAMS> {
  readonly name = 'pgd';

  protected loop(): Omit<LoopOptions, 'distance' | 'loss'> {
    const p = this.params;
    return { steps: p.steps, relativeStep: p.step / p.eps, restarts: p.restarts, randomStart: p.random };
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
    super('pgd', PGD_PARAMS, { ...options, norm: 'linf' });
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
    super('pgd', PGD_PARAMS, { ...options, norm: 'l2' });
  }
}

export const MIFGSM_PARAMS = {
  eps: epsilonParam(0.3),
  steps: { type: 'int', min: 1, max: 100_000, default: 10, doc: 'iterations T' },
  decay: { type: 'number', min: 0, max: 10, default: 1, doc: 'decay μ of the accumulated gradient' },
  loss: LOSS_PARAM,
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

  protected loop(): Omit<LoopOptions, 'distance' | 'loss'> {
    const p = this.params;
    return { steps: p.steps, relativeStep: 1 / p.steps, restarts: 1, randomStart: false, decay: p.decay };
  }
}
