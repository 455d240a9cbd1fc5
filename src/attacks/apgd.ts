/**
 * Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
 * diverse parameter-free attacks", ICML 2020), with the semantics of AutoAttack's
 * `autopgd_base.py`: APGD-CE, APGD-DLR and APGD-T (targeted DLR over the top-k classes).
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { Classifier, LossName } from '../models/classifier.js';
import type { GradEvaluation } from '../models/runner.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { Evaluator, objective, type Objective, type ObjectiveName } from './losses.js';
import {
  configure,
  EOT_PARAM,
  epsilonParam,
  NORM_PARAM,
  num,
  type ParamSchema,
  type ParamValue,
  type ParamValues,
  type ResolvedParams,
} from './params.js';
import { deriveSeed, Rng } from './rng.js';
import { openRows, PointKeeper, whereRows, subset, withRestarts, type RunOutcome, type Subset } from './runs.js';

/**
 * AutoAttack's checkpoints: after `at` iterations, each closing an interval of `length` iterations.
 * The first interval is `max(⌊0.22·N⌋, 1)` long, each next one `max(⌊0.03·N⌋, 1)` shorter but at
 * least `max(⌊0.06·N⌋, 1)`: the paper's `p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)` from
 * `p_0 = 0, p_1 = 0.22`, in AutoAttack's integer arithmetic.
 *
 * @example
 *   checkpointSchedule(100).map((c) => c.at); // [22, 41, 57, 70, 80, 87, 93, 99]
 */
export function checkpointSchedule(steps: number): { at: number; length: number }[] {
  const shrink = Math.max(Math.floor(0.03 * steps), 1);
  const least = Math.max(Math.floor(0.06 * steps), 1);
  const out: { at: number; length: number }[] = [];
  let length = Math.max(Math.floor(0.22 * steps), 1);
  for (let at = length; at <= steps; at += length) {
    out.push({ at, length });
    length = Math.max(length - shrink, least);
  }
  return out;
}

interface ApgdRun {
  distance: NormDistance;
  steps: number;
  rho: number;
}

/** Random start on the ε sphere (AutoAttack): a uniform cube point (L∞) or a Gaussian (L2), rescaled to norm ε. */
function sphereStart(norm: 'linf' | 'l2', sub: Subset, rng: Rng): Tensor2D {
  const [m, dim] = sub.x.shape;
  return tf.tidy(() => {
    const t = tf.tensor2d(norm === 'linf' ? rng.uniforms(m * dim, -1, 1) : rng.normals(m * dim), [m, dim]);
    const size = norm === 'linf' ? tf.max(tf.abs(t), 1, true) : tf.norm(t, 'euclidean', 1, true);
    return tf.clipByValue(tf.add(sub.x, tf.mul(sub.eps, tf.div(t, tf.add(size, 1e-12)))), 0, 1) as Tensor2D;
  });
}

/**
 * One APGD run (AutoAttack's `attack_single_run`) on a subset: momentum 0.75 after the first step,
 * initial step 2ε per sample, and at each checkpoint the step halves for a sample (which restarts
 * from its best point) when its loss rose in at most ρ·k of the last k steps, or when neither its
 * step nor its best loss changed since the previous checkpoint.
 */
