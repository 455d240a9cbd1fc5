/**
 * The streaming audit: source → batches → pool (detector scores) → verdicts (calibrated thresholds,
 * in the main thread) → sink. Three faces over one {@link Auditor}, so they give the same verdicts:
 *
 * - {@link auditAdversarial}: an RxJS operator, records in, verdicts out, in order;
 * - {@link createAuditStream}: a Node object-mode `Transform`, with backpressure on both sides;
 * - {@link audit}: the run behind `advstream audit`, pulled from a source, with a start event,
 *   one verdict event per record and periodic summaries (flag rates with Wilson intervals).
 *
 * Flow control. At most `maxInFlight` batches (default two per thread) run at once. With a
 * pull-based source (`audit`, or the operator given `demand`) nothing is read ahead of that; an
 * Observable that pushes on its own is not slowed (RxJS has no backpressure) and its records wait
 * in the batching buffer. The stream holds its write callback while `maxInFlight` batches are
 * unfinished or its readable side is full, so a fast writer waits.
 *
 * Stopping. `stop` stops reading: the records already read are still audited, then the final
 * summary follows. Unsubscribing (or destroying the stream) aborts the tasks in flight and closes
 * the pool the audit opened.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Observable, ReplaySubject, Subject, type OperatorFunction, type Subscription } from 'rxjs';
import {
  openSource,
  toObservable,
  type ImageRecord,
  type OnBadRecord,
  type RecordSource,
  type RejectSink,
} from '../src/data/index.js';
import { Errors } from '../src/errors.js';
import { Proportion, type ProportionSummary } from '../src/stats/index.js';
import { openAuditor, type AuditInfo, type Auditor, type AuditorOptions, type AuditVerdict } from './auditor.js';
import { admissionFailure, admitRecords } from './admit.js';
import { withAlarms, type AlarmOptions, type AuditAlarmEvent } from './alarms.js';
import { pooledBatches } from './operators.js';
import { badRecordPolicy, cadence, isSpec, type EvalSource, type StatsEvery } from './options.js';
import { pipeline } from './shell.js';

export interface AuditOperatorOptions extends AuditorOptions {
  /** An open auditor to share (a server's, another stream's); else one is opened and closed with the subscription. */
  auditor?: Auditor;
  /**
   * Where to ask a pull-based source for records (`source.toObservable({ demand$ })`): the operator
   * then reads only as far as its pool can take. Without it the source pushes.
   */
  demand?: { next(count: number): void };
}

/**
 * Audits each record: verdicts (scores, per-detector flags, the decision, predictions, evidence) in
 * the records' order. The pool and calibration are set up on subscription (or shared with
 * `options.auditor`); unsubscribing aborts the batches in flight and closes an auditor it opened.
 *
 * @example
 *   const demand$ = new Subject<number>();
 *   openSource('mnist:test', { limit: 100 }).toObservable({ demand$ })
 *     .pipe(auditAdversarial({ demand: demand$, fpr: 0.01 }))
 *     .subscribe((v) => v.flagged && console.log(v.id, v.scores));
 */
export function auditAdversarial(options: AuditOperatorOptions = {}): OperatorFunction<ImageRecord, AuditVerdict> {
  return (source) =>
    new Observable<AuditVerdict>((subscriber) => {
      const gone = new AbortController();
      let auditor: Auditor | undefined = options.auditor;
      let flow: Subscription | undefined;
      const release = async () => {
        if (!options.auditor) await auditor?.close();
      };
      (async () => {
        auditor ??= await openAuditor({ ...options, signal: gone.signal });
        if (gone.signal.aborted) return release();
        const a = auditor;
        flow = pooledBatches(source, {
          batch: a.batch,
          maxInFlight: options.maxInFlight ?? a.maxInFlight,
          ...(options.demand ? { demand: options.demand } : {}),
          run: (records, _index, _attempt, signal) => a.audit(records, signal),
        }).subscribe({
          next: ({ result }) => {
            for (const v of result) subscriber.next(v);
          },
          error: (e: unknown) => void release().finally(() => subscriber.error(e)),
          complete: () => void release().then(() => subscriber.complete(), (e: unknown) => subscriber.error(e)),
        });
      })().catch((e: unknown) => void release().finally(() => subscriber.error(e)));
      return () => {
        gone.abort();
        flow?.unsubscribe();
        void release().catch(() => {});
      };
    });
}

export interface AuditStreamOptions extends AuditorOptions {
  auditor?: Auditor;
  /** A record that is not a valid image of the models' shape: `fail` (default; the stream errors) or `skip`. */
  onBadRecord?: OnBadRecord;
  rejects?: RejectSink;
  /** Verdicts buffered on the readable side before the writable side waits; default 16. */
  readableHighWaterMark?: number;
}

