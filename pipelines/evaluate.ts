/**
 * The streaming evaluation: plan → runner → admitted records → pooled batches → commit → final.
 *
 * Flow control. The source is pulled, never pushed (`pooledBatches` with `demand`): at most
 * `maxInFlight` batches (default two per worker) are pulled but not finished, and at most twice
 * that many completed batches wait to be committed in source order. Memory stays flat on an
 * endless source.
 *
 * Commit order. Batches complete in any order; the live statistics take each as it completes, the
 * committed statistics (checkpoints, `batch` events, the final line) take them in source order, so a
 * checkpoint always describes a contiguous prefix of the source.
 *
 * Stopping. `stop` (SIGINT in the CLI) and `untilCi` stop reading: the partly filled batch is
 * dropped, the batches in flight finish, and the final event follows. Unsubscribing instead aborts
 * the tasks in flight and closes the pool, with no final event.
 */
import { performance } from 'node:perf_hooks';
import { map, ReplaySubject, Subject, tap, type Observable } from 'rxjs';
import { formatShape, toObservable, type ImageRecord } from '../src/data/index.js';
import { Errors } from '../src/errors.js';
import { EvalStats, maxIntervalWidth } from '../src/stats/index.js';
import { batchSeed, type EvalSetup, type EvalTask, type EvalTaskResult } from '../workers/eval-task.js';
import { admitRecords } from './admit.js';
import { CheckpointWriter, type EvalCheckpoint } from './checkpoint.js';
import { finalEvent, startEvent, statsEvent, throughputOf, type EvalEvent, type EvalProgress, type EvalRun, type StopReason } from './eval-events.js';
import { evalCounters, planEvaluation, type EvalPlan, type EvaluateOptions } from './eval-plan.js';
import { pooledBatches } from './operators.js';
import { commonInputShape, type EvalSource } from './options.js';
import { EVAL_TASKS, isWorkerCrash, mainThread, workerPool } from './runner.js';
import { sampleResults, type BatchPixels } from './samples.js';
import { pipeline } from './shell.js';

export * from './eval-events.js';
export { DEFAULT_ATTACKS, evalCounters, type CheckpointOptions, type EvalCounters, type EvaluateOptions } from './eval-plan.js';
export type { EvalSource, SourceSpec, StatsEvery } from './options.js';

/** A record on its way to a batch: its position in the source (after the offset) and among the images evaluated. */
interface Admitted {
  record: ImageRecord;
  position: number;
  ordinal: number;
}

/** One batch as the workers return it, with its per-image results. */
interface Done {
  task: EvalTask;
  result: EvalTaskResult;
  samples: ReturnType<typeof sampleResults>;
}

/** The task of a batch: its pixels and labels packed, its seed from its first record's position. */
function taskOf(p: EvalPlan, items: readonly Admitted[], index: number, attempt: number, dim: number): EvalTask {
  const n = items.length;
  const pixels = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  items.forEach(({ record }, i) => {
    pixels.set(record.pixels, i * dim);
    labels[i] = record.label!;
  });
  return {
    index,
    attempt,
    seed: batchSeed(p.seed, p.offset + items[0]!.position),
    ids: items.map(({ record }) => record.id),
    count: n,
    dim,
    pixels,
    labels,
    pixelCount: Math.min(n, Math.max(0, p.samplePixels - items[0]!.ordinal)),
  };
}

/**
 * Evaluates models against attacks on a stream of records: an Observable of `start`, then `batch`
 * (per-image results, in source order) and periodic `stats` events, then one `final` event. Cold:
 * each subscription runs its own evaluation; unsubscribing aborts it.
 *
 * @example
 * evaluate({ uri: 'mnist:test', limit: 1000 }, { models: ['zoo:mlp-relu'], attacks: ['fgsm:eps=0.1'], workers: 2 })
 *   .pipe(filter((e): e is FinalEvent => e.type === 'final'))
 *   .subscribe((e) => console.log(e.models['zoo:mlp-relu'].attacks));
 */
