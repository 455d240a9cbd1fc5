/**
 * FAB, the fast adaptive boundary attack (Croce & Hein, "Minimally distorted adversarial examples
 * with a fast adaptive boundary attack", ICML 2020), untargeted and targeted (FAB-T, AutoAttack's
 * third stage), in L∞, L2 and L1, with the semantics of AutoAttack's `fab_pt.py`.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import { MinimizationAttack, type SearchContext, type SearchOutput } from './base.js';
import { L1, L2, Linf, type NormDistance } from './distances.js';
import { Evaluator } from './losses.js';
import { configure, epsilonParam, type ParamSchema, type ParamValues } from './params.js';
import { deriveSeed, Rng } from './rng.js';
import { openRows, subset, whereRows, type Subset } from './runs.js';

type FabNorm = 'linf' | 'l2' | 'l1';

/** Halvings of each bisection in the box-constrained projections: far below float32 resolution. */
const BISECTIONS = 40;

/**
 * The smallest perturbation `d` (in the norm) with `w·(p + d) = c` and `p + d` in [0,1], per row;
 * where the hyperplane lies beyond the box, the perturbation that goes as far toward it as the box
 * allows. `p`, `w` `[n, D]`, `c` `[n, 1]`. FAB's `projection_linf`, `projection_l2` and
 * `projection_l1` (the box-constrained projections of the paper's Section 3), solved per row: by
 * bisection on the L∞ radius, on the L2 multiplier of `d = clip(λw)`, and greedily (a fractional
 * knapsack over the coordinates by |w|) for L1.
 */
export function boxProjection(norm: FabNorm, p: Tensor2D, w: Tensor2D, c: Tensor2D): Tensor2D {
  return tf.tidy(() => {
    const r = tf.sub(c, tf.sum(tf.mul(w, p), 1, true));
    // Oriented so that the distance to cover, r, is ≥ 0: then d moves along sign(w) everywhere.
    const flip = tf.sub(tf.mul(tf.cast(tf.greaterEqual(r, 0), 'float32'), 2), 1);
    const v = tf.mul(w, flip);
    const need = tf.abs(r);
    const up = tf.greater(v, 0);
    const dir = tf.sub(tf.cast(up, 'float32'), tf.cast(tf.less(v, 0), 'float32'));
    const room = tf.where(up, tf.sub(1, p), p);
    const size = tf.abs(v);
    if (norm === 'l1') return l1Fill(size, room, need, dir);
    const reach = (scale: tf.Tensor): tf.Tensor => tf.sum(tf.mul(size, scale), 1, true);
    if (norm === 'linf') {
      let lo: tf.Tensor = tf.zerosLike(need);
      let hi: tf.Tensor = tf.onesLike(need);
      for (let i = 0; i < BISECTIONS; i++) {
        const mid = tf.div(tf.add(lo, hi), 2);
        const ok = tf.greaterEqual(reach(tf.minimum(tf.mul(mid, tf.onesLike(room)), room)), need);
        hi = tf.where(ok, mid, hi);
        lo = tf.where(ok, lo, mid);
      }
      return tf.mul(dir, tf.minimum(tf.mul(hi, tf.onesLike(room)), room)) as Tensor2D;
    }
    // L2: d = clip(λ·w) into the box; λ lies between the unconstrained answer and full saturation.
    const ratio = tf.where(tf.greater(size, 0), tf.div(room, tf.maximum(size, 1e-30)), tf.zerosLike(size));
    const lambda0 = tf.div(need, tf.maximum(tf.sum(tf.square(size), 1, true), 1e-30));
    let lo: tf.Tensor = tf.log(tf.maximum(lambda0, 1e-30));
    let hi: tf.Tensor = tf.log(tf.maximum(tf.maximum(tf.max(ratio, 1, true), lambda0), 1e-30));
    const at = (logLambda: tf.Tensor): tf.Tensor => tf.minimum(tf.mul(tf.exp(logLambda), size), room);
    for (let i = 0; i < BISECTIONS; i++) {
      const mid = tf.div(tf.add(lo, hi), 2);
      const ok = tf.greaterEqual(reach(at(mid)), need);
      hi = tf.where(ok, mid, hi);
      lo = tf.where(ok, lo, mid);
    }
    return tf.mul(dir, at(hi)) as Tensor2D;
  });
}