async function apgdRun(
  sub: Subset,
  ev: Evaluator,
  o: ApgdRun,
  rng: Rng,
  project: (x0: Tensor2D, x: Tensor2D, eps: Tensor2D) => Tensor2D,
): Promise<RunOutcome> {
  const m = sub.x.shape[0];
  const checkpoints = new Map(checkpointSchedule(o.steps).map((c) => [c.at, c.length]));
  // Every tensor is made inside the try, and each awaited model call frees its own input if it throws.
  const keeper = new PointKeeper(sub.x);
  // Assigned at the run's start inside the try; unset only if that start threw.
  let state!: ApgdState;
  const replace = (next: ApgdState): void => {
    const keep = new Set(Object.values(next).map((t) => t.id));
    tf.dispose(Object.values(state).filter((t) => !keep.has(t.id)));
    state = next;
  };
  try {
    const x0 = tf.tidy(() => sphereStart(o.distance.name === 'l2' ? 'l2' : 'linf', sub, rng));
    const e0 = await evaluateOwning(ev, x0);
    state = tf.tidy(() => startState(sub, x0, e0, m));
    e0.scores.dispose();
    keeper.offer(state.x, state.adversarial, state.loss);
    for (let i = 0; i < o.steps && !(await keeper.allFound()); i++) {
      const a = i > 0 ? 0.75 : 1;
      const x = tf.tidy(() => {
        const s = state;
        const z = project(sub.x, tf.add(s.x, tf.mul(s.step, o.distance.direction(s.grad))) as Tensor2D, sub.eps);
        const moved = tf.add(tf.add(s.x, tf.mul(tf.sub(z, s.x), a)), tf.mul(tf.sub(s.x, s.xOld), 1 - a)) as Tensor2D;
        return project(sub.x, moved, sub.eps);
      });
      const e = await evaluateOwning(ev, x);
      replace(
        tf.tidy(() => {
          const s = state;
          const improved = tf.greater(e.value, s.lossBest);
          const col = improved.reshape([-1, 1]);
          return {
            ...s,
            x,
            xOld: s.x,
            grad: e.grad,
            loss: e.value,
            adversarial: sub.criterion.isAdversarial(e.scores),
            xBest: whereRows(col, x, s.xBest),
            gradBest: whereRows(col, e.grad, s.gradBest),
            lossBest: tf.where(improved, e.value, s.lossBest) as Tensor1D,
            rises: tf.add(s.rises, tf.cast(tf.greater(e.value, s.loss), 'float32')) as Tensor1D,
          };
        }),
      );
      // The state keeps x, the value and the gradient; the scores were read for the verdict only.
      e.scores.dispose();
      keeper.offer(state.x, state.adversarial, state.loss);
      const k = checkpoints.get(i + 1);
      if (k === undefined) continue;
      replace(
        tf.tidy(() => {
          const s = state;
          const oscillating = tf.lessEqual(s.rises, k * o.rho);
          const stalled = tf.logicalAnd(tf.logicalNot(s.reducedLast), tf.greaterEqual(s.lossBestLast, s.lossBest));
          const reduce = tf.logicalOr(oscillating, stalled) as Tensor1D;
          const col = reduce.reshape([-1, 1]);
          return {
            ...s,
            step: tf.where(col, tf.mul(s.step, 0.5), s.step) as Tensor2D,
            x: whereRows(col, s.xBest, s.x),
            grad: whereRows(col, s.gradBest, s.grad),
            rises: tf.zeros([m]) as Tensor1D,
            reducedLast: reduce,
            lossBestLast: s.lossBest,
          };
        }),
      );
    }
    return await keeper.outcome();
  } finally {
    if (state !== undefined) tf.dispose(Object.values(state));
    keeper.dispose();
  }
}

/** The state of a run at its random start `x` (with its evaluation `e`). */
function startState(sub: Subset, x: Tensor2D, e: GradEvaluation, m: number) {
  return {
    x,
    xOld: x,
    grad: e.grad,
    loss: e.value,
    adversarial: sub.criterion.isAdversarial(e.scores),
    xBest: x,
    gradBest: e.grad,
    lossBest: e.value,
    step: tf.mul(sub.eps, 2) as Tensor2D,
    rises: tf.zeros([m]) as Tensor1D,
    reducedLast: tf.ones([m], 'bool') as Tensor1D,
    lossBestLast: e.value,
  };
}

type ApgdState = ReturnType<typeof startState>;

/** `ev.withGrad(x)`; if it throws, `x` (not yet anyone else's) is disposed. */
async function evaluateOwning(ev: Evaluator, x: Tensor2D): Promise<GradEvaluation> {
  try {
    return await ev.withGrad(x);
  } catch (e) {
    x.dispose();
    throw e;
  }
}

export const APGD_PARAMS = {
  norm: NORM_PARAM,
  eps: epsilonParam(),
  steps: { type: 'int', min: 1, max: 100_000, default: 100, doc: 'iterations per run' },
  restarts: { type: 'int', min: 1, max: 1000, default: 1, doc: 'runs from random starts, each on the samples still robust' },
  rho: { type: 'number', min: 0, max: 1, default: 0.75, doc: 'ρ: the step halves when the loss rose in at most ρ·k of k steps' },
  eot: EOT_PARAM,
} as const satisfies ParamSchema;

