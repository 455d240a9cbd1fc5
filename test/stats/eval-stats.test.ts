import { describe, expect, it } from 'vitest';
import { isAdvstreamError } from '../../src/errors.js';
import {
  EvalStats,
  maxIntervalWidth,
  wilson,
  type AdversarialResult,
  type EvalStatsJSON,
  type EvalSummary,
  type SampleResult,
} from '../../src/stats/index.js';
import { exactQuantile, randInt, randomPartition, rng, shuffle, treeMerge } from './helpers.js';

const MODELS = ['zoo:cnn', 'zoo:mlp', 'user:a'];
const ATTACKS = ['fgsm', 'pgd'];
const GRID = Array.from({ length: 21 }, (_, i) => i / 100);
const OPTIONS = { curveGrids: { pgd: GRID } };
const ALPHA = 0.005;

function wrongClass(label: number, rand: () => number): number {
  return (label + 1 + randInt(rand, 9)) % 10;
}

/** On grid points, between them, past the grid, Infinity; for a clean-wrong sample sometimes not 0. */
function minEps(cleanRight: boolean, success: boolean, rand: () => number): number {
  if (!cleanRight) return rand() < 0.5 ? 0 : 0.05; // must count as 0 anyway
  if (!success) return Infinity;
  return rand() < 0.3 ? GRID[1 + randInt(rand, GRID.length - 1)]! : 0.25 * rand() + 1e-6;
}

/** A random evaluation stream: mostly-correct models, partly successful attacks, some pairs missing. */
function stream(n: number, seed: number): SampleResult[] {
  const rand = rng(seed);
  return Array.from({ length: n }, () => {
    const label = randInt(rand, 10);
    const clean: Record<string, number> = {};
    for (const m of MODELS) clean[m] = rand() < 0.85 ? label : wrongClass(label, rand);
    const adversarials: AdversarialResult[] = [];
    for (const attack of ATTACKS) {
      for (const source of MODELS) {
        if (attack === 'fgsm' && source === 'user:a' && rand() < 0.3) continue;
        const cleanRight = clean[source] === label;
        const success = cleanRight && rand() < 0.6;
        const preds: Record<string, number> = {};
        for (const m of MODELS) {
          if (m === source) preds[m] = success ? wrongClass(label, rand) : clean[source]!;
          else preds[m] = rand() < 0.35 ? wrongClass(label, rand) : label; // transfers some of the time
        }
        const entry: AdversarialResult = {
          attack,
          source,
          success,
          linf: success ? rand() * 0.3 : 0,
          l2: success ? Math.exp(2 * rand()) : 0,
          confidence: 0.1 + 0.9 * rand(),
          preds,
        };
        if (attack === 'pgd') entry.minEps = minEps(cleanRight, success, rand);
        adversarials.push(entry);
      }
    }
    return { label, clean, adversarials };
  });
}

function statsOf(samples: readonly SampleResult[]): EvalStats {
  return samples.reduce((s, x) => s.add(x), new EvalStats(OPTIONS));
}

const roundTrip = (s: EvalStats): EvalStats => EvalStats.fromJSON(JSON.parse(JSON.stringify(s.toJSON())));

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

function expectRelClose(actual: number | null, expected: number): void {
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected)).toBeLessThanOrEqual(1e-12 * Math.abs(expected));
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isAdvstreamError(e) ? e.code : 'not an AdvstreamError';
  }
  return undefined;
}