export function evaluate(source: EvalSource, options: EvaluateOptions = {}): Observable<EvalEvent> {
  return pipeline<EvalEvent>(async (scope) => {
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    const counters = options.counters ?? evalCounters();
    const p = await planEvaluation(source, options);
    if (scope.signal.aborted) return;
    const resumed = p.checkpoint;
    const stats = () => (resumed ? EvalStats.fromJSON(resumed.stats) : new EvalStats({ curveGrids: p.grids }));
    const live = stats();
    const committed = stats();
    const base = { consumed: resumed?.consumed ?? 0, batches: resumed?.batches ?? 0 };
    let consumed = base.consumed;
    let batches = 0;
    let inFlight = 0;
    let retried = 0;
    let dropped = 0;
    let opened: ReturnType<EvalPlan['open']> | undefined;
    const total = (): number | null => {
      const declared = opened?.describe().count;
      const bound = Math.min(p.limit ?? Infinity, declared === undefined ? Infinity : Math.max(0, declared - p.offset));
      return Number.isFinite(bound) ? bound : null;
    };
    const progress = (): EvalProgress => ({ consumed, total: total(), batches: base.batches + batches, in_flight: inFlight, retries: retried, dropped });

    // A finished run: its checkpoint already holds the answer.
    if (resumed?.complete) {
      const run: EvalRun = { backend: resumed.backend, mode: p.mainThread ? 'main-thread' : 'pool', workers: 0, ready: undefined };
      scope.next(startEvent(p, run));
      scope.next(finalEvent(p, run, committed, { reason: 'end', elapsed: elapsed(), progress: progress(), provenance: options.provenance }));
      return;
    }

    const setup: EvalSetup = {
      models: p.artifacts,
      attacks: p.attacks,
      pairs: p.pairs,
      engine: p.engine,
      ...(options.backend !== undefined ? { backend: options.backend } : {}),
    };
    const kind = options.tasks ?? EVAL_TASKS;
    const runner = p.mainThread ? mainThread(kind, setup) : workerPool(kind, setup, p.workers);
    counters.poolOpen = runner.mode === 'pool';
    scope.defer(async () => {
      await runner.close();
      counters.poolOpen = false;
    });
    const ready = await runner.ready();
    if (scope.signal.aborted) return;
    const backend = { backend: ready.backend.backend, simd: ready.backend.simd };
    if (resumed && resumed.backend.backend !== backend.backend) {
      throw Errors.checkpointMismatch(options.checkpoint!.file, [`backend: checkpoint has ${resumed.backend.backend}, this run ${backend.backend}`]);
    }
    const shape = commonInputShape(ready.models);
    const dim = shape[0] * shape[1] * shape[2];
    const classes = Math.min(...ready.models.map((m) => m.numClasses));
    const run: EvalRun = { backend, mode: runner.mode, workers: runner.threads, ready };
    scope.next(startEvent(p, run));

    const writer = options.checkpoint ? new CheckpointWriter(options.checkpoint.file) : undefined;
    const save = (complete: boolean): Promise<void> => {
      if (!writer) return Promise.resolve();
      const snapshot: EvalCheckpoint = {
        version: 1,
        config_hash: p.hash,
        config: p.config,
        consumed,
        batches: base.batches + batches,
        complete,
        backend,
        stats: committed.toJSON(),
        annotations: options.checkpoint?.annotate?.() ?? {},
        saved_at: new Date().toISOString(),
      };
      return writer.save(snapshot);
    };
    const emitStats = () => {
      scope.next(statsEvent(live, elapsed(), progress()));
      void save(false);
    };

    const demand$ = new Subject<number>();
    const stop$ = new ReplaySubject<void>(1);
    let stopReason: StopReason | undefined;
    const requestStop = (reason: StopReason) => {
      if (stopReason) return;
      stopReason = reason;
      stop$.next();
      stop$.complete();
    };

    opened = p.open(base.consumed);
    let position = base.consumed;
    // The images evaluated before this one, resumed ones included: the first `samplePixels` carry pixels.
    let ordinal = resumed?.stats.images ?? 0;
    let finished = 0;
    const records$ = toObservable(opened.records, { demand$ }).pipe(
      map((record) => {
        counters.pulled++;
        // A source of other images is the wrong source, not a bad record.
        if (formatShape(record.shape) !== formatShape(shape)) {
          throw Errors.badArgument(`${p.uri} holds ${formatShape(record.shape)} images but the models take ${formatShape(shape)}`);
        }
        return { record, position: position++ };
      }),
      admitRecords(
        {
          file: p.uri,
          shape,
          policy: p.policy,
          refuse: (record) => {
            if (record.label === undefined) return 'no label: an evaluation needs labelled records';
            if (record.label >= classes) return `label ${record.label} is not a class of the models (${classes} classes)`;
            return undefined;
          },
          ...(options.rejects ? { rejects: options.rejects } : {}),
          onSkip: () => {
            counters.dropped++;
            dropped++;
            demand$.next(1);
          },
        },
        (item) => item.record,
      ),
      map((item): Admitted => ({ ...item, ordinal: ordinal++ })),
      tap(() => {
        counters.maxOutstanding = Math.max(counters.maxOutstanding, position - base.consumed - dropped - finished);
      }),
    );

    const batches$ = pooledBatches(records$, {
      batch: p.batch,
      maxInFlight: p.maxInFlight,
      demand: demand$,
      until$: stop$,
      partial: 'drop',
      retries: p.retries,
      retryable: isWorkerCrash,
      run: async (items, index, attempt, signal): Promise<Done> => {
        const task = taskOf(p, items, index, attempt, dim);
        const result = await runner.run(task, signal);
        return { task, result, samples: sampleResults(p.layout, task.labels, result) };
      },
      describe: ({ index, items }) => `batch ${index} (records from position ${p.offset + items[0]!.position})`,
      onStart: () => {
        counters.submitted++;
        inFlight++;
        counters.inFlight++;
        counters.maxInFlight = Math.max(counters.maxInFlight, counters.inFlight);
      },
      onRetry: () => {
        retried++;
        counters.retried++;
      },
      onAbort: () => {
        counters.aborted++;
        inFlight--;
        counters.inFlight--;
      },
      onComplete: ({ items, result: { result, samples } }) => {
        inFlight--;
        counters.inFlight--;
        counters.completed++;
        finished += items.length;
        counters.finished += items.length;
        for (const sample of samples) live.add(sample);
        live.throughput.add(throughputOf(result));
        const seen = counters.tensors[result.workerId];
        counters.tensors[result.workerId] = { first: seen?.first ?? result.tensors, last: result.tensors };
        if (p.untilCi !== undefined && maxIntervalWidth(live.summary()) < p.untilCi) requestStop('until-ci');
      },
    });

    if (p.cadence.seconds !== undefined) scope.every(p.cadence.seconds, emitStats);
    scope.onAbort(options.stop, () => requestStop('stopped'));
    await scope
      .drain(batches$, ({ index, items, result: { task, result, samples } }) => {
        for (const sample of samples) committed.add(sample);
        committed.throughput.add(throughputOf(result));
        batches++;
        counters.committed++;
        consumed = items[items.length - 1]!.position + 1;
        const pixels: BatchPixels | undefined =
          result.pixelCount > 0
            ? { count: result.pixelCount, shape, clean: task.pixels.slice(0, result.pixelCount * dim), adversarial: result.adversarial }
            : undefined;
        scope.next({
          type: 'batch',
          index: base.batches + index,
          first: p.offset + items[0]!.position,
          ids: task.ids,
          samples,
          worker: result.workerId,
          ...(pixels ? { pixels } : {}),
        });
        // The subscriber may have left inside that call (take(n)): then nothing more is due.
        if (scope.closed) return;
        if (p.cadence.batches !== undefined && batches % p.cadence.batches === 0) emitStats();
      })
      .catch(async (e: unknown) => {
        // The committed prefix is still sound: keep it, so that a rerun resumes rather than restarts.
        await save(false);
        throw e;
      });
    scope.stopTimers();
    const reason = stopReason ?? 'end';
    scope.next(finalEvent(p, run, committed, { reason, elapsed: elapsed(), progress: progress(), provenance: options.provenance }));
    await save(reason === 'end');
    await writer?.flush();
  });
}
