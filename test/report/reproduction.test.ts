/**
 * The reproduction document: the verdict rule, the estimates read out of evaluation summaries, the
 * five experiments judged on synthetic evaluations of their own runs, and the rendering.
 */
import { describe, expect, it } from 'vitest';
import { isAdvstreamError } from '../../src/errors.js';
import { zooModels } from '../../src/models/zoo.js';
import {
  canonical,
  EXPERIMENTS,
  ISO_EPS,
  judgeNumber,
  judgeQualitative,
  renderReproduction,
  RunResults,
  ZOO_NAMES,
  type DocumentRun,
  type Experiment,
  type ReproRun,
  type RunOutcome,
} from '../../src/report/index.js';
import { EvalStats, type SampleResult } from '../../src/stats/index.js';
import { randInt, rng } from '../stats/helpers.js';

/** An evaluation of `run` on `n` random images: every model, attack and source present. */
function syntheticOutcome(run: ReproRun, n: number, seed: number): RunOutcome {
  const rand = rng(seed);
  const stats = new EvalStats();
  const guess = (label: number, pRight: number) => (rand() < pRight ? label : (label + 1 + randInt(rand, 9)) % 10);
  for (let i = 0; i < n; i++) {
    const label = randInt(rand, 10);
    const clean = Object.fromEntries(run.models.map((m) => [m, guess(label, 0.9)]));
    const adversarials: SampleResult['adversarials'] = run.attacks.flatMap((spec) =>
      run.models.map((source) => {
        const preds = Object.fromEntries(run.models.map((m) => [m, guess(label, m === source ? 0.3 : 0.6)]));
        return { attack: canonical(spec), source, success: preds[source] !== label, linf: 0.1 * rand(), l2: 2 * rand(), confidence: 0.5 + 0.5 * rand(), preds };
      }),
    );
    stats.add({ label, clean, adversarials });
  }
  return {
    ...stats.summary(),
    backend: 'wasm',
    engine: 'tfjs-wasm',
    simd: true,
    workers: 2,
    mode: 'pool',
    throughput: { elapsed_s: 12.5, images_per_s: n / 12.5 },
    provenance: {},
  };
}

function documentRuns(experiments: readonly Experiment[], n = 200): DocumentRun[] {
  return experiments.flatMap((e, i) =>
    e.runs.map((run, j) => ({ experiment: e.id, run, command: `npx advstream eval ${run.id}`, outcome: syntheticOutcome(run, n, 100 * i + j), fresh: true })),
  );
}

const OPTIONS = { images: 200, command: 'advstream reproduce --limit 200', commit: 'abc123', generatedAt: '2026-11-22T00:00:00Z', figureDir: 'reproduction' };

describe('judgeNumber', () => {
  const base = { claim: 'error', paper: 0.5, tolerance: 0.03, stronger: 'higher' as const, direction: { holds: true, text: 'most are fooled' } };

  it('reproduces within the tolerance, or when the paper lies in our interval', () => {
    expect(judgeNumber({ ...base, ours: { value: 0.52 } }).verdict).toBe('reproduced');
    expect(judgeNumber({ ...base, ours: { value: 0.6, ci: [0.45, 0.7] } }).verdict).toBe('reproduced');
  });

  it('says stronger or weaker by the side of the paper\'s effect when the direction holds', () => {
    expect(judgeNumber({ ...base, ours: { value: 0.7, ci: [0.65, 0.75] } }).verdict).toBe('same direction, stronger');
    expect(judgeNumber({ ...base, ours: { value: 0.3, ci: [0.25, 0.35] } }).verdict).toBe('same direction, weaker');
    expect(judgeNumber({ ...base, stronger: 'lower', ours: { value: 0.3 } }).verdict).toBe('same direction, stronger');
  });

  it('is not reproduced when the qualitative claim fails, and says why', () => {
    const row = judgeNumber({ ...base, ours: { value: 0.1 }, direction: { holds: false, text: 'few are fooled' } });
    expect(row.verdict).toBe('not reproduced');
    expect(row.reason).toContain('few are fooled');
    expect(row.reason).toContain('−40.0 pts');
  });

  it('prints small proportions with two decimals', () => {
    expect(judgeNumber({ ...base, paper: 0.0084, ours: { value: 0.0133, ci: [0.011, 0.0157] } }).paper).toBe('0.84%');
  });
});

describe('judgeQualitative', () => {
  it('follows the test, with weaker for a claim that holds by a small margin', () => {
    expect(judgeQualitative('c', 'p', 'o', { holds: true, text: 't' }).verdict).toBe('reproduced');
    expect(judgeQualitative('c', 'p', 'o', { holds: true, weaker: true, text: 't' }).verdict).toBe('same direction, weaker');
    expect(judgeQualitative('c', 'p', 'o', { holds: false, weaker: true, text: 't' }).verdict).toBe('not reproduced');
  });
});

