/**
 * HopSkipJump (Chen, Jordan & Wainwright, "HopSkipJumpAttack: a query-efficient decision-based
 * attack", IEEE S&P 2020), with the schedule of ART's `HopSkipJump`.
 */
import { exactSign, tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { MinimizationAttack, type SearchContext, type SearchOutput } from './base.js';
import { misclassification, targetedMisclassification } from './criteria.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { configure, type ParamSchema, type ParamValues } from './params.js';
import { openRows, scatterRows, subset, type Subset } from './runs.js';
import type { Rng } from './rng.js';

export const HSJ_PARAMS = {
  norm: { type: 'enum', values: ['l2', 'linf'], default: 'l2', doc: 'norm of the perturbation it minimises' },
  steps: { type: 'int', min: 1, max: 10_000, default: 40, doc: 'iterations (boundary search, gradient estimate, geometric step)' },
  evals: { type: 'int', min: 1, max: 100_000, default: 100, doc: 'queries of the first gradient estimate; iteration t uses evals·√t' },
  maxevals: { type: 'int', min: 1, max: 1_000_000, default: 10_000, doc: 'most queries of one gradient estimate' },
  init: { type: 'int', min: 1, max: 100_000, default: 100, doc: 'random uniform images tried to find a first misclassified point' },
  gamma: { type: 'number', min: 0, max: 1000, exclusiveMin: true, default: 1, doc: 'γ: the boundary search stops at θ = γ/(d√d) (L2) or γ/d² (L∞)' },
} as const satisfies ParamSchema;

/** Points of at most this many rows go to the model at once (a gradient estimate is evals × rows points). */
const QUERY_CHUNK = 4096;

/** Halvings of the geometric step search before a row keeps its boundary point. */
const STEP_HALVINGS = 30;

/**
 * HopSkipJump: a decision-based (label-only) attack. It reads only the predicted class, never the
 * scores, so it attacks any model, black-box ONNX models and services included. From a
 * misclassified start (random uniform images, then a bisection toward the clean input), each
 * iteration bisects to the decision boundary, estimates the boundary's normal from `evals·√t`
 * random probes of radius δ (Monte-Carlo, baseline-corrected), and takes a geometric step along it
 * (`‖x − x₀‖/√t`, halved until the point is still misclassified); a last bisection returns a
 * boundary point, as the paper's Algorithm 2 does. Chen, Jordan & Wainwright, IEEE S&P 2020;
 * ART's schedule (θ, δ, the step). Norm L2 (Gaussian probes, normalised-gradient steps)
 * or L∞ (uniform probes, sign steps, bisection on the L∞ radius). Defaults: L2, 40 iterations,
 * 100 first evals, at most 10,000 per estimate, 100 random starts, γ = 1. Queries per sample are
 * reported as forwards: about `Σ_t evals·√t` plus ~15–25 per bisection. A sample never
 * misclassified by any random start returns its clean input. Targeted runs start from random
 * images of the target class when they find one.
 *
 * @example
 *   new HopSkipJump({ steps: 20 }).id; // 'hsj:evals=100,gamma=1,init=100,maxevals=10000,norm=l2,steps=20'
 */
export class HopSkipJump extends MinimizationAttack {
  readonly name = 'hsj';
  override get gradientFree(): boolean {
    return true;
  }
  readonly id: string;
  readonly params: ParamValues<typeof HSJ_PARAMS>;
  readonly distance: NormDistance;

  constructor(options: Partial<ParamValues<typeof HSJ_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, HSJ_PARAMS, options));
    this.distance = this.params.norm === 'linf' ? Linf : L2;
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const rows = openRows(ctx);
    const sub = subset(ctx, rows);
    try {
      const run = new HsjRun(ctx, sub, this.params, this.distance);
      const started = await run.start();
      if (!started) return { adversarial: tf.clone(ctx.x) };
      const points = await run.iterate(started);
      try {
        return { adversarial: scatterRows(ctx.x, Int32Array.from(started.found, (i) => rows[i]!), points) };
      } finally {
        points.dispose();
      }
    } finally {
      sub.dispose();
    }
  }
}

