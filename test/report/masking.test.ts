import { describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { maskingWarnings, wellAbove, type MaskingInput } from '../../src/report/masking.js';
import { attackTraits, threatModels } from '../../src/report/threat-models.js';
import { wilson } from '../../src/stats/proportion.js';

const N = 1000;
const id = (spec: string) => parseAttackSpec(spec).id;
const FGSM3 = id('fgsm:eps=0.3');
const FGSM1 = id('fgsm:eps=0.1');
const PGD1 = id('pgd:eps=0.1');
const PGD3 = id('pgd:eps=0.3');
const AA3 = id('autoattack:eps=0.3');
const SQUARE3 = id('square:eps=0.3');
const MINEPS = id('mineps:attack=pgd,steps=20');

function rate(p: number) {
  const { lo, hi } = wilson(Math.round(p * N), N);
  return [lo, hi] as [number, number];
}
function robust(p: number) {
  return { robust_acc: p, ci: rate(p), asr: null, asr_ci: [0, 1] as [number, number], mean_linf: null, median_linf: null, mean_l2: null, median_l2: null, mean_conf_misclassified: null, n: N };
}
function summary(models: Record<string, Record<string, number>>, extra: Partial<MaskingInput> = {}): MaskingInput {
  return {
    images: N,
    models: Object.fromEntries(Object.entries(models).map(([m, attacks]) => [m, { clean: { acc: 0.98, ci: rate(0.98), n: N }, attacks: Object.fromEntries(Object.entries(attacks).map(([a, p]) => [a, robust(p)])) }])),
    transfer: {},
    ...extra,
  };
}
const codes = (s: MaskingInput) => maskingWarnings(s).map((w) => `${w.code} ${w.model}`);

describe('threat models', () => {
  it('reads norm, ε and kind from the registry, and worst-case ids from the id', () => {
    expect(attackTraits(PGD3)).toMatchObject({ name: 'pgd', norm: 'linf', eps: 0.3, gradientFree: false, singleStep: false });
    expect(attackTraits(FGSM3)).toMatchObject({ singleStep: true });
    expect(attackTraits(SQUARE3)).toMatchObject({ gradientFree: true, singleStep: false });
    expect(attackTraits(id('pgd:norm=l2,eps=2'))).toMatchObject({ norm: 'l2', eps: 2 });
    expect(attackTraits(MINEPS)).toMatchObject({ eps: undefined });
    expect(attackTraits('worst-case:eps=0.3,norm=linf')).toMatchObject({ norm: 'linf', eps: 0.3, worstCase: true });
    expect(attackTraits('frobnicate:eps=1')).toBeUndefined();
  });

  it('names the lowest robust accuracy per (norm, ε), counting a minimal-ε curve read at that ε', () => {
    // The report: FGSM at 0.3 gave 50.4% while the PGD curve gave 1.4% at 0.3.
    const curve = Array.from({ length: 41 }, (_, i) => ({ eps: i / 40, robust_acc: i / 40 < 0.3 ? 0.9 : i / 40 === 0.3 ? 0.014 : 0 }));
    const s = summary({ 'zoo:maxout-adv': { [FGSM3]: 0.504, [FGSM1]: 0.9, [MINEPS]: 0 } }, { curves: { 'zoo:maxout-adv': { [MINEPS]: curve } } });
    const rows = threatModels(s);
    expect(rows.map((r) => [r.label, r.lowest.attack, r.lowest.robust_acc])).toEqual([
      ['L∞ ε = 0.1', FGSM1, 0.9],
      ['L∞ ε = 0.3', MINEPS, 0.014],
    ]);
    expect(rows[0]!.lowestBy).toEqual([FGSM1, MINEPS]);
    expect(rows[1]!.lowest).toMatchObject({ from: 'curve', at: 0.3 });
    expect(rows[1]!.lowest.ci[0]).toBeGreaterThan(0);
    expect(rows[1]!.lowest.ci[1]).toBeLessThan(0.03);
  });

  it('reads a curve at its largest grid point below ε, never above', () => {
    const curve = [{ eps: 0, robust_acc: 0.98 }, { eps: 0.25, robust_acc: 0.5 }, { eps: 0.5, robust_acc: 0 }];
    const s = summary({ m: { [FGSM3]: 0.7, [MINEPS]: 0 } }, { curves: { m: { [MINEPS]: curve } } });
    expect(threatModels(s)[0]!.lowest).toMatchObject({ attack: MINEPS, robust_acc: 0.5, at: 0.25 });
  });

  it('groups ties and leaves out attacks with no budget', () => {
    const s = summary({ m: { [PGD3]: 0.1, [AA3]: 0.1, [id('cw')]: 0 } });
    const rows = threatModels(s);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.lowestBy.sort()).toEqual([AA3, PGD3].sort());
  });
});

