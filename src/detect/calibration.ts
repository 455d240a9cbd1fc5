/**
 * Calibration: each detector's threshold for a target false-positive rate on clean data, from
 * streaming, mergeable QuantileSketches (never a sort of all scores), so that calibration batches
 * can be scored in any number of workers and their accumulators merged in any order.
 *
 * Two stages, on disjoint clean data:
 * 1. `calibrationAccumulator(plan)` sketches every detector's clean scores; `finishCalibration`
 *    sets each detector's threshold (the exact `QuantileSketch.upperThreshold`: at most `fpr` of the
 *    calibration scores lie above it).
 * 2. Only when the plan has a combined score: `calibrationAccumulator(plan, { base })` sketches the
 *    combined statistic of fresh clean records, whose p-values come from stage 1's sketches, and
 *    `finishCalibration` sets its threshold. The stages need separate data: on the records that
 *    built the sketches the p-values would be optimistic.
 */
import { Errors } from '../errors.js';
import { QuantileSketch, type QuantileSketchJSON } from '../stats/index.js';
import { ExceedanceTable } from './combined.js';
import type { DetectorPlan } from './plan.js';
import { combinerEntry } from './registry.js';

/** The calibration of one score. */
export interface ScoreCalibration {
  /** A record is flagged when its score is above this. */
  threshold: number;
  /** The share of calibration scores above the threshold: exact, at most the target rate. */
  rate: number;
  /** Clean records calibrated on. */
  n: number;
  sketch: QuantileSketchJSON;
}

export const CALIBRATION_FORMAT = 'advstream-calibration';
export const CALIBRATION_VERSION = 1;

/** A calibration as plain JSON: what is saved, loaded and handed to workers. */
export interface Calibration {
  format: typeof CALIBRATION_FORMAT;
  version: typeof CALIBRATION_VERSION;
  /** The bound plan it was made for: detector names, parameters and model ids. */
  plan: DetectorPlan;
  /** The target false-positive rate. */
  fpr: number;
  detectors: Record<string, ScoreCalibration>;
  /** The combined score's calibration: null when the plan has none or stage 2 has not run. */
  combined: ScoreCalibration | null;
  /** Free description of the clean data, for reports (`mnist:train limit=50000`). */
  source?: string;
  /**
   * Free JSON on how it was made (the audit pipeline records the clean data and which records each
   * stage used, the models' SHA-256, the advstream version), so that a cached calibration can be
   * recognised as stale when any of them changes.
   */
  provenance?: Record<string, unknown>;
}

export type CalibrationStage = 'detectors' | 'combined';

/** Per-batch scores by detector name, as {@link runDetectors} returns them. */
export type ScoresByDetector = Readonly<Record<string, ArrayLike<number>>>;

export interface CalibrationAccumulatorJSON {
  plan: DetectorPlan;
  stage: CalibrationStage;
  base: Calibration | null;
  sketches: Record<string, QuantileSketchJSON>;
}

const tables = new WeakMap<ScoreCalibration, ExceedanceTable>();

/** The p-value table of a calibrated score, built once per calibration object. */
function tableOf(c: ScoreCalibration): ExceedanceTable {
  let t = tables.get(c);
  if (!t) {
    t = new ExceedanceTable(c.sketch);
    tables.set(c, t);
  }
  return t;
}

function samePlan(a: DetectorPlan, b: DetectorPlan): boolean {
  return JSON.stringify(planIdentity(a)) === JSON.stringify(planIdentity(b));
}

function planIdentity(plan: DetectorPlan): { detectors: string[]; combined: string | null; bound: boolean } {
  return { detectors: plan.detectors.map((d) => d.id), combined: plan.combined?.id ?? null, bound: plan.bound };
}

function batchLength(scores: ScoresByDetector, names: readonly string[]): number {
  let count: number | undefined;
  for (const name of names) {
    const s = scores[name];
    if (!s) throw Errors.badArgument(`no scores for detector '${name}'`, { given: Object.keys(scores) });
    if (count !== undefined && s.length !== count) {
      throw Errors.badArgument(`detector '${name}' has ${s.length} scores where another has ${count}`);
    }
    count = s.length;
  }
  return count ?? 0;
}

/**
 * Sketches of clean scores for one calibration stage. `add` takes a batch's scores, `merge` another
 * accumulator of the same plan and stage; the result is the same for any split and order.
 */
export class CalibrationAccumulator {
  private readonly sketches: Map<string, QuantileSketch>;
  /** Stage 2: p-value tables of stage 1's sketches. */
  private readonly baseTables: ExceedanceTable[];

  private constructor(
    readonly plan: DetectorPlan,
    readonly stage: CalibrationStage,
    private readonly base: Calibration | null,
  ) {
    const keys = stage === 'detectors' ? plan.detectors.map((d) => d.name) : ['combined'];
    this.sketches = new Map(keys.map((k) => [k, new QuantileSketch()]));
    this.baseTables = base && plan.combined ? plan.combined.of.map((n) => tableOf(base.detectors[n]!)) : [];
  }