/**
 * `out[i][j] = t[i][index[i][j]]`, through a flat gather: WASM's GatherV2 with batchDims = 1
 * returns wrong rows.
 */
function gatherInRows(t: tf.Tensor, index: tf.Tensor): tf.Tensor {
  const [n, dim] = t.shape as [number, number];
  const offsets = tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(dim, 'int32')).reshape([n, 1]);
  return tf.gather(t.reshape([-1]), tf.add(index, offsets).reshape([-1])).reshape([n, dim]);
}

/** L1: fill the coordinates of largest |w| up to the box, in order, until `need` is covered. */
function l1Fill(size: tf.Tensor, room: tf.Tensor, need: tf.Tensor, dir: tf.Tensor): Tensor2D {
  const dim = size.shape[1]!;
  const { values: sorted, indices } = tf.topk(size, dim);
  const roomSorted = gatherInRows(room, indices);
  const gain = tf.mul(sorted, roomSorted);
  const before = tf.sub(tf.cumsum(gain, 1), gain);
  const fill = tf.where(
    tf.greater(sorted, 0),
    tf.minimum(tf.maximum(tf.div(tf.sub(need, before), tf.maximum(sorted, 1e-30)), 0), roomSorted),
    tf.zerosLike(sorted),
  );
  // The inverse permutation of the sort: the order of the sort's indices.
  const inverse = tf.topk(tf.neg(tf.cast(indices, 'float32')), dim).indices;
  return tf.mul(dir, gatherInRows(fill, inverse)) as Tensor2D;
}

/** The distance of each perturbation in the norm (`[n, 1]`). */
function normOf(norm: FabNorm, d: tf.Tensor): tf.Tensor {
  if (norm === 'linf') return tf.max(tf.abs(d), 1, true);
  if (norm === 'l2') return tf.norm(d, 'euclidean', 1, true);
  return tf.sum(tf.abs(d), 1, true);
}

/** The dual norm of the gradients, which turns a linearised margin into a distance. */
function dualNorm(norm: FabNorm, g: tf.Tensor): tf.Tensor {
  if (norm === 'linf') return tf.sum(tf.abs(g), 1);
  if (norm === 'l2') return tf.norm(g, 'euclidean', 1);
  return tf.max(tf.abs(g), 1);
}

interface FabRun {
  norm: FabNorm;
  distance: NormDistance;
  steps: number;
  alphaMax: number;
  eta: number;
  beta: number;
}

/** One FAB run's answer per row: its smallest adversarial point, or the clean one, and that norm. */
interface FabOutcome {
  points: Float32Array;
  /** Infinity where no adversarial point was found. */
  norms: Float32Array;
}

/**
 * One FAB run (`attack_single_run`): at each step linearise the margin of the chosen class (the
 * nearest linearised boundary, or the target), project both the iterate and the clean point onto
 * that boundary within the box, and move to the convex combination `(x + η d₁)(1 − α) + (x₀ +
 * η d₂)α` with `α = min(‖d₁‖/(‖d₁‖ + ‖d₂‖), α_max)`; an adversarial iterate is kept if smaller
 * than the best so far and pulled back to `x₀ + β(x − x₀)`.
 */