describe('RunResults', () => {
  const run: ReproRun = { id: 'r', models: ['a', 'b'], attacks: ['fgsm:eps=0.1'] };
  const outcome = syntheticOutcome(run, 300, 7);
  const results = new RunResults(new Map([['r', outcome]]));

  it('reads error as 1 − robust accuracy with the interval flipped', () => {
    const robust = results.robust('r', 'a', 'fgsm:eps=0.1');
    const error = results.error('r', 'a', 'fgsm:eps=0.1');
    expect(error.value).toBeCloseTo(1 - robust.value, 12);
    expect(error.ci![0]).toBeCloseTo(1 - robust.ci![1], 12);
    expect(error.ci![1]).toBeCloseTo(1 - robust.ci![0], 12);
  });

  it('pools transfer cells by their counts', () => {
    const t = outcome.transfer[canonical('fgsm:eps=0.1')]!;
    const ab = t.a!.b!;
    const ba = t.b!.a!;
    const pooled = results.transfer('r', 'fgsm:eps=0.1', [['a', 'b'], ['b', 'a']]);
    expect(pooled.value).toBeCloseTo((ab.err! * ab.n + ba.err! * ba.n) / (ab.n + ba.n), 12);
    expect(pooled.ci![0]).toBeLessThan(pooled.value);
  });

  it('fails with BAD_ARGUMENT on a run, model or attack it does not have', () => {
    for (const f of [() => results.run('x'), () => results.clean('r', 'c'), () => results.robust('r', 'a', 'pgd:eps=0.3')]) {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(isAdvstreamError(e) && e.code).toBe('BAD_ARGUMENT');
      }
    }
  });
});

describe('the experiments', () => {
  it('name each run once, with specs the attack registry accepts', () => {
    const ids = EXPERIMENTS.flatMap((e) => e.runs.map((r) => r.id));
    expect(new Set(ids).size).toBe(ids.length);
    for (const r of EXPERIMENTS.flatMap((e) => e.runs)) for (const a of r.attacks) expect(() => canonical(a)).not.toThrow();
  });

  it('check every shipped zoo model in the AutoAttack experiment', async () => {
    expect([...ZOO_NAMES].sort()).toEqual((await zooModels()).map((m) => m.name).sort());
  });

  it('use the isometric paper\'s grid, logspace(−2, 0, 10)', () => {
    expect(ISO_EPS).toHaveLength(10);
    expect(ISO_EPS[0]).toBe(0.01);
    expect(ISO_EPS[9]).toBe(1);
    ISO_EPS.forEach((e, i) => expect(Math.abs(e / 10 ** (-2 + (2 * i) / 9) - 1)).toBeLessThan(5e-4));
  });

  it('each judge every claim of its runs and the document renders them all, with figures', async () => {
    const doc = await renderReproduction(EXPERIMENTS, documentRuns(EXPERIMENTS), OPTIONS);
    const perExperiment = EXPERIMENTS.map((e) => e.judge(new RunResults(new Map(documentRuns([e]).map((r) => [r.run.id, r.outcome])))).claims.length);
    expect(doc.claims).toHaveLength(perExperiment.reduce((a, b) => a + b, 0));
    for (const c of doc.claims) {
      expect(['reproduced', 'same direction, weaker', 'same direction, stronger', 'not reproduced']).toContain(c.verdict);
      expect(c.reason.length).toBeGreaterThan(0);
    }
    expect(doc.markdown).toContain('**Quick pass: 200 MNIST test images per evaluation**');
    expect(doc.markdown).toContain('Do not edit');
    for (const e of EXPERIMENTS) expect(doc.markdown).toContain(`. ${e.title}`);
    for (const [file, svg] of doc.figures) {
      expect(doc.markdown).toContain(`](reproduction/${file})`);
      expect(svg.startsWith('<svg')).toBe(true);
    }
    expect(doc.figures.size).toBeGreaterThanOrEqual(EXPERIMENTS.length);
    // The run-time section names the largest part.
    expect(doc.markdown).toMatch(/the largest part is `[a-z-]+`/);
  });

  it('render the experiments whose runs are present and list the others as not run', async () => {
    const [first, ...rest] = EXPERIMENTS;
    const doc = await renderReproduction(EXPERIMENTS, documentRuns([first!]), OPTIONS);
    expect(doc.markdown).toContain(`## 1. ${first!.title}`);
    expect(doc.markdown).toContain(`Not run in this pass: ${rest.map((e) => e.title).join('; ')}.`);
  });
});
