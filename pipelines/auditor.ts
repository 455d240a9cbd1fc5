/**
 * An auditor: an open audit pool with its calibration, which turns records into verdicts. The
 * operator, the Node stream, the CLI and the HTTP service all audit through one, so for the same
 * records they give the same verdicts. Workers return raw scores; the auditor, in the main thread,
 * holds the calibration and decides.
 */
import type { ImageRecord, RecordMeta, Shape } from '../src/data/index.js';
import { checkRecord } from '../src/data/index.js';
import { verdict, type Calibration, type DetectorPlan, type Evidence } from '../src/detect/index.js';
import { Errors } from '../src/errors.js';
import type { AuditTaskResult } from '../workers/audit-task.js';
import { openAuditPool, poolRun, type AuditPool, type AuditPoolOptions } from './audit-pool.js';
import { resolveCalibration, type CalibrationOptions } from './calibrate.js';
import { withRetries } from './operators.js';
import { nonNegativeInt, positiveInt } from './options.js';
import { isWorkerCrash, type RunPlace } from './runner.js';

/** One record's verdict: plain JSON, one NDJSON line of `advstream audit`. */
export interface AuditVerdict {
  id: string;
  label?: number;
  /** The decision: the combined score's flag where the plan has one, else any detector's. */
  flagged: boolean;
  /** The combined statistic (higher = more suspicious); null without a combined score. */
  combined: number | null;
  /** Each detector's score, higher = more suspicious. */
  scores: Record<string, number>;
  /** Each detector's own flag: its score above its calibrated threshold. */
  flags: Record<string, boolean>;
  /** Each combined detector's conformal p-value against the clean calibration scores; with a combined score only. */
  p_values?: Record<string, number>;
  /** Each plan model's predicted class, by model id. */
  predictions: Record<string, number>;
  /** Each detector's evidence (predictions, divergences, flips, …). */
  evidence: Record<string, Evidence>;
  /** The record's other fields from its source (see `ImageRecord.meta`), where it has any. */
  meta?: RecordMeta;
}

export interface AuditorOptions extends AuditPoolOptions, CalibrationOptions {
  /** Records per pool task; default 32. */
  batch?: number;
  /** Batches running at once in the operator and the stream; default two per thread. */
  maxInFlight?: number;
  /** Retries of a batch whose worker died; default 2. */
  retries?: number;
  /** Aborts the calibration while it runs. */
  signal?: AbortSignal;
}

/** What an audit runs on, for provenance. */
export interface AuditInfo extends RunPlace {
  batch: number;
  fpr: number;
  /** The bound plan's detector ids and combined score. */
  detectors: string[];
  combined: string | null;
  /** Each model with what scores it (`engine`) and what computes its input gradients (`gradient_engine`; `none`: black-box). */
  models: { id: string; family: string; engine: string; gradient_engine: string; sha256: string }[];
  calibration: { file: string | null; reused: boolean; source: string | null; n: Record<string, number>; thresholds: Record<string, number> };
}

export interface Auditor {
  readonly plan: DetectorPlan;
  readonly calibration: Calibration;
  readonly info: AuditInfo;
  /** The input shape every record must have. */
  readonly shape: Shape;
  readonly batch: number;
  readonly maxInFlight: number;
  /**
   * Verdicts for `records`, in their order: split into batches of `batch`, each run in the pool
   * (retried on another thread if its worker dies). A record that is not a valid image of `shape`
   * is a BAD_RECORD error naming it. At most `maxInFlight` batches of all calls together are in the
   * pool at once; the rest wait here, so the pool's queue stays bounded. When `signal` aborts,
   * waiting batches are dropped and the promise rejects once the running ones have stopped: until
   * it settles, the call's work still occupies the pool.
   */
  audit(records: readonly ImageRecord[], signal?: AbortSignal): Promise<AuditVerdict[]>;
  /** Frees the threads; safe to call twice. */
  close(): Promise<void>;
}

/** A signal that never aborts. */
const NEVER = new AbortController().signal;

/** At most `size` holders at once; the others wait in arrival order, and leave the line when their signal aborts. */
class Gate {
  private free: number;
  private readonly waiting: { enter: () => void; onAbort: () => void }[] = [];

  constructor(size: number) {
    this.free = size;
  }

