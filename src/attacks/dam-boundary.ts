/**
 * The boundary attack of the Dense Associative Memory paper (Krotov & Hopfield, "Dense Associative
 * Memory is Robust to Adversarial Inputs", Neural Computation 2018), as seeds-spec 1.7 states it.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import type { LossName } from '../models/classifier.js';
import { MinimizationAttack, type SearchContext, type SearchOutput } from './base.js';
import { Linf } from './distances.js';
import { Evaluator, lossObjective } from './losses.js';
import { configure, type ParamSchema, type ParamValues } from './params.js';
import { openRows, rowsWhere, scatterRows, subset, whereRows } from './runs.js';

export const DAM_BOUNDARY_PARAMS = {
  step: {
    type: 'number',
    min: 0,
    max: 1,
    exclusiveMin: true,
    default: 0.005,
    doc: 'η in [0,1] pixel units: the largest pixel change per step (0.005 is the spec\'s 0.01 in DAM\'s [−1,1] units)',
  },
  steps: { type: 'int', min: 1, max: 1_000_000, default: 1000, doc: 'step limit; a sample that has not crossed by then fails' },
  loss: {
    type: 'enum',
    values: ['model', 'ce'],
    default: 'model',
    doc: 'loss descended toward the target: model (the family\'s own, as in the paper) or ce',
  },
} as const satisfies ParamSchema;

/**
 * DAM boundary attack: normalised gradient steps `x ← clip(x − η·g/max|g|, 0, 1)` descending the
 * loss of a target class τ (default: the second-highest score at the clean input; a targeted run's
 * targets otherwise), where `g = ∇_x loss(x; τ)`, stopping per sample at the first step at which
 * the criterion holds: the prediction has just left the label (targeted run: just reached the
 * target). The returned images therefore sit just past the decision boundary, the paper's
 * "images poised at the decision boundary". A sample still unbroken at the step limit fails and
 * returns its last iterate. Krotov & Hopfield 2018; protocol of seeds-spec 1.7 (the paper's exact
 * rule is not public). Norm L∞ (each step moves every pixel by at most η). Defaults: η = 0.005 in
 * [0,1] units (0.01 in DAM's [−1,1] units), 1000 steps, loss = model. The max-normalisation keeps
 * the step usable when high-power models make gradients tiny; a gradient that is exactly 0 stalls.
 *
 * @example
 *   new LinfDamBoundary({ step: 0.01 }).id; // 'dam-boundary:loss=model,step=0.01,steps=1000'
 */
export class LinfDamBoundary extends MinimizationAttack {
  readonly name = 'dam-boundary';
  readonly distance = Linf;
  readonly id: string;
  readonly params: ParamValues<typeof DAM_BOUNDARY_PARAMS>;
  override readonly lossName: LossName;

  constructor(options: Partial<ParamValues<typeof DAM_BOUNDARY_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, DAM_BOUNDARY_PARAMS, options));
    this.lossName = this.params.loss;
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const { step, steps } = this.params;
    const rows = openRows(ctx);
    const sub = subset(ctx, rows);
    let goal = sub.targets;
    if (!goal) {
      const clean = await ctx.model.scores(sub.x);
      goal = tf.tidy(() => tf.topk(clean, 2).indices.slice([0, 1], [-1, 1]).reshape([-1]) as Tensor1D);
      clean.dispose();
    }
    let x = tf.clone(sub.x);
    try {
      let active = Int32Array.from(rows.keys());
      for (let k = 0; k < steps && active.length > 0; k++) {
        const index = tf.tensor1d(active, 'int32');
        const global = Int32Array.from(active, (i) => rows[i]!);
        const labels = tf.gather(sub.labels, index) as Tensor1D;
        const targets = tf.gather(goal, index) as Tensor1D;
        const ev = new Evaluator(ctx.model, lossObjective(this.lossName, labels, targets), ctx.counter, global);
        const xa = tf.tidy(() => tf.gather(x, index) as Tensor2D);
        const e = await ev.withGrad(xa);
        const out = tf.tidy(() => {
          const predicted = tf.argMax(e.scores, 1);
          const crossed = sub.criterion.kind === 'targeted' ? tf.equal(predicted, targets) : tf.notEqual(predicted, labels);
          // The objective is −loss(x; τ): ascending it is the spec's descent on the loss.
          const peak = tf.maximum(tf.max(tf.abs(e.grad), 1, true), 1e-30);
          const stepped = tf.clipByValue(tf.add(xa, tf.mul(tf.div(e.grad, peak), step)), 0, 1);
          return { crossed, x: scatterRows(x, active, whereRows(crossed, xa, stepped as Tensor2D)) };
        });
        const crossed = Uint8Array.from(await out.crossed.data());
        tf.dispose([index, labels, targets, out.crossed, x, xa, e.value, e.grad, e.scores]);
        x = out.x;
        active = Int32Array.from(rowsWhere(crossed, 0), (i) => active[i]!);
      }
      return { adversarial: scatterRows(ctx.x, rows, x) };
    } finally {
      x.dispose();
      if (goal !== sub.targets) goal.dispose();
      sub.dispose();
    }
  }
}
