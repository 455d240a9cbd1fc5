/** The audit-bench measurements against values worked out by hand. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/attacks/index.js';
import { detectionRate, rocAuc, rocCurve, tprAtFpr } from '../../src/detect/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { wilson } from '../../src/stats/index.js';

const CLEAN = [0.1, 0.4, 0.35, 0.8];
const ADV = [0.9, 0.4, 0.7];

function trapezoid(points: { fpr: number; tpr: number }[]): number {
  let area = 0;
  for (let i = 1; i < points.length; i++) area += ((points[i]!.fpr - points[i - 1]!.fpr) * (points[i]!.tpr + points[i - 1]!.tpr)) / 2;
  return area;
}

/** O(n²) Mann–Whitney: the definition. */
function bruteAuc(clean: number[], adv: number[]): number {
  let s = 0;
  for (const a of adv) for (const c of clean) s += a > c ? 1 : a === c ? 0.5 : 0;
  return s / (clean.length * adv.length);
}

describe('rocCurve', () => {
  it('steps through every distinct score, a tie moving both rates at once', () => {
    // s ≥ 0.9: adv {0.9}; ≥ 0.8: + clean 0.8; ≥ 0.7: + adv 0.7; ≥ 0.4: + clean 0.4 and adv 0.4 (tie); ...
    expect(rocCurve(CLEAN, ADV)).toEqual([
      { threshold: Infinity, fpr: 0, tpr: 0 },
      { threshold: 0.9, fpr: 0, tpr: 1 / 3 },
      { threshold: 0.8, fpr: 0.25, tpr: 1 / 3 },
      { threshold: 0.7, fpr: 0.25, tpr: 2 / 3 },
      { threshold: 0.4, fpr: 0.5, tpr: 1 },
      { threshold: 0.35, fpr: 0.75, tpr: 1 },
      { threshold: 0.1, fpr: 1, tpr: 1 },
    ]);
  });

  it('has the Mann–Whitney AUC as its trapezoid area, ties included', () => {
    const rng = new Rng(4);
    const clean = Array.from({ length: 300 }, () => rng.int(0, 20));
    const adv = Array.from({ length: 200 }, () => rng.int(5, 25));
    expect(trapezoid(rocCurve(clean, adv))).toBeCloseTo(bruteAuc(clean, adv), 12);
    expect(rocAuc(clean, adv).auc).toBeCloseTo(bruteAuc(clean, adv), 12);
  });
});

describe('rocAuc', () => {
  it('matches the hand-computed AUC and DeLong variance', () => {
    // Pairs won: adv 0.9 beats all 4; 0.4 beats 0.1 and 0.35 and ties 0.4 (2.5); 0.7 beats 3: 9.5/12.
    // V10 = (1, 5/8, 3/4), V01 = (1, 5/6, 1, 1/3); Var = (21/576)/3 + (172/1728)/4 = 1/27.
    const r = rocAuc(CLEAN, ADV);
    expect(r.auc).toBeCloseTo(9.5 / 12, 12);
    expect(r.se).toBeCloseTo(Math.sqrt(1 / 27), 12);
    expect(r.ci[0]).toBeCloseTo(9.5 / 12 - 1.959964 * Math.sqrt(1 / 27), 9);
    expect(r.ci[1]).toBe(1);
    expect(r).toMatchObject({ nClean: 4, nAdversarial: 3 });
  });

  it('is 1/2 for identical scores, 1 and 0 for perfect separation either way', () => {
    expect(rocAuc([1, 1, 1], [1, 1]).auc).toBe(0.5);
    const perfect = rocAuc([0, 1, 2], [3, 4]);
    expect(perfect.auc).toBe(1);
    expect(perfect.ci).toEqual([1, 1]);
    expect(rocAuc([3, 4], [0, 1, 2]).auc).toBe(0);
  });

  it('gives no interval with a single score on a side', () => {
    const r = rocAuc([0.2, 0.5], [0.4]);
    expect(r.auc).toBe(0.5);
    expect(Number.isNaN(r.se)).toBe(true);
    expect(r.ci).toEqual([0, 1]);
  });

  it('covers the true AUC about 95% of the time', () => {
    // Clean ~ N(0,1), adversarial ~ N(1,1): AUC = Φ(1/√2) = 0.76025.
    const rng = new Rng(9);
    let covered = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const r = rocAuc(rng.normals(60), Array.from(rng.normals(40), (v) => v + 1));
      if (r.ci[0] <= 0.76025 && 0.76025 <= r.ci[1]) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.88);
    expect(covered / trials).toBeLessThanOrEqual(1);
  });

  it('rejects empty and NaN scores', () => {
    for (const [c, a] of [[[], [1]], [[1], []], [[Number.NaN], [1]]] as const) {
      let code: string | undefined;
      try {
        rocAuc(c, a);
      } catch (e) {
        code = isAdvstreamError(e) ? e.code : 'other';
      }
      expect(code).toBe('BAD_ARGUMENT');
    }
  });
});

describe('tprAtFpr', () => {
  const clean = Array.from({ length: 100 }, (_, i) => i);
  const adv = [99.5, 98, 97.5, 50, 10];

  it('sets each threshold on the clean scores and counts detections with a Wilson interval', () => {
    const [at1, at5] = tprAtFpr(clean, adv);
    // 1%: one clean score (99) may lie above: t = 98; adversarial above 98: 99.5 only.
    expect(at1).toMatchObject({ target: 0.01, threshold: 98, fpr: 0.01, falsePositives: 1, tpr: 0.2, truePositives: 1, nClean: 100, nAdversarial: 5 });
    const w1 = wilson(1, 5);
    expect(at1!.ci).toEqual([w1.lo, w1.hi]);
    // 5%: 95..99 above t = 94; adversarial above: 99.5, 98, 97.5.
    expect(at5).toMatchObject({ target: 0.05, threshold: 94, fpr: 0.05, falsePositives: 5, tpr: 0.6, truePositives: 3 });
  });

  it('never exceeds the target when clean scores tie at the threshold', () => {
    const tied = [3, 3, 3, ...Array.from({ length: 97 }, (_, i) => i / 100)];
    const [r] = tprAtFpr(tied, [3.5, 3, 2], [0.02]);
    // Allowing 2 clean scores above t would need t inside the tie at 3: t = 3 lets none above.
    expect(r).toMatchObject({ threshold: 3, fpr: 0, falsePositives: 0, tpr: 1 / 3 });
  });

  it('agrees with detectionRate at its threshold', () => {
    const [r] = tprAtFpr(clean, adv, [0.05]);
    expect(detectionRate(adv, r!.threshold)).toEqual({ flagged: 3, n: 5, rate: 0.6, ci: r!.ci });
    expect(detectionRate(clean, r!.threshold).rate).toBe(r!.fpr);
  });
});