/** The rows of a run that found a misclassified start: their clean inputs and current points. */
interface Started {
  /** Indices into the subset. */
  found: Int32Array;
  x0: Tensor2D;
  current: Tensor2D;
}

/** One HopSkipJump run on a subset: the label oracle, its bisections, estimates and steps. */
class HsjRun {
  private readonly dim: number;
  private readonly theta: number;
  private readonly rng: Rng;

  constructor(
    private readonly ctx: SearchContext,
    private readonly sub: Subset,
    private readonly p: ParamValues<typeof HSJ_PARAMS>,
    private readonly distance: NormDistance,
  ) {
    this.dim = sub.x.shape[1];
    this.theta = p.norm === 'l2' ? p.gamma / (this.dim * Math.sqrt(this.dim)) : p.gamma / (this.dim * this.dim);
    this.rng = ctx.rng;
  }

  /**
   * The oracle: whether each point is adversarial for its row (`which`, indices into the subset),
   * one query each, charged to those rows; points go to the model in chunks.
   */
  private async adversarial(points: Tensor2D, which: Int32Array): Promise<Uint8Array> {
    const out = new Uint8Array(which.length);
    for (let from = 0; from < which.length; from += QUERY_CHUNK) {
      const part = which.subarray(from, Math.min(from + QUERY_CHUNK, which.length));
      this.ctx.counter.add('forwards', Int32Array.from(part, (i) => this.sub.rows[i]!));
      const chunk = tf.slice(points, [from, 0], [part.length, this.dim]);
      const scores = await this.ctx.model.scores(chunk);
      chunk.dispose();
      const hit = tf.tidy(() => {
        const index = tf.tensor1d(part, 'int32');
        const criterion = this.sub.targets
          ? targetedMisclassification(tf.gather(this.sub.targets, index) as Tensor1D)
          : misclassification(tf.gather(this.sub.labels, index) as Tensor1D);
        return criterion.isAdversarial(scores);
      });
      scores.dispose();
      out.set(await hit.data(), from);
      hit.dispose();
    }
    return out;
  }

  /** Random uniform images until one is misclassified, then a bisection toward the clean input; none when no row found one. */
  async start(): Promise<Started | undefined> {
    const m = this.sub.x.shape[0];
    const starts = new Float32Array(m * this.dim);
    const hitOnce = new Uint8Array(m);
    for (let trial = 0; trial < this.p.init; trial++) {
      const open = Int32Array.from({ length: m }, (_, i) => i).filter((i) => !hitOnce[i]);
      if (open.length === 0) break;
      const noise = this.rng.uniforms(open.length * this.dim);
      const points = tf.tensor2d(noise, [open.length, this.dim]);
      const hit = await this.adversarial(points, open);
      points.dispose();
      open.forEach((row, k) => {
        if (!hit[k]) return;
        hitOnce[row] = 1;
        starts.set(noise.subarray(k * this.dim, (k + 1) * this.dim), row * this.dim);
      });
    }
    const found = Int32Array.from({ length: m }, (_, i) => i).filter((i) => hitOnce[i]);
    if (found.length === 0) return undefined;
    const index = tf.tensor1d(found, 'int32');
    const x0 = tf.gather(this.sub.x, index) as Tensor2D;
    const noisy = tf.tidy(() => tf.gather(tf.tensor2d(starts, [m, this.dim]), index) as Tensor2D);
    index.dispose();
    try {
      // ART's first bisection: along the segment, to a width of 0.001.
      return { found, x0, current: await this.bisect(x0, noisy, found, 'l2', () => 0.001) };
    } catch (e) {
      x0.dispose();
      throw e;
    } finally {
      noisy.dispose();
    }
  }

