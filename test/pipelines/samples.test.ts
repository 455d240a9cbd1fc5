import { describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { decodePixels } from '../../src/report/index.js';
import type { AdversarialResult } from '../../src/stats/index.js';
import { imagePixels, sampleLine, worstCase, worstCaseGroups, type BatchPixels } from '../../pipelines/index.js';

describe('worst case over attacks', () => {
  it('groups fixed-ε attacks by norm and ε, and only groups of two or more', () => {
    const specs = ['fgsm:eps=0.3', 'pgd:eps=0.3,steps=5', 'pgd:norm=l2,eps=0.3', 'mineps:attack=fgsm', 'fgsm:eps=0.1', 'bim:eps=0.3'];
    expect(worstCaseGroups(specs.map((s) => parseAttackSpec(s)))).toEqual([{ id: 'worst-case:eps=0.3,norm=linf', attacks: [0, 1, 5] }]);
    expect(worstCaseGroups(['fgsm:eps=0.1', 'pgd:eps=0.3'].map((s) => parseAttackSpec(s)))).toEqual([]);
  });

  const entry = (attack: string, success: boolean, pred: number, linf: number): AdversarialResult => ({
    attack,
    source: 'm',
    success,
    linf,
    l2: linf * 10,
    confidence: 0.5,
    preds: { m: pred, other: 1 },
  });

  it('takes the first adversarial the source misclassifies; success if any attack succeeded', () => {
    const w = worstCase('worst', [entry('a', false, 3, 0.1), entry('b', true, 5, 0.2), entry('c', true, 6, 0.3)], 3);
    expect(w).toMatchObject({ attack: 'worst', success: true, linf: 0.2, preds: { m: 5 } });
  });

  it('keeps the first attack when none broke the image', () => {
    const w = worstCase('worst', [{ ...entry('a', false, 3, 0.1), minEps: 0.4 }, entry('b', false, 3, 0.2)], 3);
    expect(w).toEqual({ ...entry('worst', false, 3, 0.1) });
  });

  it('writes samples lines without worst-case entries, and Infinity minimal ε as null', () => {
    const line = sampleLine('img-1', {
      label: 3,
      clean: { m: 3 },
      adversarials: [{ ...entry('mineps:x', false, 3, 0), minEps: Infinity }, entry('worst-case:eps=0.3,norm=linf', false, 3, 0)],
    });
    expect(line).toEqual({ id: 'img-1', label: 3, clean: { m: 3 }, adversarials: [{ ...entry('mineps:x', false, 3, 0), min_eps: null }] });
  });

  it('writes the pixels of an image with them in the report format, one adversarial per attack and source', () => {
    // Two images of 2×2×1, three pairs; pixel values encode (pair, image, index) so a misplaced row shows.
    const value = (p: number, i: number, j: number) => (p * 8 + i * 4 + j + 1) / 255;
    const batch: BatchPixels = {
      count: 2,
      shape: [2, 2, 1],
      clean: Float32Array.from({ length: 8 }, (_, k) => (100 + k) / 255),
      adversarial: Float32Array.from({ length: 3 * 2 * 4 }, (_, k) => value(Math.floor(k / 8), Math.floor((k % 8) / 4), k % 4)),
    };
    const sample = {
      label: 3,
      clean: { m: 3 },
      adversarials: [entry('a', true, 5, 0.1), entry('b', false, 3, 0.2), entry('worst-case:eps=0.1,norm=linf', true, 5, 0.1), entry('c', true, 1, 0.3)],
    };
    const line = sampleLine('img-1', sample, imagePixels(batch, 1));
    expect(line.shape).toEqual([2, 2, 1]);
    expect(Array.from(decodePixels(line.pixels, { file: 'test' }), (v) => Math.round(v * 255))).toEqual([104, 105, 106, 107]);
    expect(line.adversarials.map((a) => a.attack)).toEqual(['a', 'b', 'c']);
    line.adversarials.forEach((a, p) => {
      expect(a.adversarial).toMatch(/^u8:/);
      const decoded = Array.from(decodePixels(a.adversarial, { file: 'test' }), (v) => Math.round(v * 255));
      expect(decoded).toEqual([0, 1, 2, 3].map((j) => Math.round(value(p, 1, j) * 255)));
    });
    expect(imagePixels(batch, 2)).toBeUndefined();
    expect(imagePixels(undefined, 0)).toBeUndefined();
    expect(sampleLine('img-2', sample)).not.toHaveProperty('pixels');
  });
});
