import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BernoulliCusum } from '../../src/stats/index.js';
import { rng } from './helpers.js';

/** Alarms and records of a seeded Bernoulli(rate) stream of n flags. */
function run(test: BernoulliCusum, rate: number, n: number, seed: number): { alarms: number; firstAt: number | null } {
  const rand = rng(seed);
  let alarms = 0;
  let firstAt: number | null = null;
  for (let i = 0; i < n; i++) {
    if (test.add(`r${i}`, rand() < rate)) {
      alarms++;
      firstAt ??= i + 1;
    }
  }
  return { alarms, firstAt };
}

describe('BernoulliCusum', () => {
  it('rejects settings outside their ranges, with a coded error', () => {
    expect(() => new BernoulliCusum({ p0: 0, margin: 0.1, falseAlarmRate: 0.01 })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => new BernoulliCusum({ p0: 0.5, margin: 0.5, falseAlarmRate: 0.01 })).toThrow(/margin/);
    expect(() => new BernoulliCusum({ p0: 0.1, margin: -0.01, falseAlarmRate: 0.01 })).toThrow(/margin/);
    expect(() => new BernoulliCusum({ p0: 0.1, margin: 0.1, falseAlarmRate: 1 })).toThrow(/false-alarm rate/);
    expect(() => new BernoulliCusum({ p0: Number.NaN, margin: 0.1, falseAlarmRate: 0.1 })).toThrow(/p0/);
  });

  it('has the threshold ln(1/α) and the log-likelihood-ratio steps of p1 = p0 + margin', () => {
    const t = new BernoulliCusum({ p0: 0.05, margin: 0.05, falseAlarmRate: 1e-4 });
    expect(t.threshold).toBeCloseTo(Math.log(1e4), 12);
    expect(t.up).toBeCloseTo(Math.log(2), 12);
    expect(t.down).toBeCloseTo(Math.log(0.9 / 0.95), 12);
    expect(t.detectableRate).toBeGreaterThan(0.05);
    expect(t.detectableRate).toBeLessThan(0.1);
  });

  it('alarms after the first run of flags that reaches the threshold, reports the window, and resets', () => {
    // up = ln 2 per flag, threshold ln 8: three flags in a row from 0 alarm.
    const t = new BernoulliCusum({ p0: 0.25, margin: 0.25, falseAlarmRate: 1 / 8 });
    expect(t.add('a', false)).toBeUndefined();
    expect(t.add('b', true)).toBeUndefined();
    expect(t.add('c', true)).toBeUndefined();
    const alarm = t.add('d', true);
    expect(alarm).toBeDefined();
    expect(alarm!.window).toMatchObject({ first_id: 'a', last_id: 'd', records: 4, flagged: 3, rate: 0.75 });
    expect(alarm!.onset).toMatchObject({ first_id: 'b', last_id: 'd', records: 3, flagged: 3, rate: 1 });
    expect(alarm!.window.ci[0]).toBeLessThan(0.75);
    expect(alarm!.window.ci[1]).toBeGreaterThan(0.75);
    expect(alarm!.statistic).toBeGreaterThanOrEqual(alarm!.threshold - 1e-12);
    expect(alarm).toMatchObject({ p0: 0.25, p1: 0.5, false_alarm_rate: 0.125 });
    // Reset: the next window starts at the next record.
    expect(t.statistic).toBe(0);
    expect(t.alarms).toBe(1);
    t.add('e', true);
    t.add('f', true);
    const again = t.add('g', true);
    expect(again!.window).toMatchObject({ first_id: 'e', last_id: 'g', records: 3 });
  });

  it('forgets the onset when the statistic returns to 0', () => {
    const t = new BernoulliCusum({ p0: 0.25, margin: 0.25, falseAlarmRate: 1 / 8 });
    t.add('a', true);
    for (let i = 0; i < 5; i++) t.add(`n${i}`, false);
    expect(t.statistic).toBe(0);
    t.add('x', true);
    t.add('y', true);
    const alarm = t.add('z', true)!;
    expect(alarm.onset.first_id).toBe('x');
    expect(alarm.window.first_id).toBe('a');
    expect(alarm.window.records).toBe(9);
  });

  it('on clean streams at p0 raises at most the stated rate of false alarms per record (seeded, 400k records)', () => {
    const alpha = 2e-3;
    let alarms = 0;
    let records = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const t = new BernoulliCusum({ p0: 0.05, margin: 0.05, falseAlarmRate: alpha });
      alarms += run(t, 0.05, 20_000, seed).alarms;
      records += 20_000;
    }
    expect(alarms / records).toBeLessThanOrEqual(alpha);
    // The bound is loose but not vacuous here: some false alarms do happen at this α.
    expect(alarms).toBeGreaterThan(0);
  });

  it('property: for any p0, margin and α, a clean stream stays within α·N false alarms', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.005, max: 0.3, noNaN: true }),
        fc.double({ min: 0.2, max: 2, noNaN: true }),
        fc.double({ min: 1e-3, max: 0.05, noNaN: true }),
        fc.integer({ min: 1, max: 1e6 }),
        (p0, relMargin, alpha, seed) => {
          const t = new BernoulliCusum({ p0, margin: Math.min(p0 * relMargin, 0.9 - p0), falseAlarmRate: alpha });
          const n = 20_000;
          // Clean at p0 or below (a detector whose rate is under its target).
          const { alarms } = run(t, p0 * (seed % 2 ? 1 : 0.5), n, seed);
          // α·N is the expectation's bound; 3 standard deviations of a Poisson count on top.
          expect(alarms).toBeLessThanOrEqual(alpha * n + 3 * Math.sqrt(alpha * n));
        },
      ),
      { numRuns: 40, seed: 18 },
    );
  });

  it('property: a stream at p1 or above alarms, and sooner the higher its rate', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.005, max: 0.2, noNaN: true }), fc.integer({ min: 1, max: 1e6 }), (p0, seed) => {
        const margin = p0;
        const slow = run(new BernoulliCusum({ p0, margin, falseAlarmRate: 1e-6 }), p0 + margin, 200_000, seed);
        const fast = run(new BernoulliCusum({ p0, margin, falseAlarmRate: 1e-6 }), Math.min(0.95, p0 + 4 * margin), 200_000, seed);
        expect(slow.firstAt).not.toBeNull();
        expect(fast.firstAt).not.toBeNull();
        expect(fast.firstAt!).toBeLessThan(slow.firstAt!);
      }),
      { numRuns: 20, seed: 18 },
    );
  });

  it('checkpoints: a test resumed from JSON gives the same alarms as one that ran through', () => {
    const whole = new BernoulliCusum({ p0: 0.05, margin: 0.1, falseAlarmRate: 1e-3 });
    let half = new BernoulliCusum({ p0: 0.05, margin: 0.1, falseAlarmRate: 1e-3 });
    const rand = rng(7);
    const seen: [string | undefined, string | undefined][] = [];
    for (let i = 0; i < 5000; i++) {
      const flag = rand() < 0.12;
      if (i === 2500) half = BernoulliCusum.fromJSON(JSON.parse(JSON.stringify(half)));
      seen.push([whole.add(`r${i}`, flag)?.window.first_id, half.add(`r${i}`, flag)?.window.first_id]);
    }
    expect(seen.filter(([a]) => a !== undefined).length).toBeGreaterThan(0);
    for (const [a, b] of seen) expect(b).toBe(a);
    expect(() => BernoulliCusum.fromJSON({ ...whole.toJSON(), s: 1e9 })).toThrow(/threshold/);
    expect(() => BernoulliCusum.fromJSON({ ...whole.toJSON(), window: { first_id: null, last_id: null, records: 1, flagged: 0 } })).toThrow(/first_id/);
  });
});
