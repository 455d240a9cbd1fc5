/** Single-step gradient attacks: FGSM (L∞) and FGM (L2). */
import { tf, type Tensor2D } from '../backend/index.js';
import type { LossName } from '../models/classifier.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { Evaluator, lossObjective } from './losses.js';
import { configure, EOT_PARAM, epsilonParam, LOSS_PARAM, type ParamSchema, type ParamValues } from './params.js';
import { openRows, scatterRows, subset } from './runs.js';

/** One step of size ε along the steepest direction of the loss, from the clean point. */
async function fastGradientStep(ctx: FixedEpsilonContext, distance: NormDistance, loss: LossName, eot: number): Promise<SearchOutput> {
  const sub = subset(ctx, openRows(ctx));
  try {
    const ev = new Evaluator(ctx.model, lossObjective(loss, sub.labels, sub.targets), ctx.counter, sub.rows, eot);
    const e = await ev.withGrad(sub.x);
    const stepped = tf.tidy(() => tf.add(sub.x, tf.mul(distance.direction(e.grad), sub.eps)) as Tensor2D);
    tf.dispose([e.grad, e.value, e.scores]);
    // Rows not attacked keep their clean input (the base returns x for them anyway).
    const adversarial = scatterRows(ctx.x, sub.rows, stepped);
    stepped.dispose();
    return { adversarial };
  } finally {
    sub.dispose();
  }
}

export const FGSM_PARAMS = {
  eps: epsilonParam(0.25),
  loss: LOSS_PARAM,
  eot: EOT_PARAM,
  clip: {
    type: 'bool',
    default: true,
    doc: 'clip the result to [0,1]; false is the paper\'s mode (the ε ball only)',
  },
} as const satisfies ParamSchema;

/**
 * FGSM, the fast gradient sign method: `x' = x + ε·sign(∇_x J(x, y))`, with sign(0) = 0.
 * Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
 * Norm L∞. Defaults: ε = 0.25 (the paper's MNIST value), loss = ce, clip = true. `clip=false`
 * reproduces the paper, which never clips to [0,1]; the ε ball still holds. Targeted runs step down
 * the loss of the target label. Samples misclassified clean come back unchanged (as from every
 * attack), so an error rate over all samples counts them as errors.
 *
 * @example
 *   new LinfFgsm({ eps: 0.25, clip: false }).id; // 'fgsm:clip=false,eps=0.25,loss=ce'
 */
export class LinfFgsm extends FixedEpsilonAttack {
  readonly name = 'fgsm';
  readonly distance = Linf;
  readonly id: string;
  readonly params: ParamValues<typeof FGSM_PARAMS>;
  readonly epsilon: number;
  override readonly lossName: LossName;
  override readonly bounded: boolean;

  constructor(options: Partial<ParamValues<typeof FGSM_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, FGSM_PARAMS, options));
    this.epsilon = this.params.eps;
    this.lossName = this.params.loss;
    this.bounded = this.params.clip;
  }

  protected search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    return fastGradientStep(ctx, this.distance, this.lossName, this.params.eot);
  }
}

export const FGM_PARAMS = {
  eps: epsilonParam(2),
  loss: LOSS_PARAM,
  eot: EOT_PARAM,
} as const satisfies ParamSchema;

/**
 * FGM, the fast gradient method in L2: `x' = x + ε·∇/‖∇‖₂`, clipped to [0,1].
 * Goodfellow et al. 2015 (the L2 variant of FGSM, as in Foolbox's L2FastGradientAttack and ART).
 * Norm L2. Defaults: ε = 2, loss = ce.
 *
 * @example
 *   new L2Fgm({ eps: 1.5 }).id; // 'fgm:eps=1.5,loss=ce'
 */
export class L2Fgm extends FixedEpsilonAttack {
  readonly name = 'fgm';
  readonly distance = L2;
  readonly id: string;
  readonly params: ParamValues<typeof FGM_PARAMS>;
  readonly epsilon: number;
  override readonly lossName: LossName;

  constructor(options: Partial<ParamValues<typeof FGM_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, FGM_PARAMS, options));
    this.epsilon = this.params.eps;
    this.lossName = this.params.loss;
  }

  protected search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    return fastGradientStep(ctx, this.distance, this.lossName, this.params.eot);
  }
}
