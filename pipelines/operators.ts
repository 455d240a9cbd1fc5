/**
 * The small operators `evaluate` is built from. Each is generic and tested alone (empty, one, many,
 * error, early unsubscribe).
 */
import { map, mergeMap, Observable, Subscription, takeUntil, tap, type OperatorFunction } from 'rxjs';
import { Errors } from '../src/errors.js';

export interface BatchOptions {
  /**
   * When this emits, the group being filled is dropped and the output completes: a stop that never
   * emits a short group, so that every emitted group but the source's last is exactly `size` long.
   */
  until$?: Observable<unknown>;
}

/**
 * Groups values into arrays of `size`, in order. When the source completes, the last, shorter
 * group is emitted; when `until$` emits, it is dropped and the source is unsubscribed.
 *
 * @example
 * of(1, 2, 3, 4, 5).pipe(batchRecords(2)).subscribe(console.log); // [1,2] [3,4] [5]
 */
export function batchRecords<T>(size: number, options: BatchOptions = {}): OperatorFunction<T, T[]> {
  if (!(Number.isSafeInteger(size) && size > 0)) throw Errors.badArgument(`batch size must be a positive integer, got ${size}`);
  return (source) =>
    new Observable<T[]>((subscriber) => {
      let group: T[] = [];
      const subscription = new Subscription();
      if (options.until$) {
        subscription.add(
          options.until$.subscribe(() => {
            group = [];
            subscriber.complete();
          }),
        );
      }
      if (subscriber.closed) return subscription;
      subscription.add(
        source.subscribe({
          next: (value) => {
            group.push(value);
            if (group.length === size) {
              const full = group;
              group = [];
              subscriber.next(full);
            }
          },
          error: (e: unknown) => subscriber.error(e),
          complete: () => {
            if (group.length > 0) subscriber.next(group);
            group = [];
            subscriber.complete();
          },
        }),
      );
      return subscription;
    });
}

export interface RunTasksOptions<T> {
  /** Tasks running at once; the rest wait in `mergeMap`'s buffer (keep the input bounded upstream). */
  concurrency: number;
  /** Further attempts for a task whose failure `retryable` accepts. */
  retries: number;
  retryable: (error: unknown) => boolean;
  /** Told before each retry. */
  onRetry?: (task: T, attempt: number, error: unknown) => void;
  /** Told when a running task is aborted by unsubscription. */
  onAbort?: (task: T) => void;
  /** Names a task in the error after the last retry. */
  describe?: (task: T) => string;
}

/**
 * Runs each task with `run`, at most `concurrency` at once, emitting results as they complete.
 * Unsubscribing aborts the running tasks through their `AbortSignal`. A failure `retryable`
 * accepts is retried up to `retries` times (attempt 1, 2, …), then fails as WORKER_FAILED; any
 * other failure fails the output at once.
 *
 * @example
 * tasks$.pipe(runTasks((t, attempt, signal) => pool.run(t, { signal }), {
 *   concurrency: 4, retries: 2, retryable: isWorkerCrash,
 * }));
 */
export function runTasks<T, R>(
  run: (task: T, attempt: number, signal: AbortSignal) => Promise<R>,
  options: RunTasksOptions<T>,
): OperatorFunction<T, R> {
  const one = (task: T) =>
    new Observable<R>((subscriber) => {
      const controller = new AbortController();
      let settled = false;
      withRetries(task, run, options, controller.signal).then(
        (result) => {
          settled = true;
          subscriber.next(result);
          subscriber.complete();
        },
        (e: unknown) => {
          settled = true;
          if (!controller.signal.aborted) subscriber.error(e);
        },
      );
      return () => {
        if (settled) return;
        options.onAbort?.(task);
        controller.abort(Errors.workerFailed('the evaluation was unsubscribed', { aborted: true }));
      };
    });
  return mergeMap(one, options.concurrency);
}

/**
 * One task's attempts: `run` again while its failure is `retryable` and retries are left (attempt
 * 1, 2, …), then WORKER_FAILED naming the task; any other failure, or one after `signal` aborted,
 * is thrown as it is. The one retry rule of every pool user ({@link runTasks}, the auditor).
 *
 * @example
 *   await withRetries(task, (t, attempt, signal) => runner.run(t, signal), { retries: 2, retryable: isWorkerCrash }, signal);
 */
export async function withRetries<T, R>(
  task: T,
  run: (task: T, attempt: number, signal: AbortSignal) => Promise<R>,
  options: Pick<RunTasksOptions<T>, 'retries' | 'retryable' | 'onRetry' | 'describe'>,
  signal: AbortSignal,
): Promise<R> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run(task, attempt, signal);
    } catch (e) {
      if (signal.aborted || !options.retryable(e)) throw e;
      if (attempt >= options.retries) {
        const what = options.describe?.(task) ?? 'a task';
        throw Errors.workerFailed(`${what} failed on ${attempt + 1} workers in a row: ${(e as Error).message}`, {
          attempts: attempt + 1,
          cause: (e as Error).message,
        });
      }
      options.onRetry?.(task, attempt + 1, e);
    }
  }
}

/**
 * Re-emits values in the order of their index (`first`, `first + 1`, …), holding early ones until
 * the gap before them fills. Completing with a value still held is an error: one index never came.
 *
 * @example
 * of({ i: 1 }, { i: 0 }).pipe(inIndexOrder((v) => v.i)).subscribe(console.log); // {i:0} {i:1}
 */