  /** The iterations on the rows that have a start; the final points, `[found, D]`. Disposes the start. */
  async iterate(start: Started): Promise<Tensor2D> {
    const { found, x0 } = start;
    let current = start.current;
    const toBoundary = async (): Promise<void> => {
      const boundary = await this.bisect(x0, current, found, this.p.norm, (upper) => (this.p.norm === 'l2' ? this.theta : Math.min(upper * this.theta, this.theta)));
      current.dispose();
      current = boundary;
    };
    try {
      for (let t = 0; t < this.p.steps; t++) {
        const before = await this.measure(x0, current);
        const scale = this.p.norm === 'l2' ? Math.sqrt(this.dim) : this.dim;
        const delta = before.map((d) => (t === 0 ? 0.1 : scale * this.theta * d));
        await toBoundary();
        const evals = Math.min(Math.floor(this.p.evals * Math.sqrt(t + 1)), this.p.maxevals);
        const direction = await this.estimate(current, found, delta, evals);
        try {
          const dist = await this.measure(x0, current);
          const next = await this.stepSearch(current, found, direction, dist.map((d) => (2 * d) / Math.sqrt(t + 1)));
          current.dispose();
          current = next;
        } finally {
          direction.dispose();
        }
      }
      // The paper's output is a boundary point: the last step's overshoot bisected away (ART stops
      // after the step).
      await toBoundary();
      return tf.clone(current);
    } finally {
      current.dispose();
      x0.dispose();
    }
  }

  private async measure(x0: Tensor2D, x: Tensor2D): Promise<Float32Array> {
    const size = this.distance.measure(x0, x);
    const out = Float32Array.from(await size.data());
    size.dispose();
    return out;
  }

  /**
   * Bisection between the clean inputs `x0` and the adversarial points `adv` (rows `found`): on the
   * blend weight (L2) or the L∞ radius (L∞), until the bracket is narrower than `threshold(upper)`;
   * the adversarial end of each bracket.
   */
  private async bisect(x0: Tensor2D, adv: Tensor2D, found: Int32Array, norm: 'l2' | 'linf', threshold: (upper: number) => number): Promise<Tensor2D> {
    const n = found.length;
    const upperStart = norm === 'l2' ? new Float32Array(n).fill(1) : await this.measure(x0, adv);
    const upper = Float32Array.from(upperStart);
    const lower = new Float32Array(n);
    const limit = Float32Array.from(upperStart, (u) => threshold(u));
    const blend = (alpha: Float32Array, which: Int32Array): Tensor2D =>
      tf.tidy(() => {
        const index = tf.tensor1d(which, 'int32');
        const a = tf.tensor2d(alpha, [which.length, 1]);
        const origin = tf.gather(x0, index);
        const delta = tf.sub(tf.gather(adv, index), origin);
        const moved = norm === 'l2' ? tf.mul(delta, a) : tf.minimum(tf.maximum(delta, tf.neg(tf.mul(a, tf.onesLike(delta)))), tf.mul(a, tf.onesLike(delta)));
        return tf.add(origin, moved) as Tensor2D;
      });
    for (;;) {
      const open = Int32Array.from({ length: n }, (_, i) => i).filter((i) => upper[i]! - lower[i]! > limit[i]!);
      if (open.length === 0) break;
      const mid = Float32Array.from(open, (i) => (upper[i]! + lower[i]!) / 2);
      const probe = blend(mid, open);
      const hit = await this.adversarial(probe, Int32Array.from(open, (i) => found[i]!));
      probe.dispose();
      open.forEach((i, k) => {
        if (hit[k]) upper[i] = mid[k]!;
        else lower[i] = mid[k]!;
      });
    }
    return blend(upper, Int32Array.from({ length: n }, (_, i) => i));
  }

