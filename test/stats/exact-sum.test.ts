import { describe, expect, it } from 'vitest';
import { ExactSum } from '../../src/stats/index.js';
import { randomPartition, referenceSum, rng, shuffle, treeMerge } from './helpers.js';

function sumOf(xs: readonly number[]): ExactSum {
  const s = new ExactSum();
  for (const x of xs) s.add(x);
  return s;
}

describe('ExactSum', () => {
  it('is exact where a plain sum cancels', () => {
    expect(sumOf([1e16, 1, -1e16]).value()).toBe(1);
    expect(sumOf([0.1, 0.2, 0.3, -0.6]).value()).toBe(referenceSum([0.1, 0.2, 0.3, -0.6]));
    expect(sumOf([]).value()).toBe(0);
  });

  it('is the correctly rounded exact sum, and the same bits in any order and grouping', () => {
    const rand = rng(7);
    // Wide magnitudes and both signs: a plain or Kahan sum differs between orders here.
    const xs = Array.from({ length: 20_000 }, () => (rand() - 0.5) * 10 ** (rand() * 30 - 10));
    const expected = referenceSum(xs);
    const whole = sumOf(xs);
    expect(whole.value()).toBe(expected);
    const parts = randomPartition(xs, 9, rand).map(sumOf);
    const left = parts.reduce((a, b) => a.merge(b), new ExactSum());
    const tree = treeMerge(shuffle(parts.map((p) => ExactSum.fromJSON(p.toJSON())), rand), (a, b) => a.merge(b));
    for (const s of [left, tree, sumOf(shuffle(xs, rand))]) {
      expect(s.value()).toBe(expected);
      expect(s.toJSON()).toEqual(whole.toJSON());
    }
  });

  it('writes a canonical expansion that round-trips through JSON text', () => {
    const s = sumOf([1e300, 1, -1e300, 1e-20, 3]);
    const back = ExactSum.fromJSON(JSON.parse(JSON.stringify(s.toJSON())));
    expect(back.value()).toBe(4);
    expect(back.toJSON()).toEqual(s.toJSON());
    expect(sumOf([1, 1e-30]).toJSON()).toEqual([1, 1e-30]);
  });

  it('rejects non-finite summands and overflow, keeping its value', () => {
    expect(() => new ExactSum().add(Infinity)).toThrow(/finite/);
    expect(() => new ExactSum().add(NaN)).toThrow(/finite/);
    const big = sumOf([1.5e308, 1]);
    expect(() => big.add(1.5e308)).toThrow(/overflows/);
    expect(big.toJSON()).toEqual([1.5e308, 1]);
  });
});
