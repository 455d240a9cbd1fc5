import { Errors } from '../errors.js';
import { checkArray, checkFinite } from './shared.js';

/**
 * A float sum that is exact until it is read, then correctly rounded (Shewchuk's non-overlapping
 * expansions, the algorithm of Python's `math.fsum`).
 *
 * Why not Kahan: a compensated sum only bounds the error, so two workers' partial sums merged in a
 * different grouping can differ in the last bits. Here the state represents the exact real sum, so
 * `value()` and `toJSON()` are the same in every order and grouping of `add` and `merge`. The state
 * is a handful of doubles (at most ~40, typically 1 to 3).
 *
 * @example
 * const s = new ExactSum().add(1e16).add(1).add(-1e16);
 * s.value(); // 1 (a plain `+` gives 0)
 */
export class ExactSum {
  /** Non-overlapping, by increasing magnitude, no zeros; their exact sum is the value. */
  private partials: number[] = [];

  add(x: number): this {
    checkFinite(x, 'summand');
    // Built aside, so that an overflow leaves the sum as it was.
    const next: number[] = [];
    for (let y of this.partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) next.push(lo);
      x = hi;
    }
    if (!Number.isFinite(x)) throw Errors.badArgument('sum overflows a double', { partial: x });
    if (x !== 0) next.push(x);
    this.partials = next;
    return this;
  }

  merge(other: ExactSum): this {
    for (const x of other.partials.slice()) this.add(x);
    return this;
  }

  /** The exact sum rounded to the nearest double (ties to even). */
  value(): number {
    const p = this.partials;
    let n = p.length;
    if (n === 0) return 0;
    let hi = p[--n]!;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      const y = p[--n]!;
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    // The rounding above may sit exactly on a tie that the lower partials break.
    if (n > 0 && ((lo < 0 && p[n - 1]! < 0) || (lo > 0 && p[n - 1]! > 0))) {
      const y = lo * 2;
      const x = hi + y;
      if (y === x - hi) hi = x;
    }
    return hi;
  }

  /**
   * A canonical expansion: the rounded sum, then the rounded remainder, and so on. It depends only
   * on the exact value, so checkpoints of equal sums are equal byte for byte.
   */
  toJSON(): number[] {
    const rest = new ExactSum();
    rest.partials = this.partials.slice();
    const out: number[] = [];
    while (rest.partials.length > 0) {
      const v = rest.value();
      out.push(v);
      rest.add(-v);
    }
    return out;
  }

  static fromJSON(json: readonly number[]): ExactSum {
    const s = new ExactSum();
    for (const x of checkArray(json, 'sum')) s.add(checkFinite(x, 'sum term'));
    return s;
  }
}
