import { Errors } from '../errors.js';
import { checkArray, checkCount, checkFinite, checkFiniteOrNull, checkRecord } from './shared.js';

export interface QuantileSketchOptions {
  /** α: every quantile is within relative error α of the exact one. Default 0.005 (0.5%). */
  relativeAccuracy?: number;
  /**
   * Magnitudes at or below this (rounded down to a bucket edge m) share one bucket that reports 0,
   * so near zero the error is absolute, at most m. Default 1e-9; at least 1e-300.
   */
  minMagnitude?: number;
}

export interface QuantileSketchJSON {
  relativeAccuracy: number;
  minMagnitude: number;
  /** Exact extremes; `null` when empty. */
  min: number | null;
  max: number | null;
  /** Count of values in (−m, m]. */
  zero: number;
  /** `[bucket index, count]` by increasing index; bucket k of `positive` is (γ^(k−1), γ^k]. */
  positive: [number, number][];
  /** Bucket k of `negative` is (−γ^k, −γ^(k−1)]. */
  negative: [number, number][];
}

/** A bucket in value order: its values lie in (lower, upper]; `value` is what quantiles report. */
interface Bucket {
  lower: number;
  upper: number;
  value: number;
  count: number;
}

/**
 * A mergeable quantile sketch with a relative-error guarantee: a log-bucketed histogram (the
 * DDSketch layout, Masson et al. 2019) plus the exact min and max.
 *
 * Why this and not KLL or a t-digest: partial results from workers must add up exactly, in any
 * grouping. Bucket edges here are fixed by the options alone and counts are integers, so `merge` is
 * exactly associative and commutative and the state (hence every quantile) is the same for any
 * split of the stream. A pure rank-error guarantee would need randomised compaction (KLL: the state,
 * and the answers, then depend on how the stream was split) or, deterministically and by
 * comparisons, memory growing with n (Cormode & Veselý 2020). This one instead guarantees zero rank
 * error up to a relative value perturbation α, in memory set by the data's magnitude range.
 *
 * Guarantees, with γ = (1+α)/(1−α), m the zero threshold, n values added:
 * - `quantile(q)` is the lower quantile: the value of rank r = max(1, ⌈q·n⌉) in sorted order. The
 *   result v̂ satisfies |v̂ − x_(r)| ≤ α·|x_(r)| when |x_(r)| > m, and |v̂ − x_(r)| ≤ m otherwise
 *   (plus ~1e-15 relative from rounding). Ranks 1 and n (`quantile(0)`, `quantile(1)`) give the
 *   exact min and max. In rank terms: x_(r) lies in a bucket B = (a, b] such that v̂ is within
 *   relative α of every point of B, and #{x ≤ a} < r ≤ #{x ≤ b} exactly, so the rank error is at most
 *   the count in B (the values within about ±α of v̂). No bound on that count holds for every data
 *   set (a point mass fills one bucket); to calibrate a rate, use `upperThreshold`, which is exact.
 * - `rank(x)` gives exact bounds on #{values ≤ x}; they coincide when x is a bucket edge.
 * - `upperThreshold(rate)` returns a threshold whose share of values above it is exact, not
 *   estimated (for calibrating a detector to a false-positive rate).
 * - Memory: one bucket per occupied cell; per sign at most ⌈log_γ(max|x| / max(min|x|, m))⌉ + 1
 *   buckets, plus one for zero: ≈ 230 buckets per decade of magnitude at α = 0.5%, whatever n is.
 *   The absolute cap over all finite doubles is `maxBuckets` (146,103 with the defaults).
 *
 * @example
 * const s = new QuantileSketch();
 * for (let i = 1; i <= 1000; i++) s.add(i);
 * s.quantile(0.5); // 500 within 0.5%
 */
export class QuantileSketch {
  readonly relativeAccuracy: number;
  readonly minMagnitude: number;
  private readonly gamma: number;
  private readonly lnGamma: number;
  /** Index of the zero threshold's edge: m = γ^zeroKey ≤ minMagnitude. */
  private readonly zeroKey: number;
  private readonly zeroEdge: number;
  private readonly positive = new Map<number, number>();
  private readonly negative = new Map<number, number>();
  private zero = 0;
  private n = 0;
  private lo = Infinity;
  private hi = -Infinity;

