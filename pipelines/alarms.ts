/**
 * Dataset-level alarms: a {@link BernoulliCusum} over the audit's decisions, for the whole stream or
 * for each value of a record field (`groupBy`, read from the verdict's `meta`), raising an
 * `{"type":"alarm"}` event when a group's flag rate rises above the calibrated false-positive rate
 * by the margin. See docs/audit.md, "Alarms".
 *
 * Memory is bounded: at most `maxGroups` groups get their own test (a few numbers, and up to four
 * record ids: its window's and its onset's first and last, as long as the source's ids are); the
 * records of every later value, and of values longer than {@link MAX_GROUP_KEY} characters, share
 * one overflow test (`group: null, overflow: true`), so a flood of new values still raises alarms,
 * only pooled.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Observable, type OperatorFunction } from 'rxjs';
import { Errors } from '../src/errors.js';
import { BernoulliCusum, wilson, type CusumAlarm } from '../src/stats/index.js';
import type { AuditEvent, AuditStartEvent } from './audit.js';
import type { AuditVerdict } from './auditor.js';

/** The default stated false alarms per clean record: about one per million clean records, at most. */
export const DEFAULT_ALARM_FALSE_RATE = 1e-6;
export const DEFAULT_MAX_GROUPS = 1000;
/** A longer group value is pooled into the overflow test rather than held as a key. */
export const MAX_GROUP_KEY = 256;

export interface AlarmOptions {
  /**
   * The rise of the flag rate over p0 to detect (p1 = p0 + margin); default p0 itself, an alarm at
   * twice the clean rate (for p0 ≥ 1/3, half the way to 1).
   */
  margin?: number;
  /** Expected false alarms per clean record, at most; default {@link DEFAULT_ALARM_FALSE_RATE}. */
  falseAlarmRate?: number;
  /** A field of the records (`meta`) whose each value is tested on its own; else the whole stream is one group. */
  groupBy?: string;
  /** Groups with a test of their own; default {@link DEFAULT_MAX_GROUPS}. */
  maxGroups?: number;
}

/** One alarm line of `advstream audit`. */
export interface AuditAlarmEvent extends CusumAlarm {
  type: 'alarm';
  /** The field grouped by; null for the whole stream. */
  group_by: string | null;
  /** The group's value (as a string); null for the whole stream, records without the field, or the overflow. */
  group: string | null;
  /** The records of groups past `maxGroups` (or with over-long values), tested together. */
  overflow: boolean;
  /** This group's alarms so far, this one included. */
  alarm: number;
}

/** The one-sided 95% normal quantile. */
const Z95_ONE_SIDED = 1.644854;

/**
 * The clean rate a calibration of `n` records at target `fpr` guarantees with 95% confidence: the
 * rate at which a clean record is flagged, given this calibration's threshold, is random around
 * `fpr` (a conformal threshold's coverage is Beta distributed, Vovk 2012), about ±√(fpr/n); the
 * one-sided 95% Wilson bound on ⌈fpr·n⌉ of n covers it. Without a size, `fpr` itself.
 */
export function calibratedUpperRate(fpr: number, n: number | undefined): number {
  if (n === undefined || !(n > 0)) return fpr;
  return wilson(Math.min(n, Math.ceil(fpr * n)), n, Z95_ONE_SIDED).hi;
}

/**
 * The flag rate of clean records under a plan, p0 of the alarms' test: {@link calibratedUpperRate}
 * of the combined score, or of a single detector; for several detectors without a combined score
 * the decision is any detector's flag, so the union bound, their sum. So the false-alarm bound
 * holds with 95% confidence over the calibration (each detector's, for the sum), not only for a
 * calibration that hit its target.
 */
export function cleanFlagRate(info: Pick<AuditStartEvent, 'fpr' | 'detectors' | 'combined'> & { calibration?: { n: Record<string, number> } }): number {
  const n = info.calibration?.n ?? {};
  if (info.combined !== null) return calibratedUpperRate(info.fpr, n.combined);
  const sizes = Object.entries(n).filter(([k]) => k !== 'combined').map(([, v]) => v);
  if (info.detectors.length <= 1) return calibratedUpperRate(info.fpr, sizes[0]);
  const p0 = sizes.length === info.detectors.length ? sizes.reduce((a, m) => a + calibratedUpperRate(info.fpr, m), 0) : info.detectors.length * info.fpr;
  if (p0 >= 1) throw Errors.badArgument(`alarms need a clean flag rate below 1; ${info.detectors.length} detectors at fpr ${info.fpr} without a combined score may flag every record`);
  return p0;
}

/** The default margin for a clean rate p0. */
export function defaultMargin(p0: number): number {
  return Math.min(p0, (1 - p0) / 2);
}

