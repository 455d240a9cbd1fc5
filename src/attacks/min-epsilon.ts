/** The minimal ε per sample, from any fixed-ε attack (bisection) or minimization attack (its norm). */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import {
  FixedEpsilonAttack,
  MinimizationAttack,
  normsOf,
  type Attack,
  type AttackResult,
  type SearchContext,
  type SearchOutput,
} from './base.js';
import { canonicalSpec, num, resolveParams, splitSpec, type ParamSchema, type ParamValues } from './params.js';
import { deriveSeed } from './rng.js';
import { openRows } from './runs.js';

export const MIN_EPSILON_PARAMS = {
  attack: { type: 'string', default: 'pgd', doc: 'the attack whose minimal ε is sought; its own parameters sit beside these' },
  max: {
    type: 'number',
    min: 0,
    max: 1000,
    exclusiveMin: true,
    default: (p) => ({ l2: 10, l1: 100, l0: 784 })[String(p.distance)] ?? 1,
    doc: 'largest ε tried by bisection (default 1 for L∞, 10 for L2, 100 for L1, 784 pixels for L0)',
  },
  tol: {
    type: 'number',
    min: 0,
    max: 1000,
    exclusiveMin: true,
    default: (p) => num(p, 'max') / 200,
    doc: 'bisection stops when the ε interval is this narrow (default max/200)',
  },
} as const satisfies ParamSchema;

/**
 * Minimal ε: per sample, the smallest ε at which an attack succeeds, so that one pass yields the
 * whole robust-accuracy-versus-ε curve (robust accuracy at ε = the fraction with minimal ε > ε).
 * With a fixed-ε attack: run it at `max`, then bisect ε per sample until the bracket is narrower
 * than `tol` (`⌈log2(max/tol)⌉` more runs), each run only on the samples still bracketed; the
 * result is the upper end of the bracket, where the attack is known to succeed, and the point it
 * found there. Bisection assumes success is monotone in ε, which attacks only approximately are.
 * The attack keeps its step-to-ε ratio at every ε. With a minimization attack (cw, deepfool,
 * dam-boundary, fab, fab-t, hsj): one run, and the norm of each successful perturbation in the
 * attack's distance (`max` and `tol` are then unused). 0 for samples misclassified clean; Infinity
 * where the attack never succeeds. Defaults: attack = pgd, max = 1 (L∞) / 10 (L2) / 100 (L1) / 784 (L0), tol = max/200.
 *
 * @example
 *   parseAttackSpec('mineps:attack=pgd,steps=20,max=1,tol=0.005').id;
 *   // 'mineps:attack=pgd,eps=0.3,loss=ce,max=1,norm=linf,random=true,restarts=1,step=0.0375,steps=20,tol=0.005'
 */
export class MinimalEpsilon extends MinimizationAttack {
  readonly name = 'mineps';
  readonly id: string;
  readonly params: ParamValues<typeof MIN_EPSILON_PARAMS>;
  readonly distance: Attack['distance'];
  override get gradientFree(): boolean {
    return this.inner.gradientFree;
  }

  constructor(
    readonly inner: Attack,
    options: Partial<Omit<ParamValues<typeof MIN_EPSILON_PARAMS>, 'attack'>> = {},
  ) {
    super();
    this.params = resolveParams(this.name, MIN_EPSILON_PARAMS, { ...options, attack: inner.name }, { distance: inner.distance.name });
    // The inner attack's id names its parameters (implicit ones at their default left out).
    this.id = canonicalSpec(this.name, { ...Object.fromEntries(splitSpec(inner.id).raw), ...this.params });
    this.distance = inner.distance;
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const minEpsilon = new Float32Array(count);
    const points = Float32Array.from(await ctx.x.data());
    const rows = openRows(ctx);
    const accept = (sub: Int32Array, res: AttackResult, eps?: Float32Array): void => {
      sub.forEach((row, i) => {
        ctx.counter.gradients[row]! += res.gradients[i]!;
        ctx.counter.forwards[row]! += res.forwards[i]!;
        if (eps && !res.success[i]) return;
        points.set(res.adversarial.subarray(i * dim, (i + 1) * dim), row * dim);
        const size = normsOf(res, this.distance.name)[i]!;
        minEpsilon[row] = res.success[i] ? (eps ? eps[i]! : size) : Infinity;
      });
    };
    if (!(this.inner instanceof FixedEpsilonAttack)) {
      accept(rows, await this.runOn(ctx, rows, 0));
      return { adversarial: tf.tensor2d(points, [count, dim]), minEpsilon };
    }
    const { max, tol } = this.params;
    const first = await this.runOn(ctx, rows, 0, new Float32Array(rows.length).fill(max));
    rows.forEach((row, i) => {
      if (first.success[i]) return;
      minEpsilon[row] = Infinity;
      // The failed point at max still tells how far the attack got.
      points.set(first.adversarial.subarray(i * dim, (i + 1) * dim), row * dim);
    });
    accept(rows, first, new Float32Array(rows.length).fill(max));
    let bracketed = Int32Array.from([...rows].filter((_, i) => first.success[i]));
    const lower = new Float32Array(count);
    const upper = new Float32Array(count).fill(max);
    const rounds = max > tol ? Math.ceil(Math.log2(max / tol)) : 0;
    for (let r = 1; r <= rounds && bracketed.length > 0; r++) {
      const mid = Float32Array.from(bracketed, (row) => (lower[row]! + upper[row]!) / 2);
      const res = await this.runOn(ctx, bracketed, r, mid);
      accept(bracketed, res, mid);
      bracketed.forEach((row, i) => {
        if (res.success[i]) upper[row] = mid[i]!;
        else lower[row] = mid[i]!;
      });
    }
    return { adversarial: tf.tensor2d(points, [count, dim]), minEpsilon };
  }

  /** One run of the wrapped attack on some rows, at per-row ε when given. */
  private async runOn(ctx: SearchContext, rows: Int32Array, round: number, epsilons?: Float32Array): Promise<AttackResult> {
    const index = tf.tensor1d(rows, 'int32');
    const x = tf.gather(ctx.x, index) as Tensor2D;
    const labels = tf.gather(ctx.labels, index) as Tensor1D;
    const targets = ctx.targets ? (tf.gather(ctx.targets, index) as Tensor1D) : undefined;
    index.dispose();
    try {
      const options = { seed: deriveSeed(ctx.seed, round), ...(targets ? { targets } : {}) };
      return this.inner instanceof FixedEpsilonAttack
        ? await this.inner.run(ctx.model, x, labels, { ...options, ...(epsilons ? { epsilons } : {}) })
        : await this.inner.run(ctx.model, x, labels, options);
    } finally {
      tf.dispose([x, labels, ...(targets ? [targets] : [])]);
    }
  }
}
