/**
 * Calibration through the audit pool: clean records are scored in the workers, batch by batch, and
 * their scores stream into the detectors' mergeable sketches in the main thread.
 *
 * Which clean records. The default reference is `mnist:test`, not the MNIST training set the issue
 * first proposed: every shipped zoo model was trained on all of `mnist:train`, where it is more
 * confident than on new images, so thresholds set there flag far fewer clean images than the target
 * rate once the audit sees new data (in-sample calibration does not hold its FPR). Of the calibration
 * source, only the records at even positions (0, 2, 4, …, counting good records from the start) are
 * used: stage 1 (each detector's threshold) takes positions ≡ 0 (mod 4) and stage 2 (the combined
 * score, which needs records its p-values were not fitted on) positions ≡ 2 (mod 4); without a
 * combined score stage 1 takes every even position. The odd positions are held out: `audit-bench`
 * measures there, so its clean records are never calibration records. Interleaving (rather than
 * first half / second half) matters for mnist:test, whose two halves come from different writers
 * and score differently on every detector.
 *
 * Memory: stage 1 streams into sketches; stage 2's scores (4 bytes per record and detector) are held
 * until stage 1 is finished, because their p-values come from stage 1's sketches. The calibration
 * takes one pass over the source.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { Subject } from 'rxjs';
import { openSource, toObservable, type ImageRecord } from '../src/data/index.js';
import {
  calibrationAccumulator,
  calibrationDifferences,
  finishCalibration,
  loadCalibration,
  saveCalibration,
  type Calibration,
  type DetectorPlan,
  type ScoresByDetector,
} from '../src/detect/index.js';
import { Errors } from '../src/errors.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import type { AuditTaskResult } from '../workers/audit-task.js';
import type { AuditPool } from './audit-pool.js';
import { pooledBatches } from './operators.js';
import { isWorkerCrash } from './runner.js';

/** The default clean reference: see the module comment for why not `mnist:train`. */
export const DEFAULT_CALIBRATION_DATA = 'mnist:test';
/** The default target false-positive rate of every detector and of the combined score. */
export const DEFAULT_FPR = 0.01;

export interface CalibrationOptions {
  /** Target false-positive rate in (0, 1); default {@link DEFAULT_FPR}. */
  fpr?: number;
  /**
   * A calibration to use as is (it must fit the plan), or a file: reused when it fits the plan, the
   * target rate, the calibration data and the models' bytes, else calibrated afresh and saved there.
   * Default: a file under `.cache/calibration/` (of the working directory) named by a hash of all of
   * those, so that a repeated audit reuses its calibration.
   */
  calibration?: Calibration | string;
  /** Clean reference source URI; default {@link DEFAULT_CALIBRATION_DATA}. */
  calibrationData?: string;
  /** At most this many records per stage. */
  calibrationLimit?: number;
  /** Calibrate even when the file fits. */
  recalibrate?: boolean;
  /** Told what happens: a file reused, calibration progress, a file saved. */
  onCalibration?: (event: CalibrationProgress) => void;
}

export type CalibrationProgress =
  | { phase: 'reused'; file: string }
  | { phase: 'calibrating'; file: string | null; reason: string; stage1: number; stage2: number; data: string }
  | { phase: 'saved'; file: string; stage1: number; stage2: number };

/** What decides a calibration besides its plan: recorded in its `provenance`, compared on reuse. */
export interface CalibrationData {
  uri: string;
  /** The positions each stage takes, in words. */
  stage1: string;
  stage2: string | null;
  held_out: string;
  limit: number | null;
}

