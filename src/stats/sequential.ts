/**
 * A one-sided Bernoulli CUSUM (Page 1954) of a stream of flags against a calibrated flag rate p0:
 * the dataset-level alarm of the audit.
 *
 * Each record adds the log-likelihood ratio of its flag under p1 = p0 + margin against p0,
 * `ln(p1/p0)` for a flag and `ln((1-p1)/(1-p0))` (negative) for none; the statistic is the running
 * sum floored at 0, `S = max(0, S + llr)`, and the test alarms when `S ≥ h`.
 *
 * The stated false-alarm rate α is per clean record: with `h = ln(1/α)`, over any N records whose
 * flag rate is at most p0, the expected number of alarms is at most α·N, and so is the probability
 * of any alarm among them. Why: an alarm at record n means some window (k..n) since the last reset
 * has a likelihood ratio of at least e^h; for each start k the ratio is a non-negative
 * supermartingale under any rate ≤ p0 (a martingale at p0), so by Ville's inequality it ever reaches
 * e^h with probability at most e^{-h} = α; alarms after a reset start in disjoint windows, so each
 * start k is charged at most once. The bound is conservative (the statistic overshoots h), and the
 * measured rate is far below it (bench/alarms.ts).
 *
 * After an alarm the test resets (S = 0, a new window), so a group that stays contaminated alarms
 * again, each alarm over its own disjoint window, and the bound above still counts every alarm.
 *
 * What it detects: a rate above `p* = -d / (u - d)` (u, d the two increments; p0 < p* < p1) makes
 * the statistic drift upwards, so it alarms eventually; at p1 and above, after about `h / drift`
 * records. A rate between p0 and p* is never detected: choose the margin for the smallest rise that
 * matters.
 *
 * Sequential tests depend on order, so this one is not a commutative accumulator: a stream split
 * into parts is tested by testing each part (each group of the audit is its own test). Its state is
 * plain data (`toJSON`/`fromJSON`) so a test can be checkpointed and resumed.
 */
import { Errors } from '../errors.js';
import { wilson } from './proportion.js';
import { checkCount, checkFinite, checkNonNegative, checkRecord } from './shared.js';

export interface CusumOptions {
  /** The flag rate of clean records (the calibrated false-positive rate), in (0, 1). */
  p0: number;
  /** The rise over p0 to detect: p1 = p0 + margin, below 1. */
  margin: number;
  /** The expected false alarms per clean record (see the module comment), in (0, 1). */
  falseAlarmRate: number;
}

/** Records since a point of the stream: the first and last id, and their flag count. */
export interface FlagWindow {
  first_id: string;
  last_id: string;
  records: number;
  flagged: number;
  /** flagged / records. */
  rate: number;
  /** 95% Wilson interval of the rate. */
  ci: [number, number];
}

/** An alarm: the window since the last reset, where the rise began, and the test's settings. */
export interface CusumAlarm {
  /** Every record since the test's last reset (or its start). */
  window: FlagWindow;
  /**
   * The records since the statistic was last 0: the test's estimate of where the rate rose (the
   * maximum-likelihood change point under p1), a part of `window`.
   */
  onset: FlagWindow;
  /** The statistic at the alarm (≥ threshold). */
  statistic: number;
  threshold: number;
  p0: number;
  p1: number;
  /** The stated false alarms per clean record. */
  false_alarm_rate: number;
}

export interface BernoulliCusumJSON extends CusumOptions {
  s: number;
  window: { first_id: string | null; last_id: string | null; records: number; flagged: number };
  onset: { first_id: string | null; last_id: string | null; records: number; flagged: number };
  alarms: number;
}

interface Span {
  first_id: string | null;
  last_id: string | null;
  records: number;
  flagged: number;
}

const emptySpan = (): Span => ({ first_id: null, last_id: null, records: 0, flagged: 0 });

function addTo(span: Span, id: string, flag: boolean): void {
  if (span.first_id === null) span.first_id = id;
  span.last_id = id;
  span.records++;
  if (flag) span.flagged++;
}

function windowOf(span: Span): FlagWindow {
  const { lo, hi } = wilson(span.flagged, span.records);
  return { first_id: span.first_id!, last_id: span.last_id!, records: span.records, flagged: span.flagged, rate: span.flagged / span.records, ci: [lo, hi] };
}

