import { checkRecord, orNull } from './shared.js';
import { ExactSum } from './exact-sum.js';
import { QuantileSketch, type QuantileSketchJSON, type QuantileSketchOptions } from './quantile-sketch.js';

export interface MomentsJSON {
  /** Canonical exact-sum expansion (see {@link ExactSum}). */
  sum: number[];
  sketch: QuantileSketchJSON;
}

export interface MomentsSummary {
  n: number;
  /** `null` when n = 0, as are the others. */
  mean: number | null;
  min: number | null;
  max: number | null;
  /** Within the sketch's relative accuracy (0.5% by default) of the exact median. */
  median: number | null;
}

/**
 * Count, mean, min, max and quantiles of a stream of finite numbers (perturbation norms,
 * confidences). The sum is exact until read ({@link ExactSum}), so the mean is the correctly rounded
 * mean whatever the grouping of merges; min and max are exact; quantiles come from a
 * {@link QuantileSketch} with its documented error.
 *
 * @example
 * const linf = new Moments().add(0.1).add(0.3);
 * linf.summary(); // { n: 2, mean: 0.2, min: 0.1, max: 0.3, median: ≈0.1 }
 */
export class Moments {
  private readonly sum: ExactSum;
  private readonly sketch: QuantileSketch;

  constructor(options: QuantileSketchOptions = {}) {
    this.sum = new ExactSum();
    this.sketch = new QuantileSketch(options);
  }

  get count(): number {
    return this.sketch.count;
  }

  add(x: number): this {
    this.sketch.add(x);
    this.sum.add(x);
    return this;
  }

  merge(other: Moments): this {
    this.sketch.merge(other.sketch);
    this.sum.merge(other.sum);
    return this;
  }

  /** The mean, correctly rounded from the exact sum; `NaN` when empty. */
  mean(): number {
    return this.count === 0 ? NaN : this.sum.value() / this.count;
  }

  /** See {@link QuantileSketch.quantile} for the error bound; `NaN` when empty. */
  quantile(q: number): number {
    return this.sketch.quantile(q);
  }

  toJSON(): MomentsJSON {
    return { sum: this.sum.toJSON(), sketch: this.sketch.toJSON() };
  }

  static fromJSON(json: MomentsJSON): Moments {
    const o = checkRecord(json, 'moments');
    const sketch = QuantileSketch.fromJSON(o.sketch as QuantileSketchJSON);
    const m = new Moments({ relativeAccuracy: sketch.relativeAccuracy, minMagnitude: sketch.minMagnitude });
    m.sketch.merge(sketch);
    m.sum.merge(ExactSum.fromJSON(o.sum as number[]));
    return m;
  }

  summary(): MomentsSummary {
    return {
      n: this.count,
      mean: orNull(this.mean()),
      min: orNull(this.sketch.min),
      max: orNull(this.sketch.max),
      median: orNull(this.quantile(0.5)),
    };
  }
}
