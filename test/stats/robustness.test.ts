import { describe, expect, it } from 'vitest';
import { Robustness, wilson, type RobustnessSample } from '../../src/stats/index.js';

/** Label 1 throughout; the comment says what each sample exercises. */
const samples: RobustnessSample[] = [
  // clean right, adversarial right, attack failed: robust
  { label: 1, cleanPred: 1, advPred: 1, success: false, linf: 0.3, l2: 3, advConfidence: 0.7 },
  // clean right, fooled: counts for ASR and the norms
  { label: 1, cleanPred: 1, advPred: 4, success: true, linf: 0.1, l2: 1, advConfidence: 0.9 },
  // clean wrong: never robust, not in the ASR denominator, no norms; misclassified adversarial
  { label: 1, cleanPred: 2, advPred: 2, success: true, linf: 0, l2: 0, advConfidence: 0.6 },
  // clean wrong, adversarial happens to be right: still not robust
  { label: 1, cleanPred: 3, advPred: 1, success: false, linf: 0.2, l2: 2, advConfidence: 0.4 },
  // clean right, fooled
  { label: 1, cleanPred: 1, advPred: 0, success: true, linf: 0.3, l2: 3, advConfidence: 0.5 },
  // the attack claims success by its own criterion but the prediction is right: robust by predictions
  { label: 1, cleanPred: 1, advPred: 1, success: true, linf: 0.2, l2: 5, advConfidence: 0.8 },
];

describe('Robustness', () => {
  const r = samples.reduce((acc, s) => acc.add(s), new Robustness());
  const s = r.summary();

  it('robust accuracy counts ALL samples, robust iff clean and adversarial predictions are right', () => {
    expect(s.n).toBe(6);
    expect(s.robust_acc).toBe(2 / 6);
    const ci = wilson(2, 6);
    expect(s.ci).toEqual([ci.lo, ci.hi]);
  });

  it('attack success rate is over clean-correct samples only', () => {
    expect(s.asr).toBe(3 / 4);
    const ci = wilson(3, 4);
    expect(s.asr_ci).toEqual([ci.lo, ci.hi]);
  });

  it('norms are over successful adversarials of clean-correct samples', () => {
    expect(s.mean_linf).toBeCloseTo((0.1 + 0.3 + 0.2) / 3, 15);
    expect(s.mean_l2).toBeCloseTo((1 + 3 + 5) / 3, 15);
    expect(s.median_linf).toBeCloseTo(0.2, 2);
    expect(s.median_l2).toBeCloseTo(3, 1);
  });

  it('mean confidence is over every misclassified adversarial, clean-wrong ones included', () => {
    expect(s.mean_conf_misclassified).toBeCloseTo((0.9 + 0.6 + 0.5) / 3, 15);
  });

  it('reports nulls where a denominator is empty', () => {
    const allWrong = new Robustness().add(samples[2]!).summary();
    expect(allWrong).toMatchObject({ robust_acc: 0, asr: null, asr_ci: [0, 1], mean_linf: null, median_l2: null, n: 1 });
    const allRobust = new Robustness().add(samples[0]!).summary();
    expect(allRobust.mean_conf_misclassified).toBeNull();
  });

  it('merges and round-trips through JSON text', () => {
    const a = samples.slice(0, 3).reduce((acc, x) => acc.add(x), new Robustness());
    const b = samples.slice(3).reduce((acc, x) => acc.add(x), new Robustness());
    const back = Robustness.fromJSON(JSON.parse(JSON.stringify(b.toJSON())));
    expect(back.merge(a).summary()).toEqual(s);
  });

  it('rejects a bad sample without counting it', () => {
    const before = JSON.stringify(r.toJSON());
    expect(() => r.add({ ...samples[0]!, advConfidence: 1.5 })).toThrow(/advConfidence/);
    expect(() => r.add({ ...samples[0]!, linf: -1 })).toThrow(/linf/);
    expect(() => r.add({ ...samples[0]!, label: 0.5 })).toThrow(/label/);
    expect(JSON.stringify(r.toJSON())).toBe(before);
  });
});