async function fabRun(ctx: SearchContext, sub: Subset, o: FabRun, start: Tensor2D): Promise<FabOutcome> {
  const m = sub.x.shape[0];
  const classes = ctx.model.numClasses;
  const rows = sub.rows;
  let x1 = tf.clone(start);
  let best = tf.clone(sub.x);
  let bestNorm = tf.fill([m], Infinity) as Tensor1D;
  const own = tf.tidy(() => tf.oneHot(sub.labels, classes).cast('float32') as Tensor2D);
  // The classes whose boundaries are linearised: the target, or every other class (label + j mod C).
  const others = tf.tidy(() =>
    sub.targets
      ? [tf.sub(tf.oneHot(sub.targets, classes).cast('float32'), own) as Tensor2D]
      : Array.from({ length: classes - 1 }, (_, j) =>
          tf.sub(tf.oneHot(tf.mod(tf.add(sub.labels, tf.scalar(j + 1, 'int32')), tf.scalar(classes, 'int32')) as Tensor1D, classes).cast('float32'), own) as Tensor2D,
        ),
  );
  try {
    for (let step = 0; step < o.steps; step++) {
      const evaluated: { value: Tensor1D; grad: Tensor2D }[] = [];
      try {
        for (const diff of others) {
          const ev = new Evaluator(ctx.model, { kind: 'scores', fn: (s) => tf.sum(tf.mul(s, diff), 1) as Tensor1D }, ctx.counter, rows);
          const e = await ev.withGrad(x1);
          e.scores.dispose();
          evaluated.push({ value: e.value, grad: e.grad });
        }
        const next = tf.tidy(() => {
          const values = tf.stack(evaluated.map((e) => e.value));
          const dist = tf.div(tf.abs(values), tf.add(tf.stack(evaluated.map((e) => dualNorm(o.norm, e.grad))), 1e-12));
          // oneHot needs a depth of 2 or more: a single candidate (FAB-T) is simply taken.
          const choice = evaluated.length === 1 ? tf.ones([m, 1]) : tf.oneHot(tf.argMin(dist, 0), evaluated.length).cast('float32');
          const pick = (j: number): Tensor2D => choice.slice([0, j], [-1, 1]) as Tensor2D;
          let w = tf.zerosLike(x1) as Tensor2D;
          let df = tf.zeros([m, 1]) as Tensor2D;
          evaluated.forEach((e, j) => {
            w = tf.add(w, tf.mul(pick(j), e.grad)) as Tensor2D;
            df = tf.add(df, tf.mul(pick(j), e.value.reshape([-1, 1]))) as Tensor2D;
          });
          // The linearised boundary: w·z = w·x₁ − df.
          const c = tf.sub(tf.sum(tf.mul(w, x1), 1, true), df) as Tensor2D;
          const d = boxProjection(o.norm, tf.concat([x1, sub.x], 0) as Tensor2D, tf.concat([w, w], 0) as Tensor2D, tf.concat([c, c], 0) as Tensor2D);
          const [d1, d2] = tf.split(d, 2, 0) as [Tensor2D, Tensor2D];
          const a1 = normOf(o.norm, d1);
          const a2 = normOf(o.norm, d2);
          const alpha = tf.minimum(tf.maximum(tf.div(a1, tf.add(tf.add(a1, a2), 1e-12)), 0), o.alphaMax);
          const moved = tf.add(tf.mul(tf.add(x1, tf.mul(d1, o.eta)), tf.sub(1, alpha)), tf.mul(tf.add(sub.x, tf.mul(d2, o.eta)), alpha));
          return tf.clipByValue(moved, 0, 1) as Tensor2D;
        });
        x1.dispose();
        x1 = next;
      } finally {
        tf.dispose(evaluated.flatMap((e) => [e.value, e.grad]));
      }
      ctx.counter.add('forwards', rows);
      const scores = await ctx.model.scores(x1);
      const updated = tf.tidy(() => {
        const adversarial = sub.criterion.isAdversarial(scores);
        const size = o.distance.measure(sub.x, x1);
        const smaller = tf.logicalAnd(adversarial, tf.less(size, bestNorm));
        return {
          best: whereRows(smaller, x1, best),
          bestNorm: tf.where(smaller, size, bestNorm) as Tensor1D,
          x1: whereRows(adversarial, tf.add(sub.x, tf.mul(tf.sub(x1, sub.x), o.beta)) as Tensor2D, x1),
        };
      });
      scores.dispose();
      tf.dispose([best, bestNorm, x1]);
      ({ best, bestNorm, x1 } = updated);
    }
    return { points: Float32Array.from(await best.data()), norms: Float32Array.from(await bestNorm.data()) };
  } finally {
    tf.dispose([x1, best, bestNorm, own, ...others]);
  }
}

