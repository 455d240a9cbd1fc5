/**
 * audit-bench on a tiny configuration: small models, a few held-out images, cheap attacks, a
 * surrogate no detector uses, and the adaptive attack on order disagreement. Checks the JSON
 * schema and that the numbers are sensible, and that its roc lines make a report.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReport } from '../../src/report/index.js';
import { auditBench, rocLines, type AuditBenchResult } from '../../pipelines/index.js';
import { auditDetectors, auditModels, type AuditModels } from './audit-helpers.js';
import { scratchDir, testModels } from './helpers.js';

let dir: string;
let m: AuditModels;
let surrogate: string;
let result: AuditBenchResult;

const inUnit = (v: number) => v >= 0 && v <= 1;
const ordered = ([lo, hi]: [number, number], v: number) => lo <= v + 1e-12 && v <= hi + 1e-12 && inUnit(lo) && inUnit(hi);

beforeAll(async () => {
  dir = await scratchDir('audit-bench');
  m = await auditModels();
  surrogate = (await testModels())[1]!; // softmax regression: used by no detector
  result = await auditBench({
    detectors: auditDetectors(m),
    workers: 2,
    fpr: 0.05,
    calibration: path.join(dir, 'calibration.json'),
    calibrationLimit: 300,
    limit: 48,
    batch: 16,
    attacks: ['fgsm:eps=0.2', 'pgd:eps=0.2,steps=5'],
    sources: [m.mlp],
    surrogate,
    adaptive: { attack: 'pgd:eps=0.3,steps=10', detector: 'order-disagreement' },
    seed: 1,
  });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('auditBench', () => {
  it('measures every attack on every source, the surrogate, and the adaptive attack', () => {
    expect(result).toMatchObject({ type: 'audit-bench', version: 1, fpr_targets: [0.01, 0.05] });
    expect(result.data).toEqual({ uri: 'mnist:test', positions: 'position % 2 == 1 (held out from calibration)', n: 48 });
    expect(Object.keys(result.detectors)).toEqual(['order-disagreement', 'feature-squeezing', 'noise-instability', 'combined']);
    expect(result.results.map((r) => [r.label, r.source, r.kind])).toEqual([
      ['fgsm:eps=0.2', m.mlp, 'white-box'],
      ['fgsm:eps=0.2', surrogate, 'transfer'],
      ['pgd:eps=0.2,steps=5', m.mlp, 'white-box'],
      ['pgd:eps=0.2,steps=5', surrogate, 'transfer'],
      ['pgd:eps=0.3,steps=10 targeted', 'adaptive:order-disagreement', 'adaptive'],
    ]);
    expect(result.calibration.source).toMatch(/even positions only/);
  });

  it('gives sensible numbers: rates and AUCs in [0, 1], every interval around its estimate', () => {
    for (const [name, s] of Object.entries(result.clean.flag_rate)) {
      expect(s.n, name).toBe(48);
      expect(ordered(s.ci, s.p!), name).toBe(true);
    }
    for (const r of result.results) {
      expect(r.n).toBe(48);
      expect(ordered(r.attack_success.ci, r.attack_success.p!)).toBe(true);
      expect(r.positives).toBe(r.attack_success.k);
      for (const f of Object.values(r.fooled)) expect(ordered(f.ci, f.p!)).toBe(true);
      if (r.kind === 'white-box') expect(r.attack_success.p!).toBeGreaterThan(0.5);
      for (const [name, d] of Object.entries(r.detectors)) {
        const what = `${r.label} @ ${r.source}: ${name}`;
        if (r.positives === 0) {
          expect(d.auc, what).toBeNull();
          continue;
        }
        expect(inUnit(d.auc!), what).toBe(true);
        expect(ordered(d.auc_ci!, d.auc!), what).toBe(true);
        expect(d.tpr_at_fpr.map((t) => t.target)).toEqual([0.01, 0.05]);
        for (const t of d.tpr_at_fpr) {
          expect(t.fpr, what).toBeLessThanOrEqual(t.target);
          expect(ordered(t.ci, t.tpr), what).toBe(true);
        }
        expect(ordered(d.calibrated.ci, d.calibrated.tpr!), what).toBe(true);
        expect(d.roc[0]).toEqual({ fpr: 0, tpr: 0 });
        expect(d.roc.at(-1)).toEqual({ fpr: 1, tpr: 1 });
        expect(d.roc.length).toBeLessThanOrEqual(102);
      }
    }
    // White-box PGD at ε = 0.2 on a small MLP is far from clean: feature squeezing sees it.
    const pgd = result.results.find((r) => r.label.startsWith('pgd') && r.kind === 'white-box')!;
    expect(pgd.detectors['feature-squeezing']!.auc!).toBeGreaterThan(0.8);
  });

  it('writes roc lines that make a report of its detectors', async () => {
    const lines = rocLines(result);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatchObject({ type: 'roc', detector: 'order-disagreement', attack: `fgsm:eps=0.2 @ ${m.mlp}` });
    const report = await buildReport(lines, { source: 'bench.roc.ndjson' });
    expect(report.markdown).toMatch(/## Detectors/);
    expect(report.json.roc.length).toBe(lines.length);
  });
});