  enter(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        enter: () => {
          signal.removeEventListener('abort', entry.onAbort);
          resolve();
        },
        onAbort: () => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  leave(): void {
    const next = this.waiting.shift();
    if (next) next.enter();
    else this.free++;
  }
}

/** The verdicts of one scored batch. */
export function verdictsOf(
  records: readonly Pick<ImageRecord, 'id' | 'label' | 'meta'>[],
  result: Pick<AuditTaskResult, 'scores' | 'preds' | 'evidence'>,
  calibration: Calibration,
  planIds: readonly string[],
): AuditVerdict[] {
  const v = verdict(calibration, result.scores);
  const names = Object.keys(v.scores);
  const n = records.length;
  return records.map((record, i) => {
    const out: AuditVerdict = {
      id: record.id,
      ...(record.label !== undefined ? { label: record.label } : {}),
      flagged: v.flagged[i] === 1,
      combined: v.combined ? v.combined[i]! : null,
      scores: Object.fromEntries(names.map((name) => [name, v.scores[name]![i]!])),
      flags: Object.fromEntries(names.map((name) => [name, v.flags[name]![i] === 1])),
      predictions: Object.fromEntries(planIds.map((id, m) => [id, result.preds[m * n + i]!])),
      evidence: result.evidence?.[i] ?? {},
    };
    if (v.combined) out.p_values = Object.fromEntries(Object.entries(v.pValues).map(([name, p]) => [name, p[i]!]));
    if (record.meta) out.meta = record.meta;
    return out;
  });
}

/** Records as one score task's pixels; BAD_RECORD for one that is not an image of `shape`. */
export function packRecords(records: readonly ImageRecord[], shape: Shape, where = 'records'): Float32Array {
  const dim = shape[0] * shape[1] * shape[2];
  const pixels = new Float32Array(records.length * dim);
  records.forEach((record, i) => {
    const why = checkRecord(record, shape);
    if (why !== undefined) throw Errors.badRecord({ file: where, ...(typeof record?.id === 'string' ? { id: record.id } : {}) }, why);
    pixels.set(record.pixels, i * dim);
  });
  return pixels;
}

/** An auditor on an open pool: calibration resolved, verdicts from scores. */
export async function auditorOnPool(pool: AuditPool, options: AuditorOptions = {}): Promise<Auditor> {
  const batch = positiveInt('batch', options.batch, 32);
  const maxInFlight = positiveInt('maxInFlight', options.maxInFlight, 2 * pool.runner.threads);
  const retries = nonNegativeInt('retries', options.retries, 2);
  const { calibration, file, reused } = await resolveCalibration(pool, {
    ...options,
    batch,
    maxInFlight,
    retries,
  });
  const all = { ...calibration.detectors, ...(calibration.combined ? { combined: calibration.combined } : {}) };
  const info: AuditInfo = {
    ...poolRun(pool),
    batch,
    fpr: calibration.fpr,
    detectors: pool.plan.detectors.map((d) => d.id),
    combined: pool.plan.combined?.id ?? null,
    models: pool.ready.models.map((m) => ({ id: m.id, family: m.family, engine: m.engine, gradient_engine: m.gradientEngine, sha256: pool.digests[m.id]! })),
    calibration: {
      file,
      reused,
      source: calibration.source ?? null,
      n: Object.fromEntries(Object.entries(all).map(([k, c]) => [k, c.n])),
      thresholds: Object.fromEntries(Object.entries(all).map(([k, c]) => [k, c.threshold])),
    },
  };
  let next = 0;
  const gate = new Gate(maxInFlight);
  const runBatch = async (records: readonly ImageRecord[], signal: AbortSignal): Promise<AuditVerdict[]> => {
    const pixels = packRecords(records, pool.shape);
    const index = next++;
    await gate.enter(signal);
    try {
      // No signal to the pool: an abandoned task would keep its thread while the gate let in another.
      const result = await withRetries(
        index,
        (_, attempt) => pool.runner.run({ kind: 'score', index, attempt, count: records.length, dim: pool.dim, pixels, evidence: true }, NEVER),
        { retries, retryable: isWorkerCrash, describe: () => `audit batch ${index}` },
        signal,
      );
      return verdictsOf(records, result, calibration, pool.planIds);
    } finally {
      gate.leave();
    }
  };
  return {
    plan: pool.plan,
    calibration,
    info,
    shape: pool.shape,
    batch,
    maxInFlight,
    async audit(records, signal = NEVER) {
      // A failed batch stops the call's other batches, which are not awaited on their own.
      const stop = new AbortController();
      const both = AbortSignal.any([signal, stop.signal]);
      const parts: Promise<AuditVerdict[]>[] = [];
      for (let from = 0; from < records.length; from += batch) {
        parts.push(runBatch(records.slice(from, from + batch), both).catch((e: unknown) => (stop.abort(e), Promise.reject(e))));
      }
      const settled = await Promise.allSettled(parts);
      signal.throwIfAborted();
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return settled.flatMap((r) => (r as PromiseFulfilledResult<AuditVerdict[]>).value);
    },
    close: () => pool.close(),
  };
}

/**
 * Opens an auditor: loads the detectors' models, starts the pool, and reuses or makes the
 * calibration (see {@link CalibrationOptions}). Close it when done.
 *
 * @example
 *   const auditor = await openAuditor({ fpr: 0.01 });
 *   try { (await auditor.audit(records)).filter((v) => v.flagged); } finally { await auditor.close(); }
 */
export async function openAuditor(options: AuditorOptions = {}): Promise<Auditor> {
  const pool = await openAuditPool(options);
  try {
    return await auditorOnPool(pool, options);
  } catch (e) {
    await pool.close().catch(() => {});
    throw e;
  }
}