  static create(plan: DetectorPlan, base: Calibration | null): CalibrationAccumulator {
    if (!plan.bound) throw Errors.badArgument('calibrate a bound plan: call bindPlan(plan, models) first');
    if (base) {
      if (!plan.combined) throw Errors.badArgument('the plan has no combined score to calibrate in a second stage');
      checkCalibration(base, plan, 'the base calibration');
    }
    return new CalibrationAccumulator(plan, base ? 'combined' : 'detectors', base);
  }

  /** Clean records added so far. */
  get count(): number {
    return this.sketches.values().next().value?.count ?? 0;
  }

  /** One batch of clean scores, by detector name (extra names are ignored). */
  add(scores: ScoresByDetector): this {
    if (this.stage === 'detectors') {
      const names = [...this.sketches.keys()];
      const count = batchLength(scores, names);
      // Checked before any is added, so that a bad batch leaves the accumulator as it was.
      for (const name of names) {
        const s = scores[name]!;
        for (let i = 0; i < count; i++) {
          if (!Number.isFinite(s[i]!)) throw Errors.badArgument(`detector '${name}' has a non-finite score ${s[i]} at ${i}`);
        }
      }
      for (const name of names) {
        const sketch = this.sketches.get(name)!;
        const s = scores[name]!;
        for (let i = 0; i < count; i++) sketch.add(s[i]!);
      }
      return this;
    }
    const stat = combinedStatistic(this.plan, this.baseTables, scores);
    const sketch = this.sketches.get('combined')!;
    for (const v of stat) sketch.add(v);
    return this;
  }

  merge(other: CalibrationAccumulator): this {
    if (other.stage !== this.stage || !samePlan(other.plan, this.plan)) {
      throw Errors.badArgument('cannot merge calibration accumulators of different plans or stages', {
        ours: planIdentity(this.plan),
        theirs: planIdentity(other.plan),
      });
    }
    if (JSON.stringify(other.base?.detectors ?? null) !== JSON.stringify(this.base?.detectors ?? null)) {
      throw Errors.badArgument('cannot merge combined-stage accumulators built on different base calibrations');
    }
    for (const [name, sketch] of this.sketches) sketch.merge(other.sketches.get(name)!);
    return this;
  }

  toJSON(): CalibrationAccumulatorJSON {
    return {
      plan: this.plan,
      stage: this.stage,
      base: this.base,
      sketches: Object.fromEntries([...this.sketches].map(([k, s]) => [k, s.toJSON()])),
    };
  }

  static fromJSON(json: CalibrationAccumulatorJSON): CalibrationAccumulator {
    const acc = CalibrationAccumulator.create(json.plan, json.base);
    if (acc.stage !== json.stage) throw Errors.badArgument(`accumulator stage ${json.stage} does not match its base`);
    for (const name of acc.sketches.keys()) {
      const s = json.sketches[name];
      if (!s) throw Errors.badArgument(`accumulator has no sketch for '${name}'`);
      acc.sketches.set(name, QuantileSketch.fromJSON(s));
    }
    return acc;
  }

  /** The stage's sketches (stage 1: by detector; stage 2: `combined`) and its base. */
  state(): { sketches: ReadonlyMap<string, QuantileSketch>; base: Calibration | null } {
    return { sketches: this.sketches, base: this.base };
  }
}

export interface CalibrationAccumulatorOptions {
  /** Stage 2: the stage-1 calibration whose sketches give the p-values of the combined score. */
  base?: Calibration;
}

/**
 * An empty accumulator for a bound plan: stage 1 (every detector), or with `base` stage 2 (the
 * combined score).
 *
 * @example
 *   const acc = calibrationAccumulator(plan);
 *   for (const x of cleanBatches) acc.add((await runDetectors(plan, models, x)).scores);
 *   const calibration = finishCalibration(acc, { fpr: 0.01 });
 */
export function calibrationAccumulator(plan: DetectorPlan, options: CalibrationAccumulatorOptions = {}): CalibrationAccumulator {
  return CalibrationAccumulator.create(plan, options.base ?? null);
}

export interface FinishOptions {
  /** Target false-positive rate in (0, 1); default 0.01. Stage 2 must use stage 1's. */
  fpr?: number;
  source?: string;
}

function calibrate(sketch: QuantileSketch, fpr: number, what: string): ScoreCalibration {
  if (sketch.count === 0) throw Errors.badArgument(`no clean scores to calibrate ${what} on`);
  const { threshold, rate } = sketch.upperThreshold(fpr);
  return { threshold, rate, n: sketch.count, sketch: sketch.toJSON() };
}

/**
 * The calibration an accumulator's stage gives: stage 1 every detector's threshold (and a pending
 * combined score, if the plan has one), stage 2 the base calibration with its combined score set.
 */
