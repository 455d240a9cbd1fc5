/**
 * Record admission: the one operator that decides which records a pipeline uses. It asks
 * `checkRecord` (shape, pixel count, pixels in [0, 1], label) and the pipeline's own rule (an
 * evaluation needs a label the models have), writes each rejected record to the reject sink, and
 * applies the policy: `fail` errors the flow with BAD_RECORD, `skip` drops the record and asks the
 * source for one in its place. A reject sink that fails errors the flow too, so the pipeline's
 * error path (the checkpoint of the committed prefix, closing the pool) runs as for any failure.
 */
import { Observable, type OperatorFunction } from 'rxjs';
import { checkRecord, type ImageRecord, type OnBadRecord, type RejectSink, type Shape } from '../src/data/index.js';
import { Errors } from '../src/errors.js';

export interface AdmitOptions {
  /** The source's name in errors and rejects. */
  file: string;
  /** The input shape every record must have. */
  shape: Shape;
  policy: OnBadRecord;
  /** A pipeline's own reason to refuse a record that `checkRecord` accepts. */
  refuse?: (record: ImageRecord) => string | undefined;
  rejects?: RejectSink;
  /** Told of each record dropped under `skip` (ask the source for another here). */
  onSkip?: (record: ImageRecord) => void;
}

/** Why `record` is not admitted, or `undefined` when it is. */
export function admissionFailure(record: ImageRecord, options: Pick<AdmitOptions, 'shape' | 'refuse'>): string | undefined {
  return checkRecord(record, options.shape) ?? options.refuse?.(record);
}

/**
 * Passes the admitted items on, in order; `recordOf` finds an item's record (an item may carry
 * its source position beside it).
 *
 * @example
 *   records$.pipe(admitRecords({ file: uri, shape: [28, 28, 1], policy: 'skip', onSkip: () => demand$.next(1) }, (r) => r));
 */
export function admitRecords<T>(options: AdmitOptions, recordOf: (item: T) => ImageRecord): OperatorFunction<T, T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      // Set once a record fails under `fail`: nothing more passes while its reject is written.
      let failing = false;
      const fail = (e: unknown) => {
        if (!subscriber.closed) subscriber.error(e);
      };
      // Reject writes still pending: the output completes only once they are written.
      const writing = new Set<Promise<void>>();
      return source.subscribe({
        next: (item) => {
          if (failing || subscriber.closed) return;
          const record = recordOf(item);
          const why = admissionFailure(record, options);
          if (why === undefined) {
            subscriber.next(item);
            return;
          }
          const id = typeof record?.id === 'string' ? record.id : undefined;
          const where = { file: options.file, ...(id !== undefined ? { id } : {}) };
          const error = Errors.badRecord(where, why);
          const written = options.rejects ? Promise.resolve(options.rejects.write({ ...where, code: error.code, reason: why })) : undefined;
          if (options.policy === 'fail') {
            failing = true;
            // The reject is on disk before the flow fails with it.
            if (written) written.then(() => fail(error), fail);
            else fail(error);
            return;
          }
          if (written) {
            writing.add(written);
            written.then(() => writing.delete(written), fail);
          }
          options.onSkip?.(record);
        },
        error: fail,
        complete: () => {
          if (failing) return;
          if (writing.size === 0) subscriber.complete();
          else Promise.all(writing).then(() => subscriber.complete(), fail);
        },
      });
    });
}