describe('gradient-masking warnings', () => {
  it('flags PGD well above AutoAttack in the same ball (the default run\'s dam-n20)', () => {
    const w = maskingWarnings(summary({ 'zoo:dam-n20': { [PGD3]: 0.057, [AA3]: 0 } }));
    expect(w).toEqual([expect.objectContaining({ code: 'GRADIENT_ABOVE_AUTOATTACK', model: 'zoo:dam-n20', attack: PGD3, reference: AA3 })]);
    expect(w[0]!.message).toContain('5.7% under');
  });

  it('does not flag a gap inside the intervals, nor attacks in different balls', () => {
    expect(codes(summary({ m: { [PGD3]: 0.02, [AA3]: 0 } }))).toEqual([]);
    expect(codes(summary({ m: { [PGD1]: 0.6, [AA3]: 0 } }))).toEqual([]);
  });

  it('flags a black-box attack beating a white-box one, and a single-step one beating an iterative one', () => {
    expect(codes(summary({ m: { [PGD3]: 0.4, [SQUARE3]: 0.1 } }))).toEqual(['BLACK_BOX_BEATS_WHITE_BOX m']);
    expect(codes(summary({ m: { [PGD3]: 0.4, [FGSM3]: 0.2 } }))).toEqual(['SINGLE_STEP_BEATS_ITERATIVE m']);
    // The expected order (FGSM above PGD, PGD above Square by little) says nothing.
    expect(codes(summary({ m: { [PGD3]: 0.1, [FGSM3]: 0.7, [SQUARE3]: 0.09 } }))).toEqual([]);
  });

  it('flags transfer beating white-box on the target', () => {
    const cell = (err: number) => ({ err, ci: rate(err), n: N });
    const transfer = { [FGSM1]: { a: { a: cell(0.25), b: cell(0.4) }, b: { a: cell(0.6), b: cell(0.9) } } };
    const w = maskingWarnings(summary({ a: { [FGSM1]: 0.75 }, b: { [FGSM1]: 0.1 } }, { transfer }));
    expect(w.map((x) => [x.code, x.model, x.reference])).toEqual([['TRANSFER_BEATS_WHITE_BOX', 'a', 'b']]);
    expect(w[0]!.message).toContain('60.0%');
  });

  it('flags an L∞ minimal-ε curve that does not reach 0 at ε = 1', () => {
    const curve = (end: number) => Array.from({ length: 41 }, (_, i) => ({ eps: i / 40, robust_acc: i === 40 ? end : 0.5 }));
    expect(codes(summary({ m: { [MINEPS]: 0.3 } }, { curves: { m: { [MINEPS]: curve(0.3) } } }))).toEqual(['CURVE_NOT_TO_ZERO m']);
    expect(codes(summary({ m: { [MINEPS]: 0 } }, { curves: { m: { [MINEPS]: curve(0.005) } } }))).toEqual([]);
    const short = id('mineps:attack=pgd,steps=20,max=0.5');
    const half = Array.from({ length: 41 }, (_, i) => ({ eps: (i * 0.5) / 40, robust_acc: 0.3 }));
    expect(codes(summary({ m: { [short]: 0.3 } }, { curves: { m: { [short]: half } } }))).toEqual([]);
  });

  it('flags robust accuracy that rises with ε within one family', () => {
    expect(codes(summary({ m: { [PGD1]: 0.1, [PGD3]: 0.4 } }))).toEqual(['ACCURACY_RISES_WITH_EPS m']);
    expect(codes(summary({ m: { [PGD1]: 0.4, [PGD3]: 0.1 } }))).toEqual([]);
  });

  it('turns gradient counts into warnings when the run carries them', () => {
    const s = summary({ m: { [PGD3]: 0.1 } }, { gradients: { m: { images: 100, zero_gradients: 7, non_finite_gradients: 0, saturated_softmax: 80 } } });
    expect(codes(s)).toEqual(['ZERO_GRADIENTS m', 'SOFTMAX_SATURATED m']);
  });

  it('"well above" needs both the gap and disjoint intervals', () => {
    expect(wellAbove({ value: 0.2, ci: [0.15, 0.25] }, { value: 0.1, ci: [0.05, 0.14] })).toBe(true);
    expect(wellAbove({ value: 0.2, ci: [0.1, 0.3] }, { value: 0.1, ci: [0.05, 0.15] })).toBe(false);
    expect(wellAbove({ value: 0.14, ci: [0.13, 0.15] }, { value: 0.1, ci: [0.09, 0.11] })).toBe(false);
  });
});