class AuditTransform extends Transform {
  private readonly auditor: Promise<Auditor>;
  private readonly owned: boolean;
  private readonly controller = new AbortController();
  private pending: ImageRecord[] = [];
  /** Batches submitted and not yet pushed. */
  private unfinished = 0;
  private held: TransformCallback | undefined;
  private tail: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(private readonly options: AuditStreamOptions) {
    super({ objectMode: true, readableHighWaterMark: options.readableHighWaterMark ?? 16, writableHighWaterMark: 1 });
    this.owned = !options.auditor;
    this.auditor = options.auditor ? Promise.resolve(options.auditor) : openAuditor({ ...options, signal: this.controller.signal });
    // Reported by the first write (or the end); a stream nobody writes to must not crash the process.
    this.auditor.catch(() => {});
  }

  private full(a: Auditor): boolean {
    return this.unfinished >= (this.options.maxInFlight ?? a.maxInFlight) || this.readableLength >= this.readableHighWaterMark;
  }

  private release(a: Auditor): void {
    if (this.held && !this.full(a)) {
      const cb = this.held;
      this.held = undefined;
      cb();
    }
  }

  private submit(a: Auditor): void {
    const records = this.pending;
    this.pending = [];
    this.unfinished++;
    const verdicts = a.audit(records, this.controller.signal);
    verdicts.catch(() => {});
    this.tail = this.tail.then(async () => {
      if (this.failed) return;
      try {
        for (const v of await verdicts) this.push(v);
      } catch (e) {
        this.failed = true;
        this.destroy(e as Error);
        return;
      }
      this.unfinished--;
      this.release(a);
    });
  }

  override _transform(record: ImageRecord, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.auditor
      .then(async (a) => {
        const why = admissionFailure(record, { shape: a.shape });
        if (why !== undefined) {
          const id = typeof record?.id === 'string' ? record.id : undefined;
          const error = Errors.badRecord({ file: 'stream', ...(id !== undefined ? { id } : {}) }, why);
          await this.options.rejects?.write({ file: 'stream', ...(id !== undefined ? { id } : {}), code: error.code, reason: why });
          if ((this.options.onBadRecord ?? 'fail') === 'fail') throw error;
          callback();
          return;
        }
        this.pending.push(record);
        if (this.pending.length >= a.batch) this.submit(a);
        if (this.full(a)) this.held = callback;
        else callback();
      })
      .catch((e: unknown) => callback(e as Error));
  }

  override _read(size: number): void {
    super._read(size);
    void this.auditor.then((a) => this.release(a), () => {});
  }

  override _flush(callback: TransformCallback): void {
    this.auditor
      .then(async (a) => {
        if (this.pending.length > 0) this.submit(a);
        await this.tail;
        if (this.failed) return;
        if (this.owned) await a.close();
        callback();
      })
      .catch((e: unknown) => callback(e as Error));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.controller.abort(Errors.workerFailed('the audit stream was destroyed', { aborted: true }));
    const closing = this.owned ? this.auditor.then((a) => a.close()) : Promise.resolve();
    closing.then(
      () => callback(error),
      () => callback(error),
    );
  }
}

/**
 * A Node object-mode `Transform`: `ImageRecord`s in, {@link AuditVerdict}s out, in order. Records are
 * audited in batches; the write side waits while `maxInFlight` batches are unfinished or the read
 * side is full. Ending the stream audits the last, short batch; destroying it aborts the batches in
 * flight and closes an auditor it opened.
 *
 * @example
 *   await pipeline(openSource('mnist:test', { limit: 100 }), createAuditStream({ fpr: 0.01 }), sink);
 */
export function createAuditStream(options: AuditStreamOptions = {}): Transform {
  return new AuditTransform(options);
}

/** Flag counts of an audit: the decision's and each detector's, with 95% Wilson intervals. */
export interface AuditSummary {
  records: number;
  /** Records rejected as unreadable (under `skip`). */
  rejected: number;
  /** The decision (the combined score's flag where there is one). */
  flagged: ProportionSummary;
  /** Each detector's own flag, and `combined`'s where the plan has one. */
  detectors: Record<string, ProportionSummary>;
  /** The calibrated target false-positive rate. */
  fpr: number;
  elapsed_s: number;
  records_per_s: number | null;
}

/** Mergeable flag counts over verdicts. */
export class AuditStats {
  private readonly decision = new Proportion();
  private readonly byDetector = new Map<string, Proportion>();

  constructor(names: readonly string[]) {
    for (const name of names) this.byDetector.set(name, new Proportion());
  }

  get records(): number {
    return this.decision.trials;
  }

  add(v: AuditVerdict): this {
    this.decision.add(v.flagged);
    for (const [name, p] of this.byDetector) p.add(name === 'combined' && !(name in v.flags) ? v.flagged : v.flags[name] === true);
    return this;
  }

  summary(extra: { rejected: number; fpr: number; elapsed_s: number }): AuditSummary {
    return {
      records: this.decision.trials,
      rejected: extra.rejected,
      flagged: this.decision.summary(),
      detectors: Object.fromEntries([...this.byDetector].map(([k, p]) => [k, p.summary()])),
      fpr: extra.fpr,
      elapsed_s: extra.elapsed_s,
      records_per_s: extra.elapsed_s > 0 ? this.decision.trials / extra.elapsed_s : null,
    };
  }
}

