/**
 * The Observable view of a source. RxJS has no backpressure: `from(asyncIterable)` and `mergeMap`
 * pull as fast as the source yields. Here the subscriber's demand drives every pull, so the source
 * never runs further ahead than the consumer (principle 8), and unsubscribing closes the source
 * (its iterator's `return()`, which closes its files).
 */
import { Observable } from 'rxjs';
import { Errors } from '../errors.js';

export interface ObservableOptions {
  /**
   * Each value asks for that many more records (a non-negative integer, or Infinity); exactly that
   * many are pulled in total. When `demand$` completes, the Observable completes once the records
   * already asked for are delivered. Without it, records are pulled one at a time while subscribed.
   */
  demand$?: Observable<number>;
}

/** A source that never waits on I/O would otherwise run on microtasks alone and starve timers and signals. */
const YIELD_EVERY = 256;

/**
 * Emits the records of `source`, pulling one per record demanded: with `take(10)` exactly 10 are
 * pulled. Errors of the source are the Observable's errors.
 *
 * @example
 * const demand$ = new Subject<number>();
 * toObservable(openSource('mnist:test'), { demand$ }).subscribe(r => console.log(r.id));
 * demand$.next(32); // reads 32 records, then waits for more demand
 */
export function toObservable<T>(source: AsyncIterable<T>, options: ObservableOptions = {}): Observable<T> {
  const { demand$ } = options;
  return new Observable<T>((subscriber) => {
    const iterator = source[Symbol.asyncIterator]();
    let wanted = demand$ ? 0 : Infinity;
    let demandDone = false;
    let pumping = false;
    let finished = false;
    let sinceYield = 0;

    const pump = async () => {
      if (pumping || finished) return;
      pumping = true;
      try {
        while (!subscriber.closed && wanted > 0) {
          if (++sinceYield >= YIELD_EVERY) {
            sinceYield = 0;
            await new Promise((resolve) => setImmediate(resolve));
            if (subscriber.closed) break;
          }
          const next = await iterator.next();
          // Unsubscribed while this record was read: it is dropped, and teardown has closed the source.
          if (subscriber.closed) break;
          if (next.done) {
            finished = true;
            subscriber.complete();
            return;
          }
          if (wanted !== Infinity) wanted--;
          subscriber.next(next.value);
        }
        if (demandDone && wanted === 0) subscriber.complete();
      } catch (e) {
        finished = true;
        subscriber.error(e);
      } finally {
        pumping = false;
      }
    };

    const demandSubscription = demand$?.subscribe({
      next: (n) => {
        if (!((Number.isSafeInteger(n) && n >= 0) || n === Infinity)) {
          subscriber.error(Errors.badArgument(`demand must be a non-negative integer, got ${n}`));
          return;
        }
        wanted += n;
        void pump();
      },
      error: (e: unknown) => subscriber.error(e),
      complete: () => {
        demandDone = true;
        if (!pumping && wanted === 0) subscriber.complete();
      },
    });
    if (!demand$) void pump();

    return () => {
      demandSubscription?.unsubscribe();
      // Teardown cannot report a failure to close: the subscriber has already gone.
      if (!finished) iterator.return?.().catch(() => {});
    };
  });
}
