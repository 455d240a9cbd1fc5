/**
 * Shared machinery of the iterative attacks: running on a subset of a batch's rows, keeping each
 * row's first adversarial point (or else its highest-objective point), and restarts that attack only
 * the rows no earlier restart broke.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { misclassification, targetedMisclassification, type Criterion } from './criteria.js';
import type { FixedEpsilonContext, SearchContext } from './base.js';
import type { Rng } from './rng.js';

/** Row numbers `i` with `mask[i] === value`. */
export function rowsWhere(mask: Uint8Array, value: 0 | 1): Int32Array {
  const rows: number[] = [];
  mask.forEach((m, i) => {
    if ((m ? 1 : 0) === value) rows.push(i);
  });
  return Int32Array.from(rows);
}

/** The rows of a run still to attack: those the criterion does not already hold for. */
export function openRows(ctx: SearchContext): Int32Array {
  return rowsWhere(ctx.done, 0);
}

/** The tensors of a run restricted to some of its rows; `dispose` frees them. */
export interface Subset {
  rows: Int32Array;
  x: Tensor2D;
  labels: Tensor1D;
  targets?: Tensor1D;
  criterion: Criterion;
  /** `[m, 1]`, for fixed-ε contexts. */
  eps: Tensor2D;
  dispose(): void;
}

export function subset(ctx: SearchContext | FixedEpsilonContext, rows: Int32Array): Subset {
  const index = tf.tensor1d(rows, 'int32');
  const x = tf.gather(ctx.x, index) as Tensor2D;
  const labels = tf.gather(ctx.labels, index) as Tensor1D;
  const targets = ctx.targets ? (tf.gather(ctx.targets, index) as Tensor1D) : undefined;
  const eps = 'eps' in ctx ? (tf.gather(ctx.eps, index) as Tensor2D) : tf.zeros([rows.length, 1]) as Tensor2D;
  index.dispose();
  const criterion =
    ctx.criterion.kind === 'targeted' && targets ? targetedMisclassification(targets) : misclassification(labels);
  return {
    rows,
    x,
    labels,
    ...(targets ? { targets } : {}),
    criterion,
    eps,
    dispose: () => tf.dispose([x, labels, eps, ...(targets ? [targets] : [])]),
  };
}

/** The outcome of one run on a subset, as plain data. */
export interface RunOutcome {
  /** `m × D`: the first adversarial point of each row, or else its highest-objective point. */
  points: Float32Array;
  found: Uint8Array;
  /** The objective at each returned point (comparable across restarts of the same attack). */
  value: Float32Array;
}

/**
 * `tf.where` with one condition per row, `[m]` or `[m, 1]`, over `[m, D]` values. The condition is
 * spread by a multiply: WASM broadcasts a where's condition with Tile, about 15 ms for `[256, 784]`,
 * which made it the costliest kernel of an attack step.
 */
export function whereRows(rows: tf.Tensor, a: Tensor2D, b: Tensor2D): Tensor2D {
  return tf.tidy(() => {
    const spread = tf.greater(tf.mul(tf.cast(tf.reshape(rows, [-1, 1]), 'float32'), tf.onesLike(a)), 0);
    return tf.where(spread, a, b) as Tensor2D;
  });
}

/** Per row: the first adversarial point seen, or else the point with the highest objective. */
export class PointKeeper {
  private points: Tensor2D;
  private found: Tensor1D;
  private best: Tensor1D;

  constructor(x0: Tensor2D) {
    this.points = tf.clone(x0);
    this.found = tf.zeros([x0.shape[0]], 'bool') as Tensor1D;
    this.best = tf.fill([x0.shape[0]], -Infinity) as Tensor1D;
  }

  /** Offers `x` with its verdict (bool `[m]`) and objective `[m]`; the caller keeps its tensors. */
  offer(x: Tensor2D, adversarial: Tensor1D, value: Tensor1D): void {
    const next = tf.tidy(() => {
      const fresh = tf.logicalAnd(adversarial, tf.logicalNot(this.found));
      const better = tf.logicalAnd(tf.logicalNot(tf.logicalOr(this.found, adversarial)), tf.greater(value, this.best));
      const take = tf.logicalOr(fresh, better);
      return {
        points: whereRows(take, x, this.points),
        found: tf.logicalOr(this.found, adversarial) as Tensor1D,
        best: tf.where(take, value, this.best) as Tensor1D,
      };
    });
    tf.dispose([this.points, this.found, this.best]);
    ({ points: this.points, found: this.found, best: this.best } = next);
  }

