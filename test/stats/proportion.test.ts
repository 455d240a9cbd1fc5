import { describe, expect, it } from 'vitest';
import { isAdvstreamError } from '../../src/errors.js';
import { Proportion, wilson } from '../../src/stats/index.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isAdvstreamError(e) ? e.code : 'not an AdvstreamError';
  }
  return undefined;
}

describe('wilson', () => {
  it.each([
    [50, 100, 0.4038, 0.5962],
    [0, 10, 0, 0.2775],
    [10, 10, 0.7225, 1],
    [1, 10, 0.01788, 0.40415],
    [95, 100, 0.88825, 0.97846],
  ])('k=%i n=%i → [%f, %f]', (k, n, lo, hi) => {
    const ci = wilson(k, n);
    expect(ci.lo).toBeCloseTo(lo, 4);
    expect(ci.hi).toBeCloseTo(hi, 4);
  });

  it('is exactly 0 at p = 0, exactly 1 at p = 1, and [0, 1] with no trials', () => {
    expect(wilson(0, 7).lo).toBe(0);
    expect(wilson(7, 7).hi).toBe(1);
    expect(wilson(0, 0)).toEqual({ lo: 0, hi: 1 });
  });

  it('is symmetric: the interval of n−k failures mirrors that of k successes', () => {
    for (const [k, n] of [[3, 17], [0, 5], [250, 1000]] as const) {
      const a = wilson(k, n);
      const b = wilson(n - k, n);
      expect(a.lo).toBeCloseTo(1 - b.hi, 14);
      expect(a.hi).toBeCloseTo(1 - b.lo, 14);
    }
  });

  it('narrows with a smaller z', () => {
    const wide = wilson(30, 100);
    const narrow = wilson(30, 100, 1);
    expect(narrow.hi - narrow.lo).toBeLessThan(wide.hi - wide.lo);
  });

  it('rejects impossible counts with BAD_ARGUMENT', () => {
    expect(codeOf(() => wilson(11, 10))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => wilson(-1, 10))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => wilson(1.5, 10))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => wilson(1, 10, 0))).toBe('BAD_ARGUMENT');
  });
});

describe('Proportion', () => {
  it('summarises k, n, p and the Wilson interval', () => {
    const p = new Proportion();
    for (let i = 0; i < 100; i++) p.add(i % 2 === 0);
    const s = p.summary();
    expect(s).toMatchObject({ k: 50, n: 100, p: 0.5 });
    expect(s.ci[0]).toBeCloseTo(0.4038, 4);
    expect(s.ci[1]).toBeCloseTo(0.5962, 4);
    expect(new Proportion().summary()).toEqual({ k: 0, n: 0, p: null, ci: [0, 1] });
  });

  it('merges by adding counts and round-trips through JSON', () => {
    const a = new Proportion().add(true).add(false);
    const b = Proportion.fromJSON(JSON.parse(JSON.stringify(new Proportion().add(true).toJSON())));
    expect(a.merge(b).toJSON()).toEqual({ k: 2, n: 3 });
  });

  it('rejects a checkpoint with k > n', () => {
    expect(codeOf(() => Proportion.fromJSON({ k: 3, n: 2 }))).toBe('BAD_ARGUMENT');
  });
});