/** A restart's start: the clean point moved by half of min(best norm, ε) along a random direction. */
function restartPoint(norm: FabNorm, sub: Subset, radius: Float32Array, rng: Rng): Tensor2D {
  const [m, dim] = sub.x.shape;
  return tf.tidy(() => {
    const t = tf.tensor2d(norm === 'linf' ? rng.uniforms(m * dim, -1, 1) : rng.normals(m * dim), [m, dim]);
    const scaled = tf.div(t, tf.add(normOf(norm, t), 1e-12));
    return tf.clipByValue(tf.add(sub.x, tf.mul(scaled, tf.mul(tf.tensor2d(radius, [m, 1]), 0.5))), 0, 1) as Tensor2D;
  });
}

export const FAB_PARAMS = {
  norm: { type: 'enum', values: ['linf', 'l2', 'l1'], default: 'linf', doc: 'norm of the perturbation it minimises' },
  steps: { type: 'int', min: 1, max: 100_000, default: 100, doc: 'iterations per run' },
  restarts: { type: 'int', min: 1, max: 1000, default: 1, doc: 'runs; each after the first starts at a random point near the clean one' },
  eps: { ...epsilonParam(), doc: 'ε (AutoAttack\'s): each restart after the first starts within min(best norm, ε)/2 of the clean input' },
  alpha: { type: 'number', min: 0, max: 1, default: 0.1, doc: 'α_max: the largest weight of the clean point\'s projection in a step' },
  eta: { type: 'number', min: 1, max: 10, default: 1.05, doc: 'η: extrapolation of each projection step past the boundary' },
  beta: { type: 'number', min: 0, max: 1, exclusiveMin: true, default: 0.9, doc: 'β: backward step toward the clean point after an adversarial iterate' },
} as const satisfies ParamSchema;

export const FAB_T_PARAMS = {
  ...FAB_PARAMS,
  targets: { type: 'int', min: 1, max: 999, default: 9, doc: 'target classes: the k highest-scoring wrong classes, one run each' },
} as const satisfies ParamSchema;

/** The shared machinery of FAB and FAB-T: parameters, restarts, and keeping the smallest adversarial. */
abstract class FabBase<S extends typeof FAB_PARAMS> extends MinimizationAttack {
  readonly id: string;
  readonly params: ParamValues<S>;
  readonly distance: NormDistance;
  private readonly run1: FabRun;

  constructor(name: string, schema: S, options: Partial<ParamValues<S>>) {
    super();
    ({ params: this.params, id: this.id } = configure(name, schema, options));
    const { norm, steps, alpha, eta, beta } = this.params as ParamValues<typeof FAB_PARAMS>;
    this.distance = norm === 'l2' ? L2 : norm === 'l1' ? L1 : Linf;
    this.run1 = { norm, distance: this.distance, steps, alphaMax: alpha, eta, beta };
  }

  /**
   * `restarts` runs on the open rows with the given targets (none: untargeted), each keeping, per
   * row, the smaller of its adversarial and the best so far (`points`, `norms`, updated in place).
   */
  protected async runs(ctx: SearchContext, targets: Tensor1D | undefined, seedPath: number, points: Float32Array, norms: Float32Array): Promise<void> {
    const rows = openRows(ctx);
    if (rows.length === 0) return;
    const dim = ctx.x.shape[1];
    const { restarts, eps } = this.params as ParamValues<typeof FAB_PARAMS>;
    const sub = subset({ ...ctx, ...(targets ? { targets } : {}) }, rows);
    try {
      for (let r = 0; r < restarts; r++) {
        const radius = Float32Array.from(rows, (row) => Math.min(norms[row]!, eps));
        const start = r === 0 ? tf.clone(sub.x) : restartPoint(this.run1.norm, sub, radius, new Rng(deriveSeed(ctx.seed, seedPath, r)));
        let outcome: FabOutcome;
        try {
          outcome = await fabRun(ctx, sub, this.run1, start);
        } finally {
          start.dispose();
        }
        rows.forEach((row, i) => {
          if (!(outcome.norms[i]! < norms[row]!)) return;
          norms[row] = outcome.norms[i]!;
          points.set(outcome.points.subarray(i * dim, (i + 1) * dim), row * dim);
        });
      }
    } finally {
      sub.dispose();
    }
  }
}