  constructor(options: QuantileSketchOptions = {}) {
    const alpha = options.relativeAccuracy ?? 0.005;
    const minMagnitude = options.minMagnitude ?? 1e-9;
    if (!(alpha > 0 && alpha < 1)) {
      throw Errors.badArgument(`relativeAccuracy must be in (0, 1), got ${alpha}`, { relativeAccuracy: alpha });
    }
    if (!(minMagnitude >= 1e-300 && minMagnitude <= 1e300)) {
      throw Errors.badArgument(`minMagnitude must be in [1e-300, 1e300], got ${minMagnitude}`, { minMagnitude });
    }
    this.relativeAccuracy = alpha;
    this.minMagnitude = minMagnitude;
    this.gamma = (1 + alpha) / (1 - alpha);
    this.lnGamma = Math.log(this.gamma);
    let k = Math.floor(Math.log(minMagnitude) / this.lnGamma);
    while (this.edge(k) > minMagnitude) k--;
    while (this.edge(k + 1) <= minMagnitude) k++;
    this.zeroKey = k;
    this.zeroEdge = this.edge(k);
  }

  /** Number of values added. */
  get count(): number {
    return this.n;
  }

  /** Exact minimum; `NaN` when empty. */
  get min(): number {
    return this.n === 0 ? NaN : this.lo;
  }

  /** Exact maximum; `NaN` when empty. */
  get max(): number {
    return this.n === 0 ? NaN : this.hi;
  }

  /** Occupied buckets: the memory in use, independent of n beyond the data's magnitude range. */
  get size(): number {
    return this.positive.size + this.negative.size + (this.zero > 0 ? 1 : 0);
  }

  /** The most buckets this configuration can ever hold, over all finite doubles. */
  get maxBuckets(): number {
    return 1 + 2 * (this.positiveKey(Number.MAX_VALUE) - this.zeroKey);
  }

  add(x: number): this {
    checkFinite(x, 'value');
    const v = x === 0 ? 0 : x; // −0 and +0 are one value; keep min/max free of −0
    if (v > this.zeroEdge) bump(this.positive, this.positiveKey(v), 1);
    else if (v > -this.zeroEdge) this.zero += 1;
    else bump(this.negative, this.negativeKey(-v), 1);
    this.n += 1;
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
    return this;
  }

  merge(other: QuantileSketch): this {
    if (other.relativeAccuracy !== this.relativeAccuracy || other.minMagnitude !== this.minMagnitude) {
      throw Errors.badArgument('cannot merge quantile sketches with different options', {
        ours: { relativeAccuracy: this.relativeAccuracy, minMagnitude: this.minMagnitude },
        theirs: { relativeAccuracy: other.relativeAccuracy, minMagnitude: other.minMagnitude },
      });
    }
    for (const [k, c] of [...other.positive]) bump(this.positive, k, c);
    for (const [k, c] of [...other.negative]) bump(this.negative, k, c);
    this.zero += other.zero;
    this.n += other.n;
    this.lo = Math.min(this.lo, other.lo);
    this.hi = Math.max(this.hi, other.hi);
    return this;
  }

