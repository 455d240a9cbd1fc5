import { writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { firstValueFrom, from, lastValueFrom, NEVER, Subject, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSource } from '../../src/data/index.js';
import {
  AlarmMonitor,
  alarmsOf,
  calibratedUpperRate,
  cleanFlagRate,
  createAlarmStream,
  defaultMargin,
  MAX_GROUP_KEY,
  withAlarms,
  type AuditAlarmEvent,
  type AuditEvent,
} from '../../pipelines/index.js';
import { rng } from '../stats/helpers.js';
import { scratchDir } from './helpers.js';

interface V {
  id: string;
  flagged: boolean;
  meta?: Record<string, string | number | boolean>;
}

/** Three flags in a row alarm from 0 (up = ln 2, threshold ln 8). */
const QUICK = { margin: 0.25, falseAlarmRate: 1 / 8 };
const P0 = 0.25;

const run = (n: number, flagged: boolean, meta?: V['meta'], prefix = 'r'): V[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, flagged, ...(meta ? { meta } : {}) }));

describe('AlarmMonitor', () => {
  it('tests the whole stream as one group without groupBy', () => {
    const m = new AlarmMonitor(P0, QUICK);
    const alarms = run(3, true).map((v) => m.add(v));
    expect(alarms.slice(0, 2)).toEqual([undefined, undefined]);
    expect(alarms[2]).toMatchObject({ type: 'alarm', group_by: null, group: null, overflow: false, alarm: 1, window: { first_id: 'r0', last_id: 'r2', records: 3, flagged: 3 } });
  });

  it('tests each value of the field on its own, and records without it together', () => {
    const m = new AlarmMonitor(P0, { ...QUICK, groupBy: 'source' });
    // Interleaved: a, b, a, b, …; each group sees its own three flags.
    const mixed = [...run(3, true, { source: 'a' }, 'a'), ...run(3, true, { source: 7 }, 'b'), ...run(3, true, undefined, 'c')];
    const order = [0, 3, 6, 1, 4, 7, 2, 5, 8].map((i) => mixed[i]!);
    const alarms = order.map((v) => m.add(v)).filter((a): a is AuditAlarmEvent => a !== undefined);
    expect(alarms.map((a) => [a.group, a.window.first_id, a.window.last_id])).toEqual([
      ['a', 'a0', 'a2'],
      ['7', 'b0', 'b2'],
      [null, 'c0', 'c2'],
    ]);
    expect(alarms.every((a) => a.group_by === 'source' && !a.overflow)).toBe(true);
    expect(m.size).toBe(3);
  });

  it('keeps at most maxGroups tests; later values (and over-long ones) share the overflow test', () => {
    const m = new AlarmMonitor(P0, { ...QUICK, groupBy: 'u', maxGroups: 2 });
    m.add({ id: 'x', flagged: false, meta: { u: 'one' } });
    m.add({ id: 'y', flagged: false, meta: { u: 'two' } });
    const late = [
      { id: 'p', flagged: true, meta: { u: 'three' } },
      { id: 'q', flagged: true, meta: { u: 'four' } },
      { id: 'r', flagged: true, meta: { u: 'x'.repeat(MAX_GROUP_KEY + 1) } },
    ].map((v) => m.add(v));
    expect(m.size).toBe(2);
    expect(late[2]).toMatchObject({ group: null, overflow: true, window: { first_id: 'p', last_id: 'r', records: 3 } });
  });

  it('rejects bad settings when built', () => {
    expect(() => new AlarmMonitor(0.5, { margin: 0.6 })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => new AlarmMonitor(0.01, { maxGroups: 0 })).toThrow(/maxGroups/);
    expect(() => new AlarmMonitor(0.01, { groupBy: ' ' })).toThrow(/group-by/);
  });

  it('stays quiet on a long clean stream at the calibrated rate with the default settings', () => {
    const m = new AlarmMonitor(0.01, { groupBy: 'g' });
    const rand = rng(3);
    let alarms = 0;
    for (let i = 0; i < 100_000; i++) if (m.add({ id: `r${i}`, flagged: rand() < 0.01, meta: { g: i % 10 } })) alarms++;
    expect(alarms).toBe(0);
  });
});