function checkOptions(o: CusumOptions): CusumOptions {
  const p0 = checkFinite(o.p0, 'p0');
  const margin = checkFinite(o.margin, 'margin');
  const falseAlarmRate = checkFinite(o.falseAlarmRate, 'falseAlarmRate');
  if (!(p0 > 0 && p0 < 1)) throw Errors.badArgument(`p0 must be in (0, 1), got ${p0}`, { p0 });
  if (!(margin > 0 && p0 + margin < 1)) throw Errors.badArgument(`margin must be > 0 with p0 + margin < 1, got p0 ${p0}, margin ${margin}`, { p0, margin });
  if (!(falseAlarmRate > 0 && falseAlarmRate < 1)) {
    throw Errors.badArgument(`the false-alarm rate must be in (0, 1), got ${falseAlarmRate}`, { falseAlarmRate });
  }
  return { p0, margin, falseAlarmRate };
}

/**
 * The CUSUM of one stream of flags.
 *
 * @example
 *   const test = new BernoulliCusum({ p0: 0.01, margin: 0.04, falseAlarmRate: 1e-6 });
 *   for (const v of verdicts) {
 *     const alarm = test.add(v.id, v.flagged);
 *     if (alarm) console.log(alarm.window.first_id, alarm.window.last_id, alarm.window.rate);
 *   }
 */
export class BernoulliCusum {
  readonly p0: number;
  readonly p1: number;
  readonly margin: number;
  readonly falseAlarmRate: number;
  /** h = ln(1/α). */
  readonly threshold: number;
  /** The statistic's step for a flag (> 0) and for none (< 0). */
  readonly up: number;
  readonly down: number;
  private s = 0;
  private window: Span = emptySpan();
  private onset: Span = emptySpan();
  private raised = 0;

  constructor(options: CusumOptions) {
    const { p0, margin, falseAlarmRate } = checkOptions(options);
    this.p0 = p0;
    this.margin = margin;
    this.p1 = p0 + margin;
    this.falseAlarmRate = falseAlarmRate;
    this.threshold = -Math.log(falseAlarmRate);
    this.up = Math.log(this.p1 / p0);
    this.down = Math.log((1 - this.p1) / (1 - p0));
  }

  /** The statistic now (0 after a reset). */
  get statistic(): number {
    return this.s;
  }

  /** Alarms raised so far. */
  get alarms(): number {
    return this.raised;
  }

  /** The lowest flag rate the test detects (its statistic drifts upwards above it). */
  get detectableRate(): number {
    return -this.down / (this.up - this.down);
  }

  /** Adds one record's flag; an alarm when the statistic reaches the threshold, after which the test resets. */
  add(id: string, flag: boolean): CusumAlarm | undefined {
    addTo(this.window, id, flag);
    this.s += flag ? this.up : this.down;
    if (this.s <= 0) {
      this.s = 0;
      this.onset = emptySpan();
      return undefined;
    }
    addTo(this.onset, id, flag);
    if (this.s < this.threshold) return undefined;
    const alarm: CusumAlarm = {
      window: windowOf(this.window),
      onset: windowOf(this.onset),
      statistic: this.s,
      threshold: this.threshold,
      p0: this.p0,
      p1: this.p1,
      false_alarm_rate: this.falseAlarmRate,
    };
    this.raised++;
    this.s = 0;
    this.window = emptySpan();
    this.onset = emptySpan();
    return alarm;
  }

  toJSON(): BernoulliCusumJSON {
    return {
      p0: this.p0,
      margin: this.margin,
      falseAlarmRate: this.falseAlarmRate,
      s: this.s,
      window: { ...this.window },
      onset: { ...this.onset },
      alarms: this.raised,
    };
  }

  static fromJSON(json: BernoulliCusumJSON): BernoulliCusum {
    const o = checkRecord(json, 'cusum');
    const test = new BernoulliCusum(o as unknown as CusumOptions);
    const s = checkNonNegative(o.s, 'cusum.s');
    if (!(s < test.threshold)) throw Errors.badArgument(`cusum.s (${s}) must be below the threshold (${test.threshold})`, { s });
    test.s = s;
    test.window = checkSpan(o.window, 'cusum.window');
    test.onset = checkSpan(o.onset, 'cusum.onset');
    test.raised = checkCount(o.alarms, 'cusum.alarms');
    return test;
  }
}

function checkSpan(value: unknown, what: string): Span {
  const o = checkRecord(value, what);
  const records = checkCount(o.records, `${what}.records`);
  const flagged = checkCount(o.flagged, `${what}.flagged`);
  if (flagged > records) throw Errors.badArgument(`${what} has more flags (${flagged}) than records (${records})`);
  const id = (v: unknown, name: string): string | null => {
    if (records === 0 ? v === null : typeof v === 'string') return v as string | null;
    throw Errors.badArgument(`${what}.${name} must be ${records === 0 ? 'null' : 'a string'}`);
  };
  return { first_id: id(o.first_id, 'first_id'), last_id: id(o.last_id, 'last_id'), records, flagged };
}
