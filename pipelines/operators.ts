/**
 * The small operators `evaluate` is built from. Each is generic and tested alone (empty, one, many,
 * error, early unsubscribe).
 */
import { mergeMap, Observable, Subscription, type OperatorFunction } from 'rxjs';
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
  const { concurrency, retries, retryable } = options;
  const one = (task: T) =>
    new Observable<R>((subscriber) => {
      const controller = new AbortController();
      let settled = false;
      (async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await run(task, attempt, controller.signal);
          } catch (e) {
            if (controller.signal.aborted) throw e;
            if (!retryable(e)) throw e;
            if (attempt >= retries) {
              const what = options.describe?.(task) ?? 'a task';
              throw Errors.workerFailed(`${what} failed on ${attempt + 1} workers in a row: ${(e as Error).message}`, {
                attempts: attempt + 1,
                cause: (e as Error).message,
              });
            }
            options.onRetry?.(task, attempt + 1, e);
          }
        }
      })().then(
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
  return mergeMap(one, concurrency);
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
            subscriber.error(new Error(`index ${index} arrived twice`));
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
            subscriber.error(new Error(`index ${next} never arrived; ${held.size} later value(s) held`));
            return;
          }
          subscriber.complete();
        },
      });
    });
}
