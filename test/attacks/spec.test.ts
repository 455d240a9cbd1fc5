import { describe, expect, it } from 'vitest';
import { ATTACKS, attackNames, parseAttackSpec, LinfPgd, L2Pgd, MinimalEpsilon, LinfFgsm } from '../../src/attacks/index.js';
import { isAdvstreamError, type AdvstreamError } from '../../src/errors.js';

function specError(spec: string): AdvstreamError {
  try {
    parseAttackSpec(spec);
  } catch (e) {
    if (isAdvstreamError(e)) return e;
    throw e;
  }
  throw new Error(`'${spec}' parsed`);
}

describe('attack specs', () => {
  it('writes the canonical id: every parameter, sorted, defaults filled', () => {
    expect(parseAttackSpec('fgsm:eps=0.25').id).toBe('fgsm:clip=true,eps=0.25,loss=ce');
    expect(parseAttackSpec('pgd:norm=linf,eps=0.3,steps=40,step=0.01,restarts=1').id).toBe(
      'pgd:eps=0.3,loss=ce,norm=linf,random=true,restarts=1,step=0.01,steps=40',
    );
    expect(parseAttackSpec('apgd-ce:eps=0.3').id).toBe('apgd-ce:eps=0.3,loss=ce,norm=linf,restarts=1,rho=0.75,steps=100');
    expect(parseAttackSpec('square:eps=0.3,queries=5000').id).toBe('square:eps=0.3,norm=linf,pinit=0.8,queries=5000');
    expect(parseAttackSpec('autoattack:eps=0.3').id).toBe('autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9');
  });

  it('ignores order, case and spaces, and reads fractions', () => {
    const a = parseAttackSpec(' PGD : steps=40 , eps=8/255 ');
    expect(a.id).toBe(parseAttackSpec('pgd:eps=0.0313725490196,steps=40').id);
    expect(a.params.eps).toBeCloseTo(8 / 255, 10);
  });

  it('computes defaults from other parameters', () => {
    expect(parseAttackSpec('pgd:norm=l2').params).toMatchObject({ eps: 2, steps: 40, step: 0.125 });
    expect(parseAttackSpec('pgd:eps=0.3,steps=40').params.step).toBe(0.01875);
    expect(parseAttackSpec('bim:eps=0.3').params.step).toBe(0.03);
  });

  it('round-trips every registered attack through its id', () => {
    for (const entry of ATTACKS) {
      const a = parseAttackSpec(entry.name);
      expect(a.name).toBe(entry.name);
      expect(a.kind).toBe(entry.kind);
      expect(parseAttackSpec(a.id).id).toBe(a.id);
    }
  });

  it('gives the same id to the classes built directly', () => {
    expect(new LinfPgd({ eps: 0.3, steps: 40, step: 0.01 }).id).toBe(parseAttackSpec('pgd:eps=0.3,steps=40,step=0.01').id);
    expect(new L2Pgd({ eps: 2 }).id).toBe(parseAttackSpec('pgd:norm=l2').id);
    expect(new LinfFgsm({ clip: false }).id).toBe('fgsm:clip=false,eps=0.25,loss=ce');
  });

  it('rejects unknown attacks, listing the registered ones', () => {
    const e = specError('fgsmm:eps=0.3');
    expect(e.code).toBe('BAD_SPEC');
    expect(e.details.valid).toEqual(attackNames());
  });

  it('rejects unknown keys, listing the valid ones', () => {
    const e = specError('pgd:eps=0.3,stpes=40');
    expect(e.code).toBe('BAD_SPEC');
    expect(e.message).toContain("unknown parameter 'stpes'");
    const valid = e.details.valid as string[];
    for (const key of ['eps', 'loss', 'norm', 'random', 'restarts', 'step', 'steps']) {
      expect(valid.some((v) => v.startsWith(`${key} `))).toBe(true);
    }
  });

  it('rejects out-of-range and ill-typed values, stating the range', () => {
    for (const spec of ['pgd:eps=0', 'pgd:eps=-1', 'pgd:steps=0', 'pgd:steps=2.5', 'pgd:norm=l1', 'fgsm:clip=maybe', 'square:pinit=1.5', 'apgd-ce:eps=abc', 'pgd:eps=']) {
      const e = specError(spec);
      expect(e.code, spec).toBe('BAD_SPEC');
      expect((e.details.valid as string[]).length, spec).toBe(1);
    }
    expect(specError('pgd:steps=0').details.valid).toEqual(['steps (integer in [1, 100000])']);
    expect(specError('pgd:norm=l1').details.valid).toEqual(['norm (linf|l2)']);
  });

  it('rejects malformed specs', () => {
    expect(specError('pgd:eps').code).toBe('BAD_SPEC');
    expect(specError('pgd:eps=0.1,eps=0.2').message).toContain('given twice');
    expect(specError(':eps=0.1').code).toBe('BAD_SPEC');
  });

  it('lets mineps carry its attack\'s parameters beside its own', () => {
    const a = parseAttackSpec('mineps:attack=pgd,steps=20,max=1,tol=0.005');
    expect(a).toBeInstanceOf(MinimalEpsilon);
    expect(a.id).toBe('mineps:attack=pgd,eps=0.3,loss=ce,max=1,norm=linf,random=true,restarts=1,step=0.0375,steps=20,tol=0.005');
    expect(parseAttackSpec(a.id).id).toBe(a.id);
    expect(parseAttackSpec('mineps:attack=pgd,norm=l2').params).toMatchObject({ max: 10, tol: 0.05 });
    expect(parseAttackSpec('mineps:attack=cw').distance.name).toBe('l2');
    const e = specError('mineps:attack=pgd,queries=10');
    expect(e.details.valid).toEqual(expect.arrayContaining(['max (number in (0, 1000])', 'steps (integer in [1, 100000])']));
    expect(specError('mineps:attack=mineps').details.valid).not.toContain('mineps');
    expect(specError('mineps:attack=nope').code).toBe('BAD_SPEC');
  });

  it('keeps the keys of mineps apart from every attack it can wrap', () => {
    const mineps = ATTACKS.find((e) => e.name === 'mineps')!;
    for (const entry of ATTACKS.filter((e) => !e.wraps)) {
      for (const key of Object.keys(mineps.params)) expect(Object.keys(entry.params), `${entry.name}.${key}`).not.toContain(key);
    }
  });
});
