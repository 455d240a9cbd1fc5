/**
 * The Observable shell of a pipeline whose body is an async function (evaluation, audit): the body
 * emits events, and the shell owns what every such pipeline must get right — completing after the
 * body, erroring with its error, and on unsubscription aborting, unsubscribing the inner flows,
 * clearing the timers and running the clean-ups, each exactly once.
 */
import { Observable, type Subscription } from 'rxjs';

export interface PipelineScope<E> {
  /** Aborted when the subscriber leaves. */
  readonly signal: AbortSignal;
  /** Whether the subscriber has left (or the pipeline has ended). */
  readonly closed: boolean;
  next(event: E): void;
  /** Runs when the pipeline ends, however it ends, after the body; clean-ups run in reverse order. */
  defer(cleanup: () => void | Promise<void>): void;
  /**
   * Subscribes `flow`, handing each value to `next`; resolves when it completes, rejects with its
   * error. Unsubscription unsubscribes it.
   */
  drain<T>(flow: Observable<T>, next: (value: T) => void): Promise<void>;
  /** Calls `fn` every `seconds` until the pipeline ends or {@link stopTimers}. */
  every(seconds: number, fn: () => void): void;
  stopTimers(): void;
  /** Calls `fn` once when `signal` aborts (at once if it has), until the pipeline ends. */
  onAbort(signal: AbortSignal | undefined, fn: () => void): void;
}

/**
 * A cold Observable running `body` per subscription.
 *
 * @example
 *   pipeline<number>(async (scope) => { await scope.drain(interval(10).pipe(take(3)), (v) => scope.next(v)); });
 */
export function pipeline<E>(body: (scope: PipelineScope<E>) => Promise<void>): Observable<E> {
  return new Observable<E>((subscriber) => {
    const gone = new AbortController();
    const cleanups: (() => void | Promise<void>)[] = [];
    const flows = new Set<Subscription>();
    const timers = new Set<NodeJS.Timeout>();
    let ended = false;
    const stopTimers = () => {
      for (const t of timers) clearInterval(t);
      timers.clear();
    };
    const cleanUp = async (): Promise<unknown> => {
      stopTimers();
      for (const f of flows) f.unsubscribe();
      flows.clear();
      let first: unknown;
      for (const c of cleanups.splice(0).reverse()) {
        try {
          await c();
        } catch (e) {
          first ??= e;
        }
      }
      return first;
    };
    const scope: PipelineScope<E> = {
      signal: gone.signal,
      get closed() {
        return ended || subscriber.closed;
      },
      next: (event) => subscriber.next(event),
      defer: (cleanup) => void cleanups.push(cleanup),
      drain: (flow, next) =>
        new Promise<void>((resolve, reject) => {
          const s = flow.subscribe({ next, error: reject, complete: resolve });
          if (ended) s.unsubscribe();
          else flows.add(s);
        }),
      every: (seconds, fn) => {
        if (!ended) timers.add(setInterval(fn, seconds * 1000));
      },
      stopTimers,
      onAbort: (signal, fn) => {
        if (!signal) return;
        if (signal.aborted) {
          fn();
          return;
        }
        signal.addEventListener('abort', fn, { once: true });
        cleanups.push(() => signal.removeEventListener('abort', fn));
      },
    };
    body(scope).then(
      async () => {
        const failed = await cleanUp();
        ended = true;
        if (failed !== undefined) subscriber.error(failed);
        else subscriber.complete();
      },
      async (e: unknown) => {
        await cleanUp();
        ended = true;
        subscriber.error(e);
      },
    );
    return () => {
      ended = true;
      gone.abort();
      void cleanUp();
    };
  });
}