function advstreamVersion(): string {
  return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Which stage a source position feeds: 1, 2, or none (odd positions are held out). */
export function calibrationStage(position: number, combined: boolean): 1 | 2 | null {
  if (combined) return position % 4 === 0 ? 1 : position % 4 === 2 ? 2 : null;
  return position % 2 === 0 ? 1 : null;
}

/** The calibration data of a plan, as recorded in a calibration's provenance. */
export function calibrationData(uri: string, plan: DetectorPlan, limit: number | undefined): CalibrationData {
  const combined = plan.combined !== null;
  return {
    uri,
    stage1: combined ? 'position % 4 == 0' : 'position % 2 == 0',
    stage2: combined ? 'position % 4 == 2' : null,
    held_out: 'position % 2 == 1',
    limit: limit ?? null,
  };
}

function describeData(d: CalibrationData, n1: number, n2: number): string {
  const stage2 = d.stage2 ? `; stage 2 (combined score) ${d.stage2} (${n2} records)` : '';
  return (
    `${d.uri}, even positions only: stage 1 (detector thresholds) ${d.stage1} (${n1} records)${stage2}; ` +
    `odd positions held out for measurement (audit-bench)`
  );
}

/** The name of a calibration's default file: a hash of the bound plan, rate, data and model bytes. */
export function defaultCalibrationFile(plan: DetectorPlan, fpr: number, data: CalibrationData, digests: Record<string, string>): string {
  const key = JSON.stringify({ detectors: plan.detectors.map((d) => d.id), combined: plan.combined?.id ?? null, fpr, data, models: digests });
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return path.resolve('.cache', 'calibration', `${hash}.json`);
}

/**
 * Why `calibration` cannot serve: every difference in plan, rate, data and the bytes of the plan's
 * models (`digests`; these last two only when it records them). Empty when it can.
 */
export function calibrationStaleness(calibration: Calibration, plan: DetectorPlan, fpr: number, data: CalibrationData, digests: Record<string, string>): string[] {
  const out = calibrationDifferences(calibration, plan);
  if (calibration.fpr !== fpr) out.push(`calibrated at fpr ${calibration.fpr}, the audit asks ${fpr}`);
  if (plan.combined && !calibration.combined) out.push('the combined score is not calibrated');
  const p = calibration.provenance;
  if (p) {
    if (JSON.stringify(p.data) !== JSON.stringify(data)) out.push(`calibrated on ${JSON.stringify(p.data)}, the audit asks ${JSON.stringify(data)}`);
    const theirs = (p.models ?? {}) as Record<string, string>;
    for (const [id, sha] of Object.entries(digests)) if (theirs[id] !== sha) out.push(`model ${id} changed since calibration`);
  }
  return out;
}

async function* selected(uri: string, combined: boolean, limit: number, signal: AbortSignal): AsyncGenerator<{ record: ImageRecord; stage: 1 | 2 }> {
  let position = 0;
  let n1 = 0;
  let n2 = 0;
  for await (const record of openSource(uri, { signal })) {
    const stage = calibrationStage(position++, combined);
    if (stage === 1 && n1 < limit) {
      n1++;
      yield { record, stage };
    } else if (stage === 2 && n2 < limit) {
      n2++;
      yield { record, stage };
    }
    if (n1 >= limit && (!combined || n2 >= limit)) return;
  }
}

function pick(scores: ScoresByDetector, rows: readonly number[]): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, s] of Object.entries(scores)) out[name] = Float32Array.from(rows, (i) => s[i]!);
  return out;
}

export interface CalibrateOnPoolOptions {
  fpr: number;
  data: CalibrationData;
  batch: number;
  maxInFlight: number;
  retries: number;
  signal?: AbortSignal;
  /** Told after each batch: records scored per stage so far. */
  onProgress?: (stage1: number, stage2: number) => void;
}

/**
 * Calibrates the pool's bound plan on clean records, both stages in one pass through the pool.
 *
 * @example
 *   const calibration = await calibrateOnPool(pool, { fpr: 0.01, data: calibrationData('mnist:test', pool.plan, undefined), ... });
 */