export const APGD_CE_PARAMS = {
  ...APGD_PARAMS,
  loss: {
    type: 'enum',
    values: ['ce', 'model'],
    default: 'ce',
    doc: 'ce (APGD-CE), or model: APGD on the family\'s own loss (adaptive)',
  },
} as const satisfies ParamSchema;

export const APGD_T_PARAMS = {
  ...APGD_PARAMS,
  targets: { type: 'int', min: 1, max: 999, default: 9, doc: 'target classes: the k highest-scoring wrong classes, one APGD run each' },
} as const satisfies ParamSchema;

/** Shared by the three APGD attacks: the norm, the runs and the restarts. */
abstract class Apgd<S extends typeof APGD_PARAMS> extends FixedEpsilonAttack {
  readonly id: string;
  readonly params: ParamValues<S>;
  readonly epsilon: number;
  readonly distance: NormDistance;
  private readonly run1: ApgdRun;
  private readonly restarts: number;

  constructor(name: string, schema: S, options: Readonly<Partial<Record<keyof S & string, ParamValue>>>) {
    super();
    ({ params: this.params, id: this.id } = configure(name, schema, options));
    const p: ResolvedParams = this.params;
    this.epsilon = num(p, 'eps');
    this.distance = p.norm === 'l2' ? L2 : Linf;
    this.restarts = num(p, 'restarts');
    this.run1 = { distance: this.distance, steps: num(p, 'steps'), rho: num(p, 'rho') };
  }

  /** The least number of classes the loss needs, checked before any work. */
  protected requireClasses(model: Pick<Classifier, 'id' | 'numClasses'>, least: number, why: string): void {
    if (model.numClasses < least) throw Errors.attackUnsupported(this.id, model.id, `${why} needs at least ${least} classes, the model has ${model.numClasses}`);
  }

  /** `restarts` APGD runs of `objective(sub)` on `rows` (default: every open row). */
  protected restarted(
    ctx: FixedEpsilonContext,
    objective: (sub: Subset) => Objective,
    seedPath: number,
    rows?: Int32Array,
  ): Promise<{ adversarial: Tensor2D; found: Uint8Array }> {
    return withRestarts(
      ctx,
      this.restarts,
      async (subRows, restart) => {
        const sub = subset(ctx, subRows);
        try {
          const ev = new Evaluator(ctx.model, objective(sub), ctx.counter, subRows, num(this.params, 'eot'));
          const rng = new Rng(deriveSeed(ctx.seed, seedPath, restart));
          return await apgdRun(sub, ev, this.run1, rng, (x0, x, eps) => this.project(x0, x, eps));
        } finally {
          sub.dispose();
        }
      },
      rows,
    );
  }
}

function objectiveFor(loss: ObjectiveName, sub: Subset): Objective {
  return objective(loss, sub.labels, sub.targets);
}

/**
 * APGD-CE: Auto-PGD on the cross-entropy (or, with `loss=model`, on the family's own loss).
 * Croce & Hein, ICML 2020; AutoAttack's first stage. Norm L∞ or L2. Defaults: ε = 0.3 (L∞) / 2
 * (L2), 100 steps, 1 restart, ρ = 0.75, momentum 0.75, initial step 2ε, checkpoints at 22% of the
 * steps, then intervals shrinking by 3% to at least 6%. Targeted runs descend the target's CE.
 * Differences from AutoAttack, on purpose: the first checkpoint counts loss rises from the random
 * start (AutoAttack compares its first step with a zero in its loss buffer); per sample the first
 * adversarial iterate is returned (AutoAttack keeps the last); the run stops once every sample of
 * the batch is broken (the kept points do not change).
 *
 * @example
 *   new ApgdCe({ eps: 0.3 }).id; // 'apgd-ce:eps=0.3,loss=ce,norm=linf,restarts=1,rho=0.75,steps=100'
 */
export class ApgdCe extends Apgd<typeof APGD_CE_PARAMS> {
  readonly name = 'apgd-ce';
  override readonly lossName: LossName;

  constructor(options: Partial<ParamValues<typeof APGD_CE_PARAMS>> = {}) {
    super('apgd-ce', APGD_CE_PARAMS, options);
    this.lossName = this.params.loss;
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const loss = this.params.loss;
    const { adversarial } = await this.restarted(ctx, (sub) => objectiveFor(loss, sub), 0);
    return { adversarial };
  }
}

