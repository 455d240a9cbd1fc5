import { describe, expect, it } from 'vitest';
import { Moments, QuantileSketch } from '../../src/stats/index.js';
import {
  countAtMost,
  exactQuantile,
  normal,
  randInt,
  randomPartition,
  referenceSum,
  rng,
  shuffle,
  treeMerge,
} from './helpers.js';

const N = 100_000;
const ALPHA = 0.005;
const GAMMA = (1 + ALPHA) / (1 - ALPHA);
/** The documented zero threshold m: 1e-9 rounded down to a bucket edge, so at most 1e-9. */
const M = 1e-9;
/** Rounding slack on top of the documented bounds. */
const SLACK = 1 + 1e-12;
const QS = [0, 1e-4, 0.001, 0.01, 0.05, 0.1, 0.25, 0.333, 0.5, 0.667, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1];

const distributions: Record<string, (rand: () => number) => number> = {
  uniform: (r) => r(),
  normal: (r) => normal(r),
  lognormal: (r) => Math.exp(3 * normal(r)),
  'pareto(1.1)': (r) => (1 - r()) ** (-1 / 1.1),
  cauchy: (r) => Math.tan(Math.PI * (r() - 0.5)),
  'small integers (ties)': (r) => randInt(r, 6) * randInt(r, 4),
  'ties at 0 and 0.3 plus noise': (r) => {
    const u = r();
    return u < 0.3 ? 0 : u < 0.6 ? 0.3 : r();
  },
  'around the zero threshold': (r) => (r() - 0.5) * 1e-8,
};

function sketchOf(xs: readonly number[]): QuantileSketch {
  const s = new QuantileSketch();
  for (const x of xs) s.add(x);
  return s;
}

function sample(name: string, seed: number): number[] {
  const rand = rng(seed);
  const draw = distributions[name]!;
  return Array.from({ length: N }, () => draw(rand));
}

