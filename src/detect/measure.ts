/**
 * Detection measurements for `audit-bench`: pure functions of clean scores (negatives) and
 * adversarial scores (positives), higher = more suspicious. These sort their inputs: they measure a
 * finished benchmark, where calibration (which streams) does not.
 */
import { Errors } from '../errors.js';
import { wilson, Z95, type Interval } from '../stats/index.js';

export interface RocPoint {
  /** The rule "flag s ≥ threshold"; +Infinity for the first point (nothing flagged). */
  threshold: number;
  fpr: number;
  tpr: number;
}

function checkScores(scores: ArrayLike<number>, what: string): void {
  if (scores.length === 0) throw Errors.badArgument(`no ${what} scores`);
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i]!)) throw Errors.badArgument(`${what} score ${i} is NaN`);
  }
}

function descending(scores: ArrayLike<number>): Float64Array {
  return Float64Array.from(scores).sort().reverse();
}

/**
 * The empirical ROC curve: one point per distinct score, from (0, 0) to (1, 1). Tied clean and
 * adversarial scores move both rates at once (a diagonal step), so that the trapezoid area under
 * the points is {@link rocAuc}'s AUC.
 *
 * @example
 *   rocCurve([0.1, 0.4], [0.4, 0.9]);
 *   // [{threshold: Infinity, fpr: 0, tpr: 0}, {0.9, 0, 0.5}, {0.4, 0.5, 1}, {0.1, 1, 1}]
 */
export function rocCurve(clean: ArrayLike<number>, adversarial: ArrayLike<number>): RocPoint[] {
  checkScores(clean, 'clean');
  checkScores(adversarial, 'adversarial');
  const neg = descending(clean);
  const pos = descending(adversarial);
  const points: RocPoint[] = [{ threshold: Infinity, fpr: 0, tpr: 0 }];
  let i = 0;
  let j = 0;
  while (i < neg.length || j < pos.length) {
    const t = Math.max(i < neg.length ? neg[i]! : -Infinity, j < pos.length ? pos[j]! : -Infinity);
    while (i < neg.length && neg[i] === t) i++;
    while (j < pos.length && pos[j] === t) j++;
    points.push({ threshold: t, fpr: i / neg.length, tpr: j / pos.length });
  }
  return points;
}

export interface AucEstimate {
  /** P(adversarial > clean) + ½·P(tie): the Mann–Whitney U over n_clean·n_adv. */
  auc: number;
  /** DeLong's standard error; NaN with fewer than two scores on a side. */
  se: number;
  /** 95% interval AUC ± 1.96·se, clipped to [0, 1]; [0, 1] when se is NaN. */
  ci: [number, number];
  nClean: number;
  nAdversarial: number;
}

/** Midranks (1-based, ties averaged) of `values` within themselves. */
function midranks(values: Float64Array): Float64Array {
  const order = Array.from(values.keys()).sort((a, b) => values[a]! - values[b]!);
  const ranks = new Float64Array(values.length);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && values[order[end + 1]!] === values[order[start]!]) end++;
    const r = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) ranks[order[k]!] = r;
    start = end + 1;
  }
  return ranks;
}

function variance(v: Float64Array, mean: number): number {
  let s = 0;
  for (const x of v) s += (x - mean) ** 2;
  return s / (v.length - 1);
}

/**
 * ROC AUC by the Mann–Whitney statistic, with DeLong's variance (DeLong, DeLong & Clarke-Pearson
 * 1988), computed from midranks in O(n log n) (Sun & Xu 2014). Ties count one half. With V10_i the
 * share of clean scores below adversarial score i (ties ½) and V01_j the share of adversarial scores
 * above clean score j: AUC = mean V10, Var = var(V10)/n_adv + var(V01)/n_clean. Unlike Hanley–McNeil
 * it assumes no score distribution and handles ties exactly. At AUC = 0 or 1 the variance is 0 and
 * the interval a point: report n beside it.
 *
 * @example
 *   rocAuc([1, 2, 3], [2, 4]).auc; // 0.75: 2 beats 1 and ties 2 (1.5), 4 beats all three (3): 4.5 of 6 pairs
 */
