import { Errors } from '../errors.js';
import { checkArray, checkCount, checkFinite, checkRecord } from './shared.js';

export interface MinEpsCurveJSON {
  grid: number[];
  /** Samples with minimal epsilon 0: the clean prediction is already wrong. */
  zero: number;
  /** `bins[j]`: samples with grid[j−1] < ε ≤ grid[j] (grid[−1] taken as 0), ε > 0. */
  bins: number[];
  /** Samples with a finite ε above the last grid point. */
  over: number;
  /** Samples the attack never fooled (ε = Infinity). */
  never: number;
}

export interface CurvePoint {
  eps: number;
  /** `null` with no samples. */
  robust_acc: number | null;
}

/**
 * Robust accuracy as a function of the perturbation budget, from each sample's minimal successful
 * epsilon: a sample is robust at ε iff its minimal epsilon is greater than ε (0 when the clean
 * prediction is already wrong, Infinity when the attack never succeeds).
 *
 * Resolution: counts are kept per cell of a fixed grid chosen up front (plus exact counts of 0, of
 * Infinity and of finite values past the grid), so robust accuracy is exact at every grid point and
 * at ε = 0, and between grid points `robustAccuracyAt` returns exact bounds. Grid points are compared,
 * never divided, so an ε written the same way as a grid point (8/255) hits it exactly. Merging needs
 * equal grids and is exact in any grouping (integer counts).
 *
 * @example
 * const c = new MinEpsCurve([0, 0.1, 0.2, 0.3]);
 * c.add(0).add(0.15).add(Infinity);
 * c.curve(); // [{eps:0, robust_acc:2/3}, {eps:0.1, …:2/3}, {eps:0.2, …:1/3}, {eps:0.3, …:1/3}]
 */
export class MinEpsCurve {
  readonly grid: readonly number[];
  private zero = 0;
  private readonly bins: number[];
  private over = 0;
  private never = 0;

  constructor(grid: readonly number[]) {
    checkArray(grid, 'epsilon grid');
    if (grid.length === 0) throw Errors.badArgument('epsilon grid is empty');
    grid.forEach((g, i) => {
      checkFinite(g, 'epsilon grid point');
      if (g < 0 || (i > 0 && !(g > grid[i - 1]!))) {
        throw Errors.badArgument('epsilon grid must be non-negative and strictly increasing', { grid });
      }
    });
    this.grid = Object.freeze([...grid]);
    this.bins = new Array<number>(grid.length).fill(0);
  }

  get count(): number {
    return this.zero + this.bins.reduce((a, b) => a + b, 0) + this.over + this.never;
  }

  /** One sample's minimal successful epsilon: ≥ 0, or Infinity when the attack never succeeded. */
  add(minEps: number): this {
    if (!(minEps >= 0)) throw Errors.badArgument(`minimal epsilon must be >= 0 or Infinity, got ${minEps}`, { minEps });
    if (minEps === 0) this.zero += 1;
    else if (minEps === Infinity) this.never += 1;
    else {
      const j = this.cellOf(minEps);
      if (j === this.grid.length) this.over += 1;
      else this.bins[j]! += 1;
    }
    return this;
  }

  merge(other: MinEpsCurve): this {
    if (!sameGrid(this.grid, other.grid)) {
      throw Errors.badArgument('cannot merge epsilon curves on different grids', { ours: this.grid, theirs: other.grid });
    }
    this.zero += other.zero;
    other.bins.forEach((c, j) => (this.bins[j]! += c));
    this.over += other.over;
    this.never += other.never;
    return this;
  }

  /** Robust accuracy at every grid point. */
  curve(): CurvePoint[] {
    const n = this.count;
    const out: CurvePoint[] = [];
    let above = this.over + this.never;
    for (let j = this.grid.length - 1; j >= 0; j--) {
      out.push({ eps: this.grid[j]!, robust_acc: n === 0 ? null : above / n });
      above += this.bins[j]!;
    }
    return out.reverse();
  }

  /**
   * Robust accuracy at any ε ≥ 0 as exact bounds: `lo === hi` at grid points, at 0 and at Infinity;
   * otherwise the samples whose minimal epsilon falls in ε's grid cell are undecided. `NaN` when empty.
   */
  robustAccuracyAt(eps: number): { lo: number; hi: number } {
    if (!(eps >= 0)) throw Errors.badArgument(`epsilon must be >= 0, got ${eps}`, { eps });
    const n = this.count;
    if (n === 0) return { lo: NaN, hi: NaN };
    if (eps === Infinity) return { lo: 0, hi: 0 };
    if (eps === 0) return { lo: (n - this.zero) / n, hi: (n - this.zero) / n };
    const j = this.cellOf(eps);
    if (j === this.grid.length) return { lo: this.never / n, hi: (this.never + this.over) / n };
    let above = this.over + this.never;
    for (let i = j + 1; i < this.grid.length; i++) above += this.bins[i]!;
    const undecided = this.grid[j] === eps ? 0 : this.bins[j]!;
    return { lo: above / n, hi: (above + undecided) / n };
  }

  toJSON(): MinEpsCurveJSON {
    return { grid: [...this.grid], zero: this.zero, bins: [...this.bins], over: this.over, never: this.never };
  }

  static fromJSON(json: MinEpsCurveJSON): MinEpsCurve {
    const o = checkRecord(json, 'epsilon curve');
    const c = new MinEpsCurve(checkArray(o.grid, 'curve.grid') as number[]);
    const bins = checkArray(o.bins, 'curve.bins');
    if (bins.length !== c.grid.length) {
      throw Errors.badArgument('curve.bins does not match its grid', { bins: bins.length, grid: c.grid.length });
    }
    bins.forEach((b, j) => (c.bins[j] = checkCount(b, 'curve bin')));
    c.zero = checkCount(o.zero, 'curve.zero');
    c.over = checkCount(o.over, 'curve.over');
    c.never = checkCount(o.never, 'curve.never');
    return c;
  }

  /** The first j with eps ≤ grid[j], or grid.length; comparisons only. */
  private cellOf(eps: number): number {
    let lo = 0;
    let hi = this.grid.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (eps <= this.grid[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

export function sameGrid(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((g, i) => g === b[i]);
}