describe('QuantileSketch on 100k values', () => {
  for (const [i, name] of Object.keys(distributions).entries()) {
    describe(name, () => {
      const xs = sample(name, 100 + i);
      const sorted = [...xs].sort((a, b) => a - b);
      const sketch = sketchOf(xs);

      it(`every quantile is within ${ALPHA} relative (or ${M} absolute near 0) of the exact one`, () => {
        for (const q of QS) {
          const exact = exactQuantile(sorted, q);
          const got = sketch.quantile(q);
          const bound = Math.abs(exact) > M ? ALPHA * Math.abs(exact) * SLACK : M;
          expect(Math.abs(got - exact), `q=${q}: exact ${exact}, got ${got}`).toBeLessThanOrEqual(bound);
        }
        expect(sketch.quantile(0)).toBe(sorted[0]);
        expect(sketch.quantile(1)).toBe(sorted[N - 1]);
      });

      it('rank(x) brackets the exact count of values ≤ x, exactly at bucket edges', () => {
        const rand = rng(5);
        const nearData = Array.from({ length: 200 }, () => sorted[randInt(rand, N)]! * (1 + (rand() - 0.5) * 0.02));
        const probes = [...nearData, ...QS.map((q) => sketch.quantile(q))];
        for (const x of probes) {
          const exact = countAtMost(sorted, x);
          const { lo, hi } = sketch.rank(x);
          expect(lo).toBeLessThanOrEqual(exact);
          expect(hi).toBeGreaterThanOrEqual(exact);
        }
        // Thresholds are bucket edges (or the max): there the bracket closes on the exact count.
        for (const rate of [0.001, 0.1, 0.5]) {
          const { threshold } = sketch.upperThreshold(rate);
          expect(sketch.rank(threshold)).toEqual({ lo: countAtMost(sorted, threshold), hi: countAtMost(sorted, threshold) });
        }
      });

      it('upperThreshold reports the exact share above it and sits within one bucket of the exact threshold', () => {
        for (const rate of [0, 0.0001, 0.001, 0.01, 0.05, 0.5]) {
          const { threshold, rate: achieved } = sketch.upperThreshold(rate);
          const above = N - countAtMost(sorted, threshold);
          expect(achieved).toBe(above / N);
          expect(above).toBeLessThanOrEqual(rate * N);
          // t*: the smallest data value with at most rate·n values above it.
          const best = sorted[N - Math.floor(rate * N) - 1]!;
          expect(threshold).toBeGreaterThanOrEqual(best);
          expect(threshold - best).toBeLessThanOrEqual((GAMMA - 1) * Math.abs(best) * SLACK + 2 * M);
        }
        expect(sketch.upperThreshold(1)).toEqual({ threshold: -Infinity, rate: 1 });
      });

      it('is the same sketch, to the byte, for any split and merge grouping', () => {
        const rand = rng(9);
        const whole = JSON.stringify(sketch.toJSON());
        const parts = randomPartition(xs, 6, rand).map(sketchOf);
        const left = parts.reduce((a, b) => a.merge(b), new QuantileSketch());
        const tree = treeMerge(
          shuffle(parts, rand).map((p) => QuantileSketch.fromJSON(JSON.parse(JSON.stringify(p.toJSON())))),
          (a, b) => a.merge(b),
        );
        expect(JSON.stringify(left.toJSON())).toBe(whole);
        expect(JSON.stringify(tree.toJSON())).toBe(whole);
      });

      it('holds at most ⌈log_γ(max|x| / max(min|x|, m))⌉ + 1 buckets per sign, plus one for zero', () => {
        const perSign = (mags: number[]): number => {
          const big = mags.filter((a) => a > M);
          if (big.length === 0) return 0;
          return Math.ceil(Math.log(Math.max(...big) / Math.max(Math.min(...big), M)) / Math.log(GAMMA)) + 1;
        };
        const pos = perSign(xs.filter((x) => x > 0));
        const neg = perSign(xs.filter((x) => x < 0).map((x) => -x));
        expect(sketch.size).toBeLessThanOrEqual(pos + neg + 1);
        expect(sketch.size).toBeLessThanOrEqual(sketch.maxBuckets);
      });
    });
  }

  it('does not grow with n: 10k, 100k and 1M values from [1, 10) fit in ⌈log_γ 10⌉ + 1 buckets', () => {
    const rand = rng(3);
    const s = new QuantileSketch();
    const bound = Math.ceil(Math.log(10) / Math.log(GAMMA)) + 1;
    let added = 0;
    for (const target of [10_000, 100_000, 1_000_000]) {
      while (added < target) {
        s.add(1 + 9 * rand());
        added++;
      }
      expect(s.size).toBeLessThanOrEqual(bound);
      expect(JSON.stringify(s.toJSON()).length).toBeLessThan(bound * 20 + 200);
    }
    expect(s.count).toBe(1_000_000);
    expect(bound).toBe(232);
  });

  it('has the documented absolute cap with the default options', () => {
    expect(new QuantileSketch().maxBuckets).toBe(146_103);
  });

  it('answers NaN when empty, and rejects bad input and incompatible merges', () => {
    const s = new QuantileSketch();
    expect(s.quantile(0.5)).toBeNaN();
    expect(s.toJSON()).toMatchObject({ min: null, max: null, zero: 0, positive: [], negative: [] });
    expect(() => s.add(NaN)).toThrow();
    expect(() => s.add(Infinity)).toThrow();
    expect(() => s.quantile(1.5)).toThrow();
    expect(() => s.upperThreshold(0.01)).toThrow();
    expect(() => s.merge(new QuantileSketch({ relativeAccuracy: 0.01 }))).toThrow(/different options/);
    expect(() => QuantileSketch.fromJSON({ ...s.toJSON(), positive: [[3, -1]] })).toThrow();
  });

  it('returns a value exactly when all values are equal, and −0 counts as 0', () => {
    const s = new QuantileSketch();
    for (let i = 0; i < 10; i++) s.add(0.3);
    expect(s.quantile(0.5)).toBe(0.3);
    const z = new QuantileSketch().add(-0);
    expect(Object.is(z.min, 0)).toBe(true);
  });
});

describe('Moments', () => {
  it('mean is the correctly rounded exact mean for any grouping; min, max exact; median within α', () => {
    const rand = rng(21);
    const xs = Array.from({ length: 50_000 }, () => Math.exp(4 * normal(rand)));
    const sorted = [...xs].sort((a, b) => a - b);
    const of = (ys: readonly number[]): Moments => ys.reduce((m, y) => m.add(y), new Moments());
    const whole = of(xs);
    const s = whole.summary();
    expect(s.n).toBe(xs.length);
    expect(s.mean).toBe(referenceSum(xs) / xs.length);
    expect(s.min).toBe(sorted[0]);
    expect(s.max).toBe(sorted[sorted.length - 1]);
    const median = exactQuantile(sorted, 0.5);
    expect(Math.abs(s.median! - median)).toBeLessThanOrEqual(ALPHA * median * SLACK);
    const parts = randomPartition(xs, 5, rand).map(of);
    const merged = treeMerge(parts.map((p) => Moments.fromJSON(JSON.parse(JSON.stringify(p.toJSON())))), (a, b) => a.merge(b));
    expect(merged.summary()).toEqual(s);
    expect(JSON.stringify(merged.toJSON())).toBe(JSON.stringify(whole.toJSON()));
  });

  it('reports nulls when empty', () => {
    expect(new Moments().summary()).toEqual({ n: 0, mean: null, min: null, max: null, median: null });
  });
});