export function rocAuc(clean: ArrayLike<number>, adversarial: ArrayLike<number>): AucEstimate {
  checkScores(clean, 'clean');
  checkScores(adversarial, 'adversarial');
  const n0 = clean.length;
  const n1 = adversarial.length;
  const all = new Float64Array(n0 + n1);
  all.set(Float64Array.from(adversarial), 0);
  all.set(Float64Array.from(clean), n1);
  const rAll = midranks(all);
  const rPos = midranks(all.subarray(0, n1));
  const rNeg = midranks(all.subarray(n1));
  const v10 = new Float64Array(n1);
  const v01 = new Float64Array(n0);
  for (let i = 0; i < n1; i++) v10[i] = (rAll[i]! - rPos[i]!) / n0;
  for (let j = 0; j < n0; j++) v01[j] = 1 - (rAll[n1 + j]! - rNeg[j]!) / n1;
  const auc = v10.reduce((a, b) => a + b, 0) / n1;
  const se = n0 < 2 || n1 < 2 ? NaN : Math.sqrt(variance(v10, auc) / n1 + variance(v01, auc) / n0);
  const ci: [number, number] = Number.isNaN(se) ? [0, 1] : [Math.max(0, auc - Z95 * se), Math.min(1, auc + Z95 * se)];
  return { auc, se, ci, nClean: n0, nAdversarial: n1 };
}

export interface TprAtFpr {
  /** The target false-positive rate. */
  target: number;
  /** The rule "flag s > threshold": the lowest threshold among the clean scores with observed FPR ≤ target. */
  threshold: number;
  /** Observed FPR on the clean scores: exact, ≤ target. */
  fpr: number;
  falsePositives: number;
  tpr: number;
  truePositives: number;
  /** 95% Wilson interval of the TPR. */
  ci: [number, number];
  nClean: number;
  nAdversarial: number;
}

/**
 * The detection rate at fixed false-positive rates (default 1% and 5%), each threshold set on the
 * clean scores themselves, with the same rule as calibration: flag s > t, t the lowest clean score
 * with at most ⌊target·n⌋ clean scores above it (ties can make the observed FPR smaller).
 *
 * @example
 *   tprAtFpr(clean, adversarial)[0]; // { target: 0.01, threshold, fpr, tpr, ci, ... }
 */
export function tprAtFpr(clean: ArrayLike<number>, adversarial: ArrayLike<number>, targets: readonly number[] = [0.01, 0.05]): TprAtFpr[] {
  checkScores(clean, 'clean');
  checkScores(adversarial, 'adversarial');
  const neg = descending(clean);
  return targets.map((target) => {
    if (!(target >= 0 && target < 1)) throw Errors.badArgument(`target FPR must be in [0, 1), got ${target}`);
    // A 1e-9 slack so that 0.05·100 counts as 5, not 4.999...
    const allowed = Math.floor(target * neg.length + 1e-9);
    const threshold = allowed < neg.length ? neg[allowed]! : -Infinity;
    let falsePositives = 0;
    while (falsePositives < neg.length && neg[falsePositives]! > threshold) falsePositives++;
    const rate = detectionRate(adversarial, threshold);
    return {
      target,
      threshold,
      fpr: falsePositives / neg.length,
      falsePositives,
      tpr: rate.rate,
      truePositives: rate.flagged,
      ci: rate.ci,
      nClean: neg.length,
      nAdversarial: adversarial.length,
    };
  });
}

export interface DetectionRate {
  flagged: number;
  n: number;
  rate: number;
  /** 95% Wilson interval. */
  ci: [number, number];
}

/**
 * The share of scores above a threshold (a calibration's), with its Wilson interval: the TPR on
 * adversarial scores, the realised FPR on held-out clean ones.
 *
 * @example
 *   detectionRate(heldOutClean, calibration.detectors['feature-squeezing'].threshold).rate; // ≈ fpr
 */
export function detectionRate(scores: ArrayLike<number>, threshold: number): DetectionRate {
  let flagged = 0;
  for (let i = 0; i < scores.length; i++) if (scores[i]! > threshold) flagged++;
  const { lo, hi }: Interval = wilson(flagged, scores.length);
  return { flagged, n: scores.length, rate: scores.length ? flagged / scores.length : NaN, ci: [lo, hi] };
}