  async allFound(): Promise<boolean> {
    const all = tf.tidy(() => tf.min(tf.cast(this.found, 'int32')));
    const v = (await all.data())[0];
    all.dispose();
    return v === 1;
  }

  /** The kept points as plain data. */
  async outcome(): Promise<RunOutcome> {
    return {
      points: Float32Array.from(await this.points.data()),
      found: Uint8Array.from(await this.found.data()),
      value: Float32Array.from(await this.best.data()),
    };
  }

  dispose(): void {
    tf.dispose([this.points, this.found, this.best]);
  }
}

/**
 * Runs `once` on the open rows, then again (`restarts` times in all) on the rows no run has broken
 * yet. Per row it keeps the first adversarial point found, or else the highest-objective point over
 * all runs; rows the criterion held for at the start keep their clean input.
 */
export async function withRestarts(
  ctx: SearchContext,
  restarts: number,
  once: (rows: Int32Array, restart: number) => Promise<RunOutcome>,
  rows: Int32Array = openRows(ctx),
): Promise<{ adversarial: Tensor2D; found: Uint8Array }> {
  const [count, dim] = ctx.x.shape;
  const points = Float32Array.from(await ctx.x.data());
  const found = new Uint8Array(count);
  const best = new Float32Array(count).fill(-Infinity);
  let open = rows;
  for (let r = 0; r < restarts && open.length > 0; r++) {
    const outcome = await once(open, r);
    open.forEach((row, i) => {
      if (outcome.found[i] || outcome.value[i]! > best[row]!) {
        points.set(outcome.points.subarray(i * dim, (i + 1) * dim), row * dim);
        best[row] = outcome.value[i]!;
        found[row] = outcome.found[i]!;
      }
    });
    open = Int32Array.from([...open].filter((row) => !found[row]));
  }
  return { adversarial: tf.tensor2d(points, [count, dim]), found };
}

/**
 * Random start inside each row's ε ball: uniform per pixel (L∞), uniform in the ball (L2), or
 * uniform in the L1 ball: random signs on `e_i / Σ_{j≤D+1} e_j` with `e_j` standard exponentials.
 */
export function randomStart(norm: 'linf' | 'l2' | 'l1', x0: Tensor2D, eps: Tensor2D, rng: Rng): Tensor2D {
  const [m, dim] = x0.shape;
  return tf.tidy(() => {
    if (norm === 'linf') return tf.add(x0, tf.mul(tf.tensor2d(rng.uniforms(m * dim, -1, 1), [m, dim]), eps)) as Tensor2D;
    if (norm === 'l1') {
      const e = tf.neg(tf.log(tf.sub(1, tf.tensor2d(rng.uniforms(m * (dim + 1)), [m, dim + 1]))));
      const point = tf.div(e.slice([0, 0], [m, dim]), tf.sum(e, 1, true));
      return tf.add(x0, tf.mul(tf.mul(point, tf.tensor2d(rng.signs(m * dim), [m, dim])), eps)) as Tensor2D;
    }
    const gauss = tf.tensor2d(rng.normals(m * dim), [m, dim]);
    const unit = tf.div(gauss, tf.maximum(tf.norm(gauss, 'euclidean', 1, true), 1e-12));
    const radius = tf.pow(tf.tensor2d(rng.uniforms(m), [m, 1]), 1 / dim);
    return tf.add(x0, tf.mul(unit, tf.mul(radius, eps))) as Tensor2D;
  });
}

/**
 * `x` with its rows `rows` replaced by `updates` (a new tensor; the inputs are kept). Built by
 * gathering from `[x; updates]`: tfjs' cpu TensorScatterUpdate writes into its input.
 */
export function scatterRows(x: Tensor2D, rows: Int32Array, updates: Tensor2D): Tensor2D {
  return tf.tidy(() => {
    if (rows.length === x.shape[0]) return tf.clone(updates);
    if (rows.length === 0) return tf.clone(x);
    const count = x.shape[0];
    const source = Int32Array.from({ length: count }, (_, i) => i);
    rows.forEach((row, j) => {
      source[row] = count + j;
    });
    return tf.gather(tf.concat([x, updates], 0), tf.tensor1d(source, 'int32')) as Tensor2D;
  });
}
