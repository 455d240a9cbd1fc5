/**
 * The combined score: each detector's score becomes a p-value against its clean calibration scores,
 * and the p-values of a subset merge into one statistic, which is itself calibrated to the target
 * false-positive rate on clean data (the detectors are correlated, so no textbook null applies).
 *
 * p-value of score s against n clean scores: p = (1 + #{clean ≥ s}) / (n + 1), the conformal
 * p-value, in (0, 1]. #{clean ≥ s} comes from the detector's QuantileSketch as an upper bound (the
 * clean scores not provably below s; {@link ExceedanceTable}), so p never understates the evidence
 * for "clean"; a score above every clean one gets the smallest p, 1/(n+1).
 *
 * Methods (`method`):
 * - `fisher` (default): T = −2 Σ_d ln p_d (Fisher 1925): pools moderate evidence from every detector.
 * - `min-p`: T = −ln min(1, k · min_d p_d) (Bonferroni over k detectors): driven by the single most
 *   confident detector.
 * Both grow as the evidence against "clean" grows.
 */
import type { ParamSchema } from '../attacks/params.js';
import type { QuantileSketchJSON } from '../stats/index.js';
import { combiner } from './detector.js';

export const COMBINED_PARAMS = {
  method: {
    type: 'enum',
    values: ['fisher', 'min-p'],
    default: 'fisher',
    doc: "fisher (−2 Σ ln p) or min-p (−ln of Bonferroni's k·min p)",
  },
} as const satisfies ParamSchema;

export const combined = combiner({
  name: 'combined',
  summary: "per-detector conformal p-values merged by Fisher's method (or Bonferroni min-p), calibrated again on clean data",
  params: COMBINED_PARAMS,
  combine(pValues, params) {
    const count = pValues[0]?.length ?? 0;
    const out = new Float64Array(count);
    const k = pValues.length;
    for (let i = 0; i < count; i++) {
      if (params.method === 'fisher') {
        let sum = 0;
        for (const p of pValues) sum += Math.log(p[i]!);
        out[i] = -2 * sum;
      } else {
        let min = 1;
        for (const p of pValues) min = Math.min(min, p[i]!);
        out[i] = -Math.log(Math.min(1, k * min));
      }
    }
    return out;
  },
});

/**
 * #{clean scores provably below s}, from a sketch's JSON: a binary search over its buckets' upper
 * edges. The same count as `sketch.rank(nextDown(s)).lo`, which scans every bucket per call; the
 * bucket layout is the one QuantileSketchJSON documents (positive bucket k is (γ^(k−1), γ^k],
 * negative bucket k is (−γ^k, −γ^(k−1)], the zero bucket ends at the largest γ^k ≤ minMagnitude), and
 * a test holds the two equal.
 */
export class ExceedanceTable {
  readonly n: number;
  private readonly min: number;
  private readonly max: number;
  /** Upper edges of the occupied buckets, increasing, and the counts up to and including each. */
  private readonly edges: Float64Array;
  private readonly cumulative: Float64Array;

  constructor(json: QuantileSketchJSON) {
    const alpha = json.relativeAccuracy;
    const gamma = (1 + alpha) / (1 - alpha);
    const lnGamma = Math.log(gamma);
    const edge = (k: number) => Math.pow(gamma, k);
    let zeroKey = Math.floor(Math.log(json.minMagnitude) / lnGamma);
    while (edge(zeroKey) > json.minMagnitude) zeroKey--;
    while (edge(zeroKey + 1) <= json.minMagnitude) zeroKey++;
    const buckets: [number, number][] = [
      ...[...json.negative].sort((a, b) => b[0] - a[0]).map(([k, c]): [number, number] => [-edge(k - 1), c]),
      ...(json.zero > 0 ? [[edge(zeroKey), json.zero] as [number, number]] : []),
      ...[...json.positive].sort((a, b) => a[0] - b[0]).map(([k, c]): [number, number] => [edge(k), c]),
    ];
    this.edges = Float64Array.from(buckets, (b) => b[0]);
    this.cumulative = new Float64Array(buckets.length);
    let total = 0;
    buckets.forEach((b, i) => (this.cumulative[i] = total += b[1]));
    this.n = total;
    this.min = json.min ?? Infinity;
    this.max = json.max ?? -Infinity;
  }

  /** A lower bound on the number of clean scores below s; exact when s is past either extreme. */
  below(s: number): number {
    if (this.n === 0 || s <= this.min) return 0;
    if (s > this.max) return this.n;
    // The buckets whose upper edge is below s lie wholly below it.
    let lo = 0;
    let hi = this.edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.edges[mid]! < s) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.cumulative[lo - 1]!;
  }

  /**
   * The conformal p-value (1 + #{clean ≥ s}) / (n + 1) of each score, counting as "≥ s" every clean
   * score not provably below s.
   *
   * @example
   *   const clean = new QuantileSketch(); for (let i = 1; i <= 99; i++) clean.add(i);
   *   new ExceedanceTable(clean.toJSON()).pValues([100, 50])[0]; // 0.01: above all 99 clean scores
   */
  pValues(scores: ArrayLike<number>): Float64Array {
    const out = new Float64Array(scores.length);
    for (let i = 0; i < scores.length; i++) out[i] = (1 + this.n - this.below(scores[i]!)) / (this.n + 1);
    return out;
  }
}
