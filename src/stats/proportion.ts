import { Errors } from '../errors.js';
import { checkCount, checkRecord } from './shared.js';

/** The two-sided 95% normal quantile. */
export const Z95 = 1.959964;

export interface Interval {
  lo: number;
  hi: number;
}

/**
 * The Wilson score interval for `successes` out of `n` (Wilson 1927). Unlike the normal (Wald)
 * interval it stays inside [0, 1] and does not collapse to a point at p = 0 or p = 1, which is where
 * robust accuracies and attack success rates often sit. With no trials it is the whole [0, 1].
 *
 * @example
 * wilson(50, 100); // { lo: 0.4038…, hi: 0.5962… }
 * wilson(0, 10);   // { lo: 0, hi: 0.2775… }
 */
export function wilson(successes: number, n: number, z: number = Z95): Interval {
  checkCount(successes, 'successes');
  checkCount(n, 'n');
  if (successes > n) throw Errors.badArgument(`successes (${successes}) exceed n (${n})`, { successes, n });
  if (!(z > 0) || !Number.isFinite(z)) throw Errors.badArgument(`z must be a positive number, got ${z}`, { z });
  if (n === 0) return { lo: 0, hi: 1 };
  const p = successes / n;
  const z2n = (z * z) / n;
  const center = (p + z2n / 2) / (1 + z2n);
  const half = (z / (1 + z2n)) * Math.sqrt((p * (1 - p)) / n + z2n / (4 * n));
  // At p = 0 (p = 1) the bound is exactly 0 (1); the formula would leave a rounding residue.
  const lo = successes === 0 ? 0 : Math.max(0, center - half);
  const hi = successes === n ? 1 : Math.min(1, center + half);
  return { lo, hi };
}

export interface ProportionJSON {
  k: number;
  n: number;
}

export interface ProportionSummary {
  k: number;
  n: number;
  /** `k / n`; `null` when n = 0. */
  p: number | null;
  /** 95% Wilson interval. */
  ci: [number, number];
}

/**
 * Successes out of trials. Counts are integers, so merging is exact in any grouping.
 *
 * @example
 * const acc = new Proportion().add(true).add(false);
 * acc.summary(); // { k: 1, n: 2, p: 0.5, ci: [0.0945…, 0.9054…] }
 */
export class Proportion {
  private k = 0;
  private n = 0;

  get successes(): number {
    return this.k;
  }

  get trials(): number {
    return this.n;
  }

  add(success: boolean): this {
    this.n += 1;
    if (success) this.k += 1;
    return this;
  }

  merge(other: Proportion): this {
    this.k += other.k;
    this.n += other.n;
    return this;
  }

  interval(z: number = Z95): Interval {
    return wilson(this.k, this.n, z);
  }

  toJSON(): ProportionJSON {
    return { k: this.k, n: this.n };
  }

  static fromJSON(json: ProportionJSON): Proportion {
    const o = checkRecord(json, 'proportion');
    const k = checkCount(o.k, 'proportion.k');
    const n = checkCount(o.n, 'proportion.n');
    if (k > n) throw Errors.badArgument(`proportion has k (${k}) > n (${n})`, { k, n });
    const p = new Proportion();
    p.k = k;
    p.n = n;
    return p;
  }

  summary(): ProportionSummary {
    const { lo, hi } = this.interval();
    return { k: this.k, n: this.n, p: this.n === 0 ? null : this.k / this.n, ci: [lo, hi] };
  }
}