  /** The lower q-quantile within the documented error; `NaN` when empty. */
  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw Errors.badArgument(`quantile must be in [0, 1], got ${q}`, { q });
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    // The extreme ranks are known exactly.
    if (rank === 1) return this.lo;
    if (rank === this.n) return this.hi;
    let seen = 0;
    for (const b of this.buckets()) {
      seen += b.count;
      if (seen >= rank) return Math.min(this.hi, Math.max(this.lo, b.value));
    }
    return this.hi;
  }

  /**
   * Exact bounds on the number of added values ≤ x. `lo === hi` when x is a bucket edge, below the
   * min or at or above the max.
   */
  rank(x: number): { lo: number; hi: number } {
    if (Number.isNaN(x)) throw Errors.badArgument('rank of NaN', { x });
    if (this.n === 0 || x < this.lo) return { lo: 0, hi: 0 };
    if (x >= this.hi) return { lo: this.n, hi: this.n };
    let lo = 0;
    let straddling = 0;
    for (const b of this.buckets()) {
      if (b.upper <= x) lo += b.count;
      else if (b.lower < x) straddling += b.count;
      else break;
    }
    return { lo, hi: lo + straddling };
  }

  /**
   * The lowest verifiable threshold t for the rule "flag x > t" such that at most `rate` of the added
   * values lie above it, and that share exactly. t is the upper edge of the bucket (or the max)
   * holding the exact threshold t*, so |t − t*| ≤ (γ−1)·|t*| = 2α/(1−α)·|t*| (at most 2m near 0).
   * Throws on an empty sketch: there is nothing to calibrate on.
   *
   * @example
   * const { threshold, rate } = cleanScores.upperThreshold(0.01); // rate ≤ 0.01, exact on the data
   */
  upperThreshold(rate: number): { threshold: number; rate: number } {
    if (!(rate >= 0 && rate <= 1)) throw Errors.badArgument(`rate must be in [0, 1], got ${rate}`, { rate });
    if (this.n === 0) throw Errors.badArgument('cannot calibrate a threshold on an empty sketch');
    const allowed = rate * this.n;
    let above = 0;
    for (const b of this.buckets().reverse()) {
      if (above + b.count > allowed) return { threshold: Math.min(b.upper, this.hi), rate: above / this.n };
      above += b.count;
    }
    return { threshold: -Infinity, rate: 1 };
  }

  toJSON(): QuantileSketchJSON {
    const sorted = (m: Map<number, number>): [number, number][] => [...m].sort((a, b) => a[0] - b[0]);
    return {
      relativeAccuracy: this.relativeAccuracy,
      minMagnitude: this.minMagnitude,
      min: this.n === 0 ? null : this.lo,
      max: this.n === 0 ? null : this.hi,
      zero: this.zero,
      positive: sorted(this.positive),
      negative: sorted(this.negative),
    };
  }

  static fromJSON(json: QuantileSketchJSON): QuantileSketch {
    const o = checkRecord(json, 'quantile sketch');
    const s = new QuantileSketch({
      relativeAccuracy: checkFinite(o.relativeAccuracy, 'sketch.relativeAccuracy'),
      minMagnitude: checkFinite(o.minMagnitude, 'sketch.minMagnitude'),
    });
    s.zero = checkCount(o.zero, 'sketch.zero');
    s.n = s.zero;
    for (const [name, map] of [['positive', s.positive], ['negative', s.negative]] as const) {
      for (const entry of checkArray(o[name], `sketch.${name}`)) {
        const [k, c] = checkArray(entry, `sketch.${name} entry`);
        if (!Number.isSafeInteger(k) || (k as number) <= s.zeroKey) {
          throw Errors.badArgument(`sketch.${name} has a bad bucket index ${String(k)}`, { k });
        }
        const count = checkCount(c, `sketch.${name} count`);
        bump(map, k as number, count);
        s.n += count;
      }
    }
    const min = checkFiniteOrNull(o.min, 'sketch.min');
    const max = checkFiniteOrNull(o.max, 'sketch.max');
    if ((s.n === 0) !== (min === null) || (s.n === 0) !== (max === null)) {
      throw Errors.badArgument('sketch min/max do not match its counts', { n: s.n, min, max });
    }
    s.lo = min ?? Infinity;
    s.hi = max ?? -Infinity;
    return s;
  }

  private edge(k: number): number {
    return Math.pow(this.gamma, k);
  }

  /** k with edge(k−1) < x ≤ edge(k), for x > m; the edges themselves decide, not a rounded log. */
  private positiveKey(x: number): number {
    let k = Math.ceil(Math.log(x) / this.lnGamma);
    while (k > this.zeroKey + 1 && x <= this.edge(k - 1)) k--;
    while (x > this.edge(k)) k++;
    return k;
  }

  /** k with edge(k−1) ≤ a < edge(k), for a = |x| ≥ m with x negative. */
  private negativeKey(a: number): number {
    let k = Math.floor(Math.log(a) / this.lnGamma) + 1;
    while (k > this.zeroKey + 1 && a < this.edge(k - 1)) k--;
    while (a >= this.edge(k)) k++;
    return k;
  }

  /** The point of (edge(k−1), edge(k)] with relative distance at most α to every value in it. */
  private representative(k: number): number {
    return (2 * this.edge(k)) / (this.gamma + 1);
  }

  /** Occupied buckets in increasing value order. */
  private buckets(): Bucket[] {
    const out: Bucket[] = [];
    for (const k of [...this.negative.keys()].sort((a, b) => b - a)) {
      const count = this.negative.get(k)!;
      out.push({ lower: -this.edge(k), upper: -this.edge(k - 1), value: -this.representative(k), count });
    }
    if (this.zero > 0) out.push({ lower: -this.zeroEdge, upper: this.zeroEdge, value: 0, count: this.zero });
    for (const k of [...this.positive.keys()].sort((a, b) => a - b)) {
      const count = this.positive.get(k)!;
      out.push({ lower: this.edge(k - 1), upper: this.edge(k), value: this.representative(k), count });
    }
    return out;
  }
}

function bump(map: Map<number, number>, key: number, count: number): void {
  map.set(key, (map.get(key) ?? 0) + count);
}
