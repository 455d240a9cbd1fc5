import { describe, expect, it } from 'vitest';
import { MinEpsCurve } from '../../src/stats/index.js';
import { randInt, randomPartition, rng, treeMerge } from './helpers.js';

const GRID = Array.from({ length: 17 }, (_, i) => i / 255);

/** Minimal epsilons with exact zeros, Infinity, values on grid points and beyond the grid. */
function minEpsilons(n: number, seed: number): number[] {
  const rand = rng(seed);
  return Array.from({ length: n }, () => {
    const u = rand();
    if (u < 0.15) return 0;
    if (u < 0.3) return Infinity;
    if (u < 0.45) return GRID[randInt(rand, GRID.length)]!;
    return -Math.log(1 - rand()) * 0.03;
  });
}

function direct(es: readonly number[], eps: number): number {
  return es.filter((e) => e > eps).length / es.length;
}

describe('MinEpsCurve', () => {
  const es = minEpsilons(20_000, 4);
  const curve = es.reduce((c, e) => c.add(e), new MinEpsCurve(GRID));

  it('equals the direct computation at every grid point', () => {
    expect(curve.count).toBe(es.length);
    for (const { eps, robust_acc } of curve.curve()) expect(robust_acc).toBe(direct(es, eps));
    expect(curve.curve()[0]!.robust_acc).toBe(es.filter((e) => e !== 0).length / es.length);
  });

  it('gives exact bounds between grid points and exact values at 0, grid points and Infinity', () => {
    const rand = rng(8);
    for (let i = 0; i < 200; i++) {
      const eps = rand() * 0.1;
      const { lo, hi } = curve.robustAccuracyAt(eps);
      expect(lo).toBeLessThanOrEqual(direct(es, eps));
      expect(hi).toBeGreaterThanOrEqual(direct(es, eps));
    }
    for (const eps of [0, 8 / 255, 16 / 255, Infinity]) {
      expect(curve.robustAccuracyAt(eps)).toEqual({ lo: direct(es, eps), hi: direct(es, eps) });
    }
  });

  it('is the same for any split and grouping, and round-trips through JSON text', () => {
    const rand = rng(2);
    const parts = randomPartition(es, 7, rand).map((p) => p.reduce((c, e) => c.add(e), new MinEpsCurve(GRID)));
    const restored = parts.map((p) => MinEpsCurve.fromJSON(JSON.parse(JSON.stringify(p.toJSON()))));
    const merged = treeMerge(restored, (a, b) => a.merge(b));
    expect(merged.toJSON()).toEqual(curve.toJSON());
  });

  it('rejects bad grids, bad values and merges across grids', () => {
    expect(() => new MinEpsCurve([])).toThrow();
    expect(() => new MinEpsCurve([0.1, 0.1])).toThrow(/increasing/);
    expect(() => new MinEpsCurve([-1, 0])).toThrow();
    expect(() => new MinEpsCurve(GRID).add(-0.1)).toThrow();
    expect(() => new MinEpsCurve(GRID).add(NaN)).toThrow();
    expect(() => new MinEpsCurve(GRID).merge(new MinEpsCurve([0, 1]))).toThrow(/different grids/);
    expect(new MinEpsCurve(GRID).robustAccuracyAt(0.1).lo).toBeNaN();
  });
});