  /**
   * The boundary's normal at `points` from `evals` random probes per row of radius δ: the mean of
   * the probes weighted by ±1 (adversarial or not), minus the mean verdict as a baseline; the unit
   * L2 direction (L2) or its sign (L∞).
   */
  private async estimate(points: Tensor2D, found: Int32Array, delta: Float32Array, evals: number): Promise<Tensor2D> {
    const n = found.length;
    const per = Math.max(1, Math.floor(QUERY_CHUNK / evals));
    const parts: Tensor2D[] = [];
    try {
      for (let from = 0; from < n; from += per) {
        const rows = Int32Array.from({ length: Math.min(per, n - from) }, (_, i) => from + i);
        const count = rows.length * evals;
        const noise = this.p.norm === 'l2' ? this.rng.normals(count * this.dim) : this.rng.uniforms(count * this.dim, -1, 1);
        const repeated = Int32Array.from({ length: count }, (_, k) => rows[Math.floor(k / evals)]!);
        const probes = tf.tidy(() => {
          const index = tf.tensor1d(repeated, 'int32');
          const base = tf.gather(points, index);
          const radius = tf.gather(tf.tensor2d(delta, [n, 1]), index);
          const u = tf.tensor2d(noise, [count, this.dim]);
          const unit = tf.div(u, tf.maximum(tf.norm(u, 'euclidean', 1, true), 1e-12));
          const probe = tf.clipByValue(tf.add(base, tf.mul(unit, radius)), 0, 1);
          // The probe actually taken, after the box: the estimate weighs what the model saw.
          return { probe: probe as Tensor2D, taken: tf.div(tf.sub(probe, base), radius) as Tensor2D };
        });
        let verdict: Uint8Array;
        try {
          verdict = await this.adversarial(probes.probe, Int32Array.from(repeated, (i) => found[i]!));
        } catch (e) {
          tf.dispose(probes);
          throw e;
        }
        parts.push(
          tf.tidy(() => {
            const f = tf.sub(tf.mul(tf.tensor3d(verdict, [rows.length, evals, 1], 'float32'), 2), 1);
            const mean = tf.mean(f, 1, true);
            // All probes on one side: no baseline (the mean would cancel every weight).
            const split = tf.cast(tf.less(tf.abs(mean), 1), 'float32');
            const weight = tf.sub(f, tf.mul(mean, split));
            const grad = tf.mean(tf.mul(weight, probes.taken.reshape([rows.length, evals, this.dim])), 1) as Tensor2D;
            return this.p.norm === 'l2' ? (tf.div(grad, tf.maximum(tf.norm(grad, 'euclidean', 1, true), 1e-12)) as Tensor2D) : (exactSign(grad) as Tensor2D);
          }),
        );
        tf.dispose(probes);
      }
      return tf.concat(parts, 0) as Tensor2D;
    } finally {
      tf.dispose(parts);
    }
  }

  /** The geometric step: `x + ε·direction`, ε halved per row until the point is adversarial. */
  private async stepSearch(points: Tensor2D, found: Int32Array, direction: Tensor2D, first: Float32Array): Promise<Tensor2D> {
    const n = found.length;
    const size = Float32Array.from(first);
    const done = new Uint8Array(n);
    const stepped = (which: Int32Array, eps: Float32Array): Tensor2D =>
      tf.tidy(() => {
        const index = tf.tensor1d(which, 'int32');
        return tf.clipByValue(tf.add(tf.gather(points, index), tf.mul(tf.gather(direction, index), tf.tensor2d(eps, [which.length, 1]))), 0, 1) as Tensor2D;
      });
    for (let h = 0; h < STEP_HALVINGS; h++) {
      const open = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !done[i]);
      if (open.length === 0) break;
      const eps = Float32Array.from(open, (i) => (size[i]! /= 2));
      const probe = stepped(open, eps);
      const hit = await this.adversarial(probe, Int32Array.from(open, (i) => found[i]!));
      probe.dispose();
      open.forEach((i, k) => {
        if (hit[k]) done[i] = 1;
      });
    }
    // A row that never stayed adversarial keeps its boundary point (ε = 0).
    const eps = Float32Array.from(size, (s, i) => (done[i] ? s : 0));
    return stepped(Int32Array.from({ length: n }, (_, i) => i), eps);
  }
}