/** The tests of every group of one audit. */
export class AlarmMonitor {
  readonly p0: number;
  readonly margin: number;
  readonly falseAlarmRate: number;
  readonly groupBy: string | null;
  readonly maxGroups: number;
  private readonly groups = new Map<string | null, BernoulliCusum>();
  private overflowTest: BernoulliCusum | undefined;

  constructor(p0: number, options: AlarmOptions = {}) {
    this.p0 = p0;
    this.margin = options.margin ?? defaultMargin(p0);
    this.falseAlarmRate = options.falseAlarmRate ?? DEFAULT_ALARM_FALSE_RATE;
    this.groupBy = options.groupBy ?? null;
    this.maxGroups = options.maxGroups ?? DEFAULT_MAX_GROUPS;
    if (this.groupBy !== null && this.groupBy.trim() === '') throw Errors.badArgument('the group-by field needs a name');
    if (!(Number.isSafeInteger(this.maxGroups) && this.maxGroups > 0)) throw Errors.badArgument(`maxGroups must be a positive integer, got ${this.maxGroups}`);
    // Checks the settings now, not at the first record.
    this.test();
  }

  /** Groups with a test of their own. */
  get size(): number {
    return this.groups.size;
  }

  private test(): BernoulliCusum {
    return new BernoulliCusum({ p0: this.p0, margin: this.margin, falseAlarmRate: this.falseAlarmRate });
  }

  /** Adds one verdict's decision to its group's test; the alarm, if it raised one. */
  add(v: Pick<AuditVerdict, 'id' | 'flagged' | 'meta'>): AuditAlarmEvent | undefined {
    let key: string | null = null;
    if (this.groupBy !== null) {
      const value = v.meta?.[this.groupBy];
      key = value === undefined ? null : String(value);
    }
    let test = this.groups.get(key);
    let overflow = false;
    if (!test) {
      if (this.groups.size < this.maxGroups && (key === null || key.length <= MAX_GROUP_KEY)) {
        test = this.test();
        this.groups.set(key, test);
      } else {
        overflow = true;
        test = this.overflowTest ??= this.test();
      }
    }
    const alarm = test.add(v.id, v.flagged);
    if (!alarm) return undefined;
    return { type: 'alarm', group_by: this.groupBy, group: overflow ? null : key, overflow, alarm: test.alarms, ...alarm };
  }
}

/**
 * Alarms over verdicts: an operator for {@link auditAdversarial}'s output, given the clean flag rate.
 *
 * @example
 *   records$.pipe(auditAdversarial({ fpr: 0.01 }), alarmsOf(0.01, { groupBy: 'source' }))
 *     .subscribe((a) => console.log(a.group, a.window.first_id, a.window.last_id, a.window.rate));
 */
export function alarmsOf(p0: number, options: AlarmOptions = {}): OperatorFunction<Pick<AuditVerdict, 'id' | 'flagged' | 'meta'>, AuditAlarmEvent> {
  return (source) =>
    new Observable<AuditAlarmEvent>((subscriber) => {
      const monitor = new AlarmMonitor(p0, options);
      return source.subscribe({
        next: (v) => {
          const alarm = monitor.add(v);
          if (alarm) subscriber.next(alarm);
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => subscriber.complete(),
      });
    });
}

/**
 * {@link audit}'s events with alarm events after the verdicts that raise them; the clean flag rate
 * comes from the start event's calibration ({@link cleanFlagRate}).
 */
export function withAlarms(options: AlarmOptions = {}): OperatorFunction<AuditEvent, AuditEvent> {
  return (source) =>
    new Observable<AuditEvent>((subscriber) => {
      let monitor: AlarmMonitor | undefined;
      return source.subscribe({
        next: (e) => {
          if (e.type === 'start') {
            // A margin that does not fit the calibrated rate is known only now.
            try {
              monitor = new AlarmMonitor(cleanFlagRate(e), options);
            } catch (error) {
              return subscriber.error(error);
            }
          }
          subscriber.next(e);
          if (e.type !== 'verdict') return;
          if (!monitor) return subscriber.error(Errors.badArgument('alarms need the start event (its calibrated rate) before the first verdict'));
          const alarm = monitor.add(e);
          if (alarm) subscriber.next(alarm);
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => subscriber.complete(),
      });
    });
}

/**
 * A Node object-mode `Transform`: {@link AuditVerdict}s in (from {@link createAuditStream}), the
 * alarms they raise out.
 *
 * @example
 *   await pipeline(records, createAuditStream({ fpr: 0.01 }), createAlarmStream(0.01, { groupBy: 'source' }), sink);
 */
export function createAlarmStream(p0: number, options: AlarmOptions = {}): Transform {
  const monitor = new AlarmMonitor(p0, options);
  return new Transform({
    objectMode: true,
    transform(v: AuditVerdict, _encoding: BufferEncoding, callback: TransformCallback) {
      callback(null, monitor.add(v));
    },
  });
}