export function inIndexOrder<T>(indexOf: (value: T) => number, first = 0): OperatorFunction<T, T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      const held = new Map<number, T>();
      let next = first;
      return source.subscribe({
        next: (value) => {
          const index = indexOf(value);
          if (index < next || held.has(index)) {
            subscriber.error(Errors.badArgument(`index ${index} arrived twice`, { index }));
            return;
          }
          held.set(index, value);
          while (held.has(next)) {
            const ready = held.get(next)!;
            held.delete(next);
            next++;
            subscriber.next(ready);
          }
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => {
          if (held.size > 0) {
            subscriber.error(Errors.badArgument(`index ${next} never arrived; ${held.size} later value(s) held`, { index: next, held: held.size }));
            return;
          }
          subscriber.complete();
        },
      });
    });
}

export interface PooledBatchesOptions<T, R> {
  /** Records per batch. */
  batch: number;
  /** Batches running at once, at most; also what the reorder buffer is bounded by (twice it). */
  maxInFlight: number;
  /** Runs one batch; see {@link runTasks} for attempts and the signal. */
  run: (items: T[], index: number, attempt: number, signal: AbortSignal) => Promise<R>;
  /** Further attempts for a batch whose failure `retryable` accepts; default 0. */
  retries?: number;
  retryable?: (error: unknown) => boolean;
  onRetry?: (index: number, attempt: number, error: unknown) => void;
  /** Names a batch in the error after its last retry; default `batch N`. */
  describe?: (batch: { index: number; items: T[] }) => string;
  /**
   * Where the pipeline asks its source for records, when the source is pull-based (a source's
   * `toObservable({ demand$ })`): `maxInFlight` batches at first, then one batch as each completes
   * and the ones before it are out. Without it the source pushes at its own pace (RxJS has no
   * backpressure) and its records wait in the batching buffer.
   */
  demand?: { next(count: number): void };
  /**
   * Stop reading when this emits: the batches in flight finish, then the output completes. The
   * records read into the batch being filled run as a short batch under `partial: 'keep'` (the
   * default), or are dropped under `'drop'`, so that every batch but the source's last is full.
   */
  until$?: Observable<unknown>;
  partial?: 'keep' | 'drop';
  /** Told as each batch is handed to `run` (its first attempt). */
  onStart?: (index: number, items: T[]) => void;
  /** Told as each batch finishes, in completion order, before it waits its turn in source order. */
  onComplete?: (batch: PooledBatch<T, R>) => void;
  /** Told of each running batch aborted by unsubscription. */
  onAbort?: (index: number) => void;
}

/** One finished batch: its items and the result of running them, in source order. */
export interface PooledBatch<T, R> {
  index: number;
  items: T[];
  result: R;
}

/**
 * Records → batches of `batch` → `run` (at most `maxInFlight` at once) → results in source order.
 * With `demand`, the source is pulled, never pushed: at most `maxInFlight` batches are pulled but
 * not finished, and at most `2·maxInFlight` are ahead of the last one emitted. Unsubscribing
 * aborts the batches in flight.
 *
 * @example
 *   const demand$ = new Subject<number>();
 *   pooledBatches(source.toObservable({ demand$ }), { batch: 32, maxInFlight: 4, demand: demand$,
 *     run: (records, i, attempt, signal) => runner.run(taskOf(records), signal) });
 */
export function pooledBatches<T, R>(records$: Observable<T>, options: PooledBatchesOptions<T, R>): Observable<PooledBatch<T, R>> {
  const { batch, maxInFlight, demand } = options;
  if (!(Number.isSafeInteger(maxInFlight) && maxInFlight > 0)) throw Errors.badArgument(`maxInFlight must be a positive integer, got ${maxInFlight}`);
  return new Observable<PooledBatch<T, R>>((subscriber) => {
    let opened = 0;
    let completed = 0;
    let emitted = 0;
    let next = 0;
    let reading = true;
    const topUp = () => {
      if (!demand) return;
      while (reading && opened - completed < maxInFlight && opened < emitted + 2 * maxInFlight) {
        opened++;
        demand.next(batch);
      }
    };
    const stopped = new Subscription();
    if (options.until$) stopped.add(options.until$.subscribe(() => (reading = false)));
    const batches$ =
      options.until$ && options.partial === 'drop'
        ? records$.pipe(batchRecords(batch, { until$: options.until$ }))
        : (options.until$ ? records$.pipe(takeUntil(options.until$)) : records$).pipe(batchRecords(batch));
    const flow = batches$
      .pipe(
        map((items) => {
          const index = next++;
          options.onStart?.(index, items);
          return { index, items };
        }),
        runTasks(
          async ({ index, items }, attempt, signal): Promise<PooledBatch<T, R>> => ({
            index,
            items,
            result: await options.run(items, index, attempt, signal),
          }),
          {
            concurrency: maxInFlight,
            retries: options.retries ?? 0,
            retryable: options.retryable ?? (() => false),
            onRetry: ({ index }, attempt, e) => options.onRetry?.(index, attempt, e),
            onAbort: ({ index }) => options.onAbort?.(index),
            describe: options.describe ?? (({ index }) => `batch ${index}`),
          },
        ),
        tap((d) => {
          completed++;
          options.onComplete?.(d);
          topUp();
        }),
        inIndexOrder((d) => d.index),
      )
      .subscribe({
        next: (d) => {
          emitted++;
          subscriber.next(d);
          topUp();
        },
        error: (e: unknown) => {
          reading = false;
          subscriber.error(e);
        },
        complete: () => {
          reading = false;
          subscriber.complete();
        },
      });
    topUp();
    return () => {
      reading = false;
      stopped.unsubscribe();
      flow.unsubscribe();
    };
  });
}