export interface AuditStartEvent extends AuditInfo {
  type: 'start';
  source: string;
}

export interface AuditVerdictEvent extends AuditVerdict {
  type: 'verdict';
}

export type AuditStopReason = 'end' | 'stopped';

export interface AuditSummaryEvent extends AuditSummary {
  type: 'summary';
  /** The last summary, after every record read was audited. */
  final: boolean;
  stop_reason?: AuditStopReason;
  provenance?: Record<string, unknown>;
}

export type AuditEvent = AuditStartEvent | AuditVerdictEvent | AuditSummaryEvent | AuditAlarmEvent;

export interface AuditOptions extends AuditorOptions {
  /** An open auditor to share; else one is opened (and closed at the end). */
  auditor?: Auditor;
  /** A summary event every so many seconds or batches; default every 2 seconds. */
  statsEvery?: StatsEvery;
  /** Stop reading when aborted; the records already read are audited and the final summary follows. */
  stop?: AbortSignal;
  /** Unreadable records: `skip` (default: an audit goes on, counting them) or `fail`. */
  onBadRecord?: OnBadRecord;
  rejects?: RejectSink;
  /** Merged into the final summary's provenance. */
  provenance?: Record<string, unknown>;
  /** Raise dataset-level alarm events (pipelines/alarms.ts) after the verdicts that trip them. */
  alarms?: AlarmOptions;
}

/**
 * The audit of a source, pulled as fast as the pool takes it: a `start` event (backend, detectors,
 * calibration), a `verdict` event per record in source order, `summary` events, and a final summary.
 *
 * @example
 *   audit({ uri: 'ndjson:incoming.ndjson' }, { fpr: 0.01 })
 *     .subscribe((e) => e.type === 'verdict' && e.flagged && console.log(e.id));
 */
export function audit(source: EvalSource, options: AuditOptions = {}): Observable<AuditEvent> {
  const events = pipeline<AuditEvent>(async (scope) => {
    const policy = badRecordPolicy(options.onBadRecord, 'skip');
    const every = cadence(options.statsEvery);
    const a = options.auditor ?? (await openAuditor({ ...options, signal: scope.signal }));
    if (!options.auditor) scope.defer(() => a.close());
    // Unsubscribed while the pool was starting.
    if (scope.signal.aborted) return;
    let records: RecordSource;
    if (isSpec(source)) {
      const { uri, ...rest } = source;
      records = openSource(uri, {
        ...rest,
        onBadRecord: policy,
        ...(options.rejects ? { rejects: options.rejects } : {}),
        shape: a.shape,
        signal: scope.signal,
      });
    } else records = source;
    scope.next({ type: 'start', source: records.uri, ...a.info });
    // Throughput counts the audit, not the calibration before it.
    const t0 = performance.now();

    const names = [...a.plan.detectors.map((d) => d.name), ...(a.plan.combined ? ['combined'] : [])];
    const stats = new AuditStats(names);
    let pipelineRejects = 0;
    const summary = (final: boolean, reason?: AuditStopReason): AuditSummaryEvent => ({
      type: 'summary',
      final,
      ...stats.summary({ rejected: records.counters.rejected + pipelineRejects, fpr: a.calibration.fpr, elapsed_s: (performance.now() - t0) / 1000 }),
      ...(reason ? { stop_reason: reason } : {}),
      ...(final ? { provenance: { ...options.provenance, source: records.uri, calibration: a.info.calibration } } : {}),
    });

    const demand$ = new Subject<number>();
    const stop$ = new ReplaySubject<void>(1);
    let stopped = false;
    // A source opened here rejects records of another shape itself; a given one is checked here.
    const records$ = toObservable(records, { demand$ }).pipe(
      admitRecords(
        {
          file: records.uri,
          shape: a.shape,
          policy,
          ...(options.rejects ? { rejects: options.rejects } : {}),
          onSkip: () => {
            pipelineRejects++;
            demand$.next(1);
          },
        },
        (record: ImageRecord) => record,
      ),
    );
    let batches = 0;
    if (every.seconds !== undefined) scope.every(every.seconds, () => scope.next(summary(false)));
    scope.onAbort(options.stop, () => {
      stopped = true;
      stop$.next();
      stop$.complete();
    });
    await scope.drain(
      pooledBatches(records$, {
        batch: a.batch,
        maxInFlight: options.maxInFlight ?? a.maxInFlight,
        demand: demand$,
        until$: stop$,
        run: (items, _index, _attempt, signal) => a.audit(items, signal),
      }),
      ({ result }) => {
        for (const v of result) {
          stats.add(v);
          scope.next({ type: 'verdict', ...v });
        }
        batches++;
        if (scope.closed) return;
        if (every.batches !== undefined && batches % every.batches === 0) scope.next(summary(false));
      },
    );
    scope.stopTimers();
    scope.next(summary(true, stopped ? 'stopped' : 'end'));
  });
  return options.alarms ? events.pipe(withAlarms(options.alarms)) : events;
}