export async function calibrateOnPool(pool: AuditPool, o: CalibrateOnPoolOptions): Promise<Calibration> {
  const plan = pool.plan;
  const combined = plan.combined !== null;
  const names = plan.detectors.map((d) => d.name);
  const stage1 = calibrationAccumulator(plan);
  const held: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  let n1 = 0;
  let n2 = 0;
  const controller = new AbortController();
  const onAbort = () => controller.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const demand$ = new Subject<number>();
  const records$ = toObservable(selected(o.data.uri, combined, o.data.limit ?? Infinity, controller.signal), { demand$ });
  try {
    await new Promise<void>((resolve, reject) => {
      const sub = pooledBatches(records$, {
        batch: o.batch,
        maxInFlight: o.maxInFlight,
        demand: demand$,
        retries: o.retries,
        retryable: isWorkerCrash,
        run: (items, index, attempt, signal): Promise<AuditTaskResult> => {
          const pixels = new Float32Array(items.length * pool.dim);
          items.forEach(({ record }, i) => pixels.set(record.pixels, i * pool.dim));
          return pool.runner.run({ kind: 'score', index, attempt, count: items.length, dim: pool.dim, pixels, evidence: false }, signal);
        },
      }).subscribe({
        next: ({ items, result }) => {
          const first: number[] = [];
          const second: number[] = [];
          items.forEach(({ stage }, i) => (stage === 1 ? first : second).push(i));
          if (first.length) stage1.add(pick(result.scores, first));
          for (const name of names) for (const i of second) held[name]!.push(result.scores[name]![i]!);
          n1 += first.length;
          n2 += second.length;
          o.onProgress?.(n1, n2);
        },
        error: reject,
        complete: resolve,
      });
      controller.signal.addEventListener('abort', () => {
        sub.unsubscribe();
        reject(controller.signal.reason);
      });
    });
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (n1 === 0) throw Errors.badSource({ file: o.data.uri }, `no clean records to calibrate on (stage 1 takes ${o.data.stage1})`);
  if (combined && n2 === 0) throw Errors.badSource({ file: o.data.uri }, `no clean records for the combined score's second stage (${o.data.stage2})`);
  const source = describeData(o.data, n1, n2);
  let calibration = finishCalibration(stage1, { fpr: o.fpr, source });
  if (combined) {
    const stage2 = calibrationAccumulator(plan, { base: calibration });
    stage2.add(Object.fromEntries(names.map((n) => [n, Float32Array.from(held[n]!)])));
    calibration = finishCalibration(stage2, { fpr: o.fpr, source });
  }
  calibration.provenance = {
    by: 'advstream audit',
    version: advstreamVersion(),
    data: o.data,
    records: { stage1: n1, stage2: n2 },
    models: Object.fromEntries(pool.planIds.map((id) => [id, pool.digests[id]!])),
    backend: pool.ready.backend.backend,
    engine: pool.engine,
    created_at: new Date().toISOString(),
  };
  return calibration;
}

/** Writes a calibration atomically (temp file, rename), creating its folder. */
export async function writeCalibration(file: string, calibration: Calibration): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await saveCalibration(tmp, calibration);
  await rename(tmp, file);
}

export interface ResolveCalibrationOptions extends CalibrationOptions {
  batch: number;
  maxInFlight: number;
  retries: number;
  signal?: AbortSignal;
}

/** The calibration an audit on `pool` uses, and its file (null for one given as an object). */
export async function resolveCalibration(pool: AuditPool, o: ResolveCalibrationOptions): Promise<{ calibration: Calibration; file: string | null; reused: boolean }> {
  const fpr = o.fpr ?? DEFAULT_FPR;
  if (!(fpr > 0 && fpr < 1)) throw Errors.badArgument(`fpr must be in (0, 1), got ${fpr}`, { fpr });
  const limit = o.calibrationLimit;
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw Errors.badArgument(`the calibration limit must be a positive integer, got ${limit}`);
  const data = calibrationData(o.calibrationData ?? DEFAULT_CALIBRATION_DATA, pool.plan, limit);
  if (typeof o.calibration === 'object') {
    const given = o.calibration;
    const differences = calibrationDifferences(given, pool.plan);
    if (pool.plan.combined && !given.combined) differences.push('the combined score is not calibrated');
    if (differences.length) throw Errors.calibrationMismatch('the calibration given', differences);
    return { calibration: given, file: null, reused: true };
  }
  const digests = Object.fromEntries(pool.planIds.map((id) => [id, pool.digests[id]!]));
  const file = o.calibration ?? defaultCalibrationFile(pool.plan, fpr, data, digests);
  let reason = 'no calibration file yet';
  if (existsSync(file) && !o.recalibrate) {
    try {
      const found = await loadCalibration(file);
      const stale = calibrationStaleness(found, pool.plan, fpr, data, digests);
      if (stale.length === 0) {
        o.onCalibration?.({ phase: 'reused', file });
        return { calibration: found, file, reused: true };
      }
      reason = `it does not fit: ${stale.join('; ')}`;
    } catch (e) {
      reason = `it cannot be read: ${(e as Error).message}`;
    }
  } else if (o.recalibrate) reason = 'recalibration asked for';
  o.onCalibration?.({ phase: 'calibrating', file, reason, stage1: 0, stage2: 0, data: data.uri });
  const calibration = await calibrateOnPool(pool, {
    fpr,
    data,
    batch: o.batch,
    maxInFlight: o.maxInFlight,
    retries: o.retries,
    ...(o.signal ? { signal: o.signal } : {}),
    onProgress: (stage1, stage2) => o.onCalibration?.({ phase: 'calibrating', file, reason, stage1, stage2, data: data.uri }),
  });
  await writeCalibration(file, calibration);
  const records = calibration.provenance!.records as { stage1: number; stage2: number };
  o.onCalibration?.({ phase: 'saved', file, ...records });
  return { calibration, file, reused: false };
}