/**
 * APGD-DLR: Auto-PGD on the untargeted DLR loss `−(z_y − max_{i≠y} z_i)/(z_π1 − z_π3)`, invariant
 * to shifts and scales of the scores. Croce & Hein, ICML 2020. Norm L∞ or L2. Defaults as
 * {@link ApgdCe}. Needs at least 3 classes (4 for a targeted run, which uses the targeted DLR with
 * the given targets).
 *
 * @example
 *   new ApgdDlr({ eps: 0.3 }).id; // 'apgd-dlr:eps=0.3,norm=linf,restarts=1,rho=0.75,steps=100'
 */
export class ApgdDlr extends Apgd<typeof APGD_PARAMS> {
  readonly name = 'apgd-dlr';

  constructor(options: Partial<ParamValues<typeof APGD_PARAMS>> = {}) {
    super('apgd-dlr', APGD_PARAMS, options);
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const targeted = ctx.targets !== undefined;
    this.requireClasses(ctx.model, targeted ? 4 : 3, targeted ? 'the targeted DLR loss' : 'the DLR loss');
    const { adversarial } = await this.restarted(ctx, (sub) => objectiveFor(targeted ? 'dlr-targeted' : 'dlr', sub), 0);
    return { adversarial };
  }
}

/**
 * APGD-T: Auto-PGD on the targeted DLR loss `−(z_y − z_t)/(z_π1 − ½(z_π3 + z_π4))`, AutoAttack's
 * second stage. For each of the `targets` highest-scoring wrong classes at the clean input (rank 2,
 * 3, ...; at most C−1), one APGD run on the samples still robust; success is misclassification.
 * Given explicit targets (a targeted run), one run toward them, and success is hitting the target.
 * Croce & Hein, ICML 2020. Norm L∞ or L2. Defaults: as {@link ApgdCe}, targets = 9. Needs at least
 * 4 classes.
 *
 * @example
 *   new ApgdT({ eps: 0.3 }).id; // 'apgd-t:eps=0.3,norm=linf,restarts=1,rho=0.75,steps=100,targets=9'
 */
export class ApgdT extends Apgd<typeof APGD_T_PARAMS> {
  readonly name = 'apgd-t';

  constructor(options: Partial<ParamValues<typeof APGD_T_PARAMS>> = {}) {
    super('apgd-t', APGD_T_PARAMS, options);
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    this.requireClasses(ctx.model, 4, 'the targeted DLR loss');
    if (ctx.targets) {
      const { adversarial } = await this.restarted(ctx, (sub) => objectiveFor('dlr-targeted', sub), 0);
      return { adversarial };
    }
    const [count, dim] = ctx.x.shape;
    const clean = await ctx.model.scores(ctx.x);
    const ranked = tf.tidy(() => tf.topk(clean, ctx.model.numClasses).indices);
    clean.dispose();
    const order = Int32Array.from(await ranked.data());
    ranked.dispose();
    const classes = ctx.model.numClasses;
    const points = Float32Array.from(await ctx.x.data());
    const found = new Uint8Array(count);
    let open = openRows(ctx);
    const stages = Math.min(this.params.targets, classes - 1);
    for (let rank = 1; rank <= stages && open.length > 0; rank++) {
      // AutoAttack's targets: the class at this rank of the clean scores (the top class is the label).
      const stageTargets = tf.tensor1d(Int32Array.from({ length: count }, (_, i) => order[i * classes + rank]!), 'int32');
      try {
        // The criterion stays misclassification: the targets steer only the loss.
        const run = await this.restarted({ ...ctx, targets: stageTargets }, (sub) => objectiveFor('dlr-targeted', sub), rank, open);
        const stagePoints = await run.adversarial.data();
        run.adversarial.dispose();
        for (const row of open) {
          if (!run.found[row]) continue;
          found[row] = 1;
          points.set(stagePoints.subarray(row * dim, (row + 1) * dim), row * dim);
        }
        open = Int32Array.from([...open].filter((row) => !found[row]));
      } finally {
        stageTargets.dispose();
      }
    }
    return { adversarial: tf.tensor2d(points, [count, dim]) };
  }
}