describe('EvalStats', () => {
  const samples = stream(3000, 11);
  const whole = statsOf(samples);
  const summary = whole.summary();

  it('merge is associative and commutative: any partition, order and grouping gives the same state', () => {
    const rand = rng(12);
    const reference = JSON.stringify(whole.toJSON());
    for (let trial = 0; trial < 4; trial++) {
      const parts = randomPartition(samples, 2 + randInt(rand, 8), rand).map(statsOf);
      const left = parts.map(roundTrip).reduce((a, b) => a.merge(b), new EvalStats());
      const right = parts.map(roundTrip).reduceRight((a, b) => a.merge(b), new EvalStats());
      const tree = treeMerge(shuffle(parts.map(roundTrip), rand), (a, b) => a.merge(b));
      for (const merged of [left, right, tree]) {
        expect(JSON.stringify(merged.toJSON())).toBe(reference);
        expect(merged.summary()).toStrictEqual(summary);
      }
    }
    const [a, b] = randomPartition(samples, 2, rand).map(statsOf);
    expect(roundTrip(a!).merge(b!).toJSON()).toEqual(roundTrip(b!).merge(a!).toJSON());
  });

  it('resumes from a checkpoint: round trip mid-stream, then feed the rest', () => {
    const resumed = roundTrip(statsOf(samples.slice(0, 1234)));
    for (const s of samples.slice(1234)) resumed.add(s);
    expect(resumed.summary()).toStrictEqual(summary);
  });

  it('matches a direct computation of every reported number', () => {
    expect(summary.images).toBe(samples.length);
    for (const model of MODELS) {
      const right = samples.filter((s) => s.clean[model] === s.label).length;
      const m = summary.models[model]!;
      expect(m.clean.n).toBe(samples.length);
      expect(m.clean.acc).toBe(right / samples.length);
      const ci = wilson(right, samples.length);
      expect(m.clean.ci).toEqual([ci.lo, ci.hi]);
      for (const attack of ATTACKS) {
        const rows = samples.flatMap((s) =>
          s.adversarials.filter((a) => a.attack === attack && a.source === model).map((a) => ({ s, a })),
        );
        const cleanRight = rows.filter(({ s }) => s.clean[model] === s.label);
        const fooled = cleanRight.filter(({ a }) => a.success);
        const misclassified = rows.filter(({ s, a }) => a.preds[model] !== s.label);
        const r = m.attacks[attack]!;
        expect(r.n).toBe(rows.length);
        const robust = rows.filter(({ s, a }) => s.clean[model] === s.label && a.preds[model] === s.label);
        expect(r.robust_acc).toBe(robust.length / rows.length);
        expect(r.asr).toBe(fooled.length / cleanRight.length);
        expectRelClose(r.mean_linf, mean(fooled.map(({ a }) => a.linf)));
        expectRelClose(r.mean_l2, mean(fooled.map(({ a }) => a.l2)));
        expectRelClose(r.mean_conf_misclassified, mean(misclassified.map(({ a }) => a.confidence)));
        const medianLinf = exactQuantile(fooled.map(({ a }) => a.linf).sort((x, y) => x - y), 0.5);
        expect(Math.abs(r.median_linf! - medianLinf)).toBeLessThanOrEqual(ALPHA * medianLinf * (1 + 1e-12));
        const medianL2 = exactQuantile(fooled.map(({ a }) => a.l2).sort((x, y) => x - y), 0.5);
        expect(Math.abs(r.median_l2! - medianL2)).toBeLessThanOrEqual(ALPHA * medianL2 * (1 + 1e-12));
        for (const target of MODELS) {
          const cell = summary.transfer[attack]![model]![target]!;
          expect(cell.n).toBe(rows.length);
          expect(cell.err).toBe(rows.filter(({ s, a }) => a.preds[target] !== s.label).length / rows.length);
        }
      }
      // The curve: a clean-wrong sample counts as ε = 0 whatever it reported.
      const eps = samples.map((s) =>
        s.clean[model] !== s.label ? 0 : s.adversarials.find((a) => a.attack === 'pgd' && a.source === model)!.minEps!,
      );
      const curve = summary.curves![model]!.pgd!;
      expect(curve.map((p) => p.eps)).toEqual(GRID);
      for (const p of curve) expect(p.robust_acc).toBe(eps.filter((e) => e > p.eps).length / eps.length);
      expect(curve[0]!.robust_acc).toBe(m.clean.acc);
    }
  });

  it('produces exactly the final-record schema', () => {
    expect(Object.keys(summary)).toEqual(['images', 'models', 'transfer', 'curves']);
    expect(Object.keys(summary.models)).toEqual([...MODELS].sort());
    const m = summary.models['zoo:cnn']!;
    expect(Object.keys(m)).toEqual(['clean', 'attacks']);
    expect(Object.keys(m.clean)).toEqual(['acc', 'ci', 'n']);
    expect(Object.keys(m.attacks)).toEqual(ATTACKS);
    expect(Object.keys(m.attacks.pgd!)).toEqual([
      'robust_acc', 'ci', 'asr', 'asr_ci', 'mean_linf', 'median_linf', 'mean_l2', 'median_l2', 'mean_conf_misclassified', 'n',
    ]);
    expect(Object.keys(summary.transfer.pgd!['zoo:cnn']!['user:a']!)).toEqual(['err', 'ci', 'n']);
    expect(Object.keys(summary.curves!['zoo:cnn']!)).toEqual(['pgd']);
    expect(Object.keys(summary.curves!['zoo:cnn']!.pgd![0]!)).toEqual(['eps', 'robust_acc']);
    expect(JSON.parse(JSON.stringify(summary))).toStrictEqual(summary);
    expect('curves' in new EvalStats().summary()).toBe(false);
  });

  it('maxIntervalWidth is the widest reported interval and shrinks with more data', () => {
    const widths = (s: EvalSummary): number[] => [
      ...Object.values(s.models).flatMap((m) => [m.clean.ci, ...Object.values(m.attacks).flatMap((a) => [a.ci, a.asr_ci])]),
      ...Object.values(s.transfer).flatMap((src) => Object.values(src).flatMap((t) => Object.values(t).map((c) => c.ci))),
    ].map(([lo, hi]) => hi - lo);
    expect(maxIntervalWidth(summary)).toBe(Math.max(...widths(summary)));
    expect(maxIntervalWidth(statsOf(samples.slice(0, 100)).summary())).toBeGreaterThan(maxIntervalWidth(summary));
    expect(maxIntervalWidth(new EvalStats().summary())).toBe(1);
    // An attack success rate with no clean-correct sample yet is [0, 1]: keep reading.
    const adv = { attack: 'a', source: 'm', success: false, linf: 0, l2: 0, confidence: 0.5, preds: { m: 1 } };
    const none = new EvalStats().add({ label: 0, clean: { m: 1 }, adversarials: [adv] });
    expect(maxIntervalWidth(none.summary())).toBe(1);
  });

  it('merging does not alias the other side', () => {
    const [a, b] = randomPartition(samples.slice(0, 200), 2, rng(3)).map(statsOf);
    const before = JSON.stringify(a!.merge(b!).toJSON());
    b!.add(samples[500]!);
    b!.throughput.add({ workerId: 'w', images: 1, gradEvals: 0, forwardEvals: 1, startMs: 0, endMs: 1 });
    expect(JSON.stringify(a!.toJSON())).toBe(before);
  });

  it('rejects bad samples whole, with BAD_ARGUMENT, counting nothing', () => {
    const s = statsOf(samples.slice(0, 10));
    const before = JSON.stringify(s.toJSON());
    const good = samples[0]!;
    const adv = good.adversarials[0]!;
    const bad: unknown[] = [
      { ...good, label: -1 },
      { ...good, clean: { ...good.clean, 'zoo:cnn': 1.5 } },
      { ...good, adversarials: [...good.adversarials, adv] },
      { ...good, adversarials: [{ ...adv, source: 'unknown' }] },
      { ...good, adversarials: [{ ...adv, confidence: 2 }] },
      { ...good, adversarials: [{ ...adv, linf: NaN }] },
      { ...good, adversarials: [{ ...adv, preds: {} }] },
      { ...good, adversarials: [{ ...adv, attack: 'fgsm', minEps: 0.1 }] },
      { ...good, adversarials: [{ ...adv, attack: 'pgd', minEps: -1 }] },
      { ...good, adversarials: [{ ...adv, attack: '' }] },
      { ...good, adversarials: [good.adversarials[1]!, { ...adv, success: 'yes' }] },
    ];
    for (const b of bad) expect(codeOf(() => s.add(b as SampleResult))).toBe('BAD_ARGUMENT');
    expect(JSON.stringify(s.toJSON())).toBe(before);
  });

  it('refuses to merge different epsilon grids and unknown checkpoint versions', () => {
    const other = new EvalStats({ curveGrids: { pgd: [0, 0.5] } });
    expect(codeOf(() => roundTrip(whole).merge(other))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => EvalStats.fromJSON({ ...whole.toJSON(), version: 2 as 1 }))).toBe('BAD_ARGUMENT');
    // An id that would rewrite a prototype when used as a key.
    const poisoned = JSON.stringify(new EvalStats().toJSON()).replace('"clean":{}', '"clean":{"__proto__":{"k":0,"n":0}}');
    expect(codeOf(() => EvalStats.fromJSON(JSON.parse(poisoned) as EvalStatsJSON))).toBe('BAD_ARGUMENT');
  });

  it('carries throughput through merge and checkpoints', () => {
    const a = new EvalStats();
    a.throughput.add({ workerId: 'h/0', images: 8, gradEvals: 80, forwardEvals: 88, startMs: 0, endMs: 500 });
    const b = new EvalStats();
    b.throughput.add({ workerId: 'h/1', images: 8, gradEvals: 80, forwardEvals: 88, startMs: 250, endMs: 1000 });
    const t = roundTrip(a).merge(roundTrip(b)).throughput.summary();
    expect(t).toMatchObject({ images: 16, grad_evals: 160, wall_s: 1, images_per_s: 16 });
  });
});