export function finishCalibration(acc: CalibrationAccumulator, options: FinishOptions = {}): Calibration {
  const fpr = options.fpr ?? 0.01;
  if (!(fpr > 0 && fpr < 1)) throw Errors.badArgument(`fpr must be in (0, 1), got ${fpr}`, { fpr });
  const { sketches, base } = acc.state();
  if (base) {
    if (fpr !== base.fpr) throw Errors.badArgument(`the combined score must be calibrated at the base's fpr ${base.fpr}, not ${fpr}`);
    const out: Calibration = { ...base, combined: calibrate(sketches.get('combined')!, fpr, 'the combined score') };
    if (options.source !== undefined) out.source = options.source;
    return out;
  }
  const detectors: Record<string, ScoreCalibration> = {};
  for (const [name, sketch] of sketches) detectors[name] = calibrate(sketch, fpr, name);
  const out: Calibration = { format: CALIBRATION_FORMAT, version: CALIBRATION_VERSION, plan: acc.plan, fpr, detectors, combined: null };
  if (options.source !== undefined) out.source = options.source;
  return out;
}

function combinedStatistic(plan: DetectorPlan, tables: readonly ExceedanceTable[], scores: ScoresByDetector): Float64Array {
  const c = plan.combined!;
  batchLength(scores, c.of);
  const p = c.of.map((name, d) => tables[d]!.pValues(scores[name]!));
  return combinerEntry(c.name).combine(p, c.params);
}

/**
 * Why a calibration cannot serve a plan: every difference in detectors, parameters and models.
 * Empty when it can.
 *
 * @example
 *   calibrationDifferences(calibration, plan); // ['noise-instability was calibrated as ..., the plan has ...']
 */
export function calibrationDifferences(calibration: Calibration, plan: DetectorPlan): string[] {
  const out: string[] = [];
  if (!plan.bound) out.push('the plan is not bound to its models (bindPlan)');
  const calibrated = new Map(calibration.plan.detectors.map((d) => [d.name, d.id]));
  for (const d of plan.detectors) {
    const id = calibrated.get(d.name);
    if (id === undefined) out.push(`${d.name} is not calibrated`);
    else if (id !== d.id) out.push(`${d.name} was calibrated as ${id}, the plan has ${d.id}`);
  }
  for (const name of calibrated.keys()) if (!plan.detectors.some((d) => d.name === name)) out.push(`${name} is calibrated but not in the plan`);
  const ours = calibration.plan.combined?.id ?? null;
  const theirs = plan.combined?.id ?? null;
  if (ours !== theirs) out.push(`combined score: calibrated ${ours ?? 'none'}, the plan has ${theirs ?? 'none'}`);
  return out;
}

/**
 * Throws `CALIBRATION_MISMATCH`, listing every difference, unless `calibration` was made for `plan`.
 *
 * @example
 *   checkCalibration(calibration, bindPlan(planDetectors(['energy']), models)); // throws if energy was not calibrated
 */
export function checkCalibration(calibration: Calibration, plan: DetectorPlan, where = 'the calibration'): void {
  const differences = calibrationDifferences(calibration, plan);
  if (differences.length) throw Errors.calibrationMismatch(where, differences);
}

/** Flags for one batch. Arrays are `[count]`; flags are 1 for flagged. */
export interface Verdict {
  count: number;
  scores: Record<string, Float32Array>;
  /** Per detector: score above its threshold. */
  flags: Record<string, Uint8Array>;
  /** Conformal p-values of the combined detectors, by name; empty without a combined score. */
  pValues: Record<string, Float64Array>;
  /** The combined statistic; null without a combined score. */
  combined: Float64Array | null;
  /**
   * The decision: the combined score's flag where the plan has one; else the single detector's
   * flag; else any detector's (whose false-positive rate can then reach k·fpr for k detectors).
   */
  flagged: Uint8Array;
}


/**
 * Flags a batch of scores against a calibration: per detector and, where calibrated, combined.
 *
 * @example
 *   const v = verdict(calibration, (await runDetectors(plan, models, x)).scores);
 *   v.flagged; // Uint8Array [B]
 */
export function verdict(calibration: Calibration, scores: ScoresByDetector): Verdict {
  const plan = calibration.plan;
  const names = plan.detectors.map((d) => d.name);
  const count = batchLength(scores, names);
  const out: Verdict = { count, scores: {}, flags: {}, pValues: {}, combined: null, flagged: new Uint8Array(count) };
  for (const name of names) {
    const s = Float32Array.from(scores[name]!);
    const { threshold } = calibration.detectors[name]!;
    const f = new Uint8Array(count);
    for (let i = 0; i < count; i++) f[i] = s[i]! > threshold ? 1 : 0;
    out.scores[name] = s;
    out.flags[name] = f;
  }
  if (plan.combined) {
    if (!calibration.combined) {
      throw Errors.badArgument('the combined score is not calibrated yet: run stage 2 (calibrationAccumulator(plan, { base }))');
    }
    const c = plan.combined;
    const p = c.of.map((name) => tableOf(calibration.detectors[name]!).pValues(out.scores[name]!));
    c.of.forEach((name, d) => (out.pValues[name] = p[d]!));
    out.combined = combinerEntry(c.name).combine(p, c.params);
    const t = calibration.combined.threshold;
    for (let i = 0; i < count; i++) out.flagged[i] = out.combined[i]! > t ? 1 : 0;
  } else {
    for (const name of names) {
      const f = out.flags[name]!;
      for (let i = 0; i < count; i++) out.flagged[i] = out.flagged[i]! | f[i]!;
    }
  }
  return out;
}