describe('cleanFlagRate', () => {
  it('is the 95% upper bound of the calibrated rate given the calibration size', () => {
    const withN = cleanFlagRate({ fpr: 0.01, detectors: ['a', 'b'], combined: 'combined', calibration: { n: { a: 2000, b: 2000, combined: 2000 } } });
    expect(withN).toBeCloseTo(calibratedUpperRate(0.01, 2000), 15);
    // About fpr + 1.645·√(fpr(1−fpr)/n): 0.0137 at n = 2000; tighter with more calibration data.
    expect(withN).toBeGreaterThan(0.0135);
    expect(withN).toBeLessThan(0.0150);
    expect(calibratedUpperRate(0.01, 100_000)).toBeLessThan(0.0106);
    expect(cleanFlagRate({ fpr: 0.01, detectors: ['a'], combined: null, calibration: { n: { a: 2000 } } })).toBeCloseTo(withN, 15);
    expect(cleanFlagRate({ fpr: 0.01, detectors: ['a', 'b'], combined: null, calibration: { n: { a: 2000, b: 2000 } } })).toBeCloseTo(2 * withN, 15);
  });

  it('without calibration sizes: the calibrated rate with a combined score or one detector, the union bound otherwise', () => {
    expect(cleanFlagRate({ fpr: 0.01, detectors: ['a', 'b'], combined: 'combined' })).toBe(0.01);
    expect(cleanFlagRate({ fpr: 0.01, detectors: ['a'], combined: null })).toBe(0.01);
    expect(cleanFlagRate({ fpr: 0.01, detectors: ['a', 'b', 'c'], combined: null })).toBeCloseTo(0.03, 12);
    expect(() => cleanFlagRate({ fpr: 0.5, detectors: ['a', 'b'], combined: null })).toThrow(/below 1/);
  });

  it('the default margin doubles the clean rate (half the way to 1 for a high one)', () => {
    expect(new AlarmMonitor(0.01).margin).toBe(0.01);
    expect(defaultMargin(0.6)).toBeCloseTo(0.2, 12);
  });
});

const start = (fpr: number): AuditEvent =>
  ({ type: 'start', source: 'test', fpr, detectors: ['d'], combined: null }) as unknown as AuditEvent;
const verdict = (v: V): AuditEvent => ({ type: 'verdict', combined: null, scores: {}, flags: {}, predictions: {}, evidence: {}, ...v });

describe('withAlarms', () => {
  it('passes every event through, with an alarm right after the verdict that raised it', async () => {
    const events = [start(P0), ...run(4, true).map(verdict), { type: 'summary' } as unknown as AuditEvent];
    const out = await lastValueFrom(from(events).pipe(withAlarms(QUICK), toArray()));
    expect(out.map((e) => (e.type === 'verdict' ? e.id : e.type))).toEqual(['start', 'r0', 'r1', 'r2', 'alarm', 'r3', 'summary']);
    expect(out[4]).toMatchObject({ p0: P0, p1: 0.5, false_alarm_rate: 0.125 });
  });

  it('empty in, empty out; an error passes through', async () => {
    expect(await lastValueFrom(from([] as AuditEvent[]).pipe(withAlarms(), toArray()))).toEqual([]);
    const s = new Subject<AuditEvent>();
    const done = lastValueFrom(s.pipe(withAlarms()));
    s.error(new Error('upstream'));
    await expect(done).rejects.toThrow('upstream');
  });

  it('errors on a verdict before the start event, and on a margin that does not fit the calibrated rate', async () => {
    await expect(lastValueFrom(from([verdict({ id: 'a', flagged: true })]).pipe(withAlarms()))).rejects.toThrow(/start event/);
    await expect(lastValueFrom(from([start(0.6)]).pipe(withAlarms({ margin: 0.5 })))).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });

  it('unsubscribing from a never-ending stream tears down its source', () => {
    let tornDown = false;
    const s = new Subject<AuditEvent>();
    const sub = s.pipe(withAlarms()).subscribe();
    sub.add(() => (tornDown = true));
    s.next(start(0.01));
    sub.unsubscribe();
    expect(tornDown).toBe(true);
    expect(s.observed).toBe(false);
    expect(NEVER.pipe(withAlarms()).subscribe().closed).toBe(false);
  });
});

describe('alarmsOf and createAlarmStream', () => {
  it('the operator emits only the alarms of verdicts', async () => {
    const out = await lastValueFrom(from(run(7, true)).pipe(alarmsOf(P0, QUICK), toArray()));
    expect(out.map((a) => [a.window.first_id, a.alarm])).toEqual([
      ['r0', 1],
      ['r3', 2],
    ]);
    expect(await firstValueFrom(from(run(3, true)).pipe(alarmsOf(P0, QUICK)))).toMatchObject({ type: 'alarm' });
  });

  it('the Node stream turns verdicts into the alarms they raise', async () => {
    const got: AuditAlarmEvent[] = [];
    await pipeline(
      Readable.from(run(6, true)),
      createAlarmStream(P0, QUICK),
      new Writable({
        objectMode: true,
        write(a: AuditAlarmEvent, _e, cb) {
          got.push(a);
          cb();
        },
      }),
    );
    expect(got.map((a) => a.window.last_id)).toEqual(['r2', 'r5']);
  });
});

describe('record fields reach the verdicts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await scratchDir('alarms-meta');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('an NDJSON line keeps its other scalar fields as the record meta; objects and arrays are not kept', async () => {
    const file = path.join(dir, 'in.ndjson');
    const pixels = Array.from({ length: 4 }, () => 0.5);
    await writeFile(
      file,
      [
        JSON.stringify({ id: 'a', pixels, shape: [2, 2, 1], source: 'cam-1', n: 3, ok: true, deep: { x: 1 }, list: [1] }),
        JSON.stringify({ id: 'b', label: 1, pixels, shape: [2, 2, 1] }),
      ].join('\n') + '\n',
    );
    const records = [];
    for await (const r of openSource(`ndjson:${file}`)) records.push(r);
    expect(records[0]!.meta).toEqual({ source: 'cam-1', n: 3, ok: true });
    expect(records[1]!.meta).toBeUndefined();
    expect(records[1]!.label).toBe(1);
  });
});