/**
 * FAB, untargeted: each step linearises the margins to every other class and heads for the nearest
 * linearised boundary (one input gradient per other class per step, and one forward). Croce & Hein,
 * ICML 2020. Norm L∞, L2 or L1. Defaults: 100 steps, 1 restart (later ones start at a random point
 * at half of min(best norm, ε) from the clean one; ε = 0.3 / 2 / 10), α_max = 0.1, η = 1.05,
 * β = 0.9. Minimum-norm: the result is each sample's smallest adversarial found, the clean input
 * where none was. A targeted run (explicit targets) heads for the target only and succeeds on it.
 *
 * @example
 *   new Fab({ norm: 'l2' }).id; // 'fab:alpha=0.1,beta=0.9,eps=2,eta=1.05,norm=l2,restarts=1,steps=100'
 */
export class Fab extends FabBase<typeof FAB_PARAMS> {
  readonly name = 'fab';

  constructor(options: Partial<ParamValues<typeof FAB_PARAMS>> = {}) {
    super('fab', FAB_PARAMS, options);
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const points = Float32Array.from(await ctx.x.data());
    await this.runs(ctx, ctx.targets, 0, points, new Float32Array(count).fill(Infinity));
    return { adversarial: tf.tensor2d(points, [count, dim]) };
  }
}

/**
 * FAB-T, AutoAttack's targeted FAB: for each of the `targets` highest-scoring wrong classes at the
 * clean input (rank 2, 3, …; at most C − 1), a FAB run that linearises only the margin to that
 * class (one input gradient and one forward per step); per sample the smallest adversarial over all
 * targets, and success is misclassification. Given explicit targets (a targeted run), one run
 * toward them, and success is hitting the target. Croce & Hein, ICML 2020; `fab_pt.py` with
 * `targeted=True`. Norm L∞, L2 or L1. Defaults: as {@link Fab}, targets = 9.
 *
 * @example
 *   new FabT().id; // 'fab-t:alpha=0.1,beta=0.9,eps=0.3,eta=1.05,norm=linf,restarts=1,steps=100,targets=9'
 */
export class FabT extends FabBase<typeof FAB_T_PARAMS> {
  readonly name = 'fab-t';

  constructor(options: Partial<ParamValues<typeof FAB_T_PARAMS>> = {}) {
    super('fab-t', FAB_T_PARAMS, options);
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const classes = ctx.model.numClasses;
    if (classes < 2) throw Errors.attackUnsupported(this.id, ctx.model.id, 'FAB-T needs at least 2 classes');
    const points = Float32Array.from(await ctx.x.data());
    const norms = new Float32Array(count).fill(Infinity);
    if (ctx.targets) {
      await this.runs(ctx, ctx.targets, 0, points, norms);
      return { adversarial: tf.tensor2d(points, [count, dim]) };
    }
    const clean = await ctx.model.scores(ctx.x);
    const ranked = tf.tidy(() => tf.topk(clean, classes).indices);
    clean.dispose();
    const order = Int32Array.from(await ranked.data());
    ranked.dispose();
    for (let rank = 1; rank <= Math.min(this.params.targets, classes - 1); rank++) {
      // The class at this rank of the clean scores (the top one is the label for a correct sample).
      const targets = tf.tensor1d(Int32Array.from({ length: count }, (_, i) => order[i * classes + rank]!), 'int32');
      try {
        await this.runs(ctx, targets, rank, points, norms);
      } finally {
        targets.dispose();
      }
    }
    return { adversarial: tf.tensor2d(points, [count, dim]) };
  }
}
