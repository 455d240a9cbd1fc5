import type { Observable } from 'rxjs';

export interface DrainOptions {
  /** Aborted on the first SIGINT/SIGTERM: the run stops reading and finishes what is in flight. */
  stop: AbortController;
  /** What the first signal is said to do, e.g. `finishing the batches in flight`. */
  stopping: string;
  /** What a second signal leaves unwritten, e.g. `no final line`. */
  lost: string;
}

/**
 * Runs an event stream to its end under the CLI's signal rules: the first SIGINT or SIGTERM asks
 * the run to stop gracefully (through `stop`), a second one unsubscribes at once. Resolves with the
 * first signal received, if any, so that the command can exit 130 or 143.
 */
export async function drainWithSignals<T>(events: Observable<T>, handle: (e: T) => void, o: DrainOptions): Promise<NodeJS.Signals | undefined> {
  let interrupted: NodeJS.Signals | undefined;
  let hardStop: () => void = () => {};
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = signal;
    o.stop.abort();
    process.stderr.write(`\nadvstream: ${signal}: stopping; ${o.stopping} (signal again to abort)\n`);
    process.once('SIGINT', hardStop);
    process.once('SIGTERM', hardStop);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await new Promise<void>((resolve, reject) => {
      const subscription = events.subscribe({
        next: (e) => {
          try {
            handle(e);
          } catch (err) {
            subscription.unsubscribe();
            reject(err);
          }
        },
        error: reject,
        complete: resolve,
      });
      hardStop = () => {
        subscription.unsubscribe();
        process.stderr.write(`advstream: aborted; ${o.lost}\n`);
        resolve();
      };
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', hardStop);
    process.off('SIGTERM', hardStop);
  }
  return interrupted;
}
