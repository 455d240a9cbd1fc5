/**
 * `pooledBatches`, the operator the audit, its calibration and its stream share: empty, one, many,
 * error, never-ending with demand, early unsubscribe, stop.
 */
import { EMPTY, from, interval, lastValueFrom, NEVER, Observable, of, Subject, take, throwError, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { toObservable } from '../../src/data/index.js';
import { Errors } from '../../src/errors.js';
import { isWorkerCrash, pooledBatches, type PooledBatch } from '../../pipelines/index.js';

const collect = <T>(o: Observable<T>) => lastValueFrom(o.pipe(toArray()));
const sum = async (items: number[]) => items.reduce((a, b) => a + b, 0);

describe('pooledBatches', () => {
  it('emits nothing for an empty source, one short batch for one value, batches in order for many', async () => {
    expect(await collect(pooledBatches(EMPTY, { batch: 3, maxInFlight: 2, run: sum }))).toEqual([]);
    expect(await collect(pooledBatches(of(4), { batch: 3, maxInFlight: 2, run: sum }))).toEqual([{ index: 0, items: [4], result: 4 }]);
    // The first batch is the slowest: the results still come out in source order.
    const slow = async (items: number[], index: number) => {
      await new Promise((resolve) => setTimeout(resolve, index === 0 ? 30 : 1));
      return sum(items);
    };
    const out = await collect(pooledBatches(from([1, 2, 3, 4, 5, 6, 7]), { batch: 3, maxInFlight: 3, run: slow }));
    expect(out.map((b: PooledBatch<number, number>) => [b.index, b.result])).toEqual([
      [0, 6],
      [1, 15],
      [2, 7],
    ]);
  });

  it('passes a failing batch on as the error, and retries a crash it is told to', async () => {
    const boom = pooledBatches(of(1, 2), { batch: 1, maxInFlight: 1, run: async () => Promise.reject(new Error('boom')) });
    expect(((await collect(boom).catch((e: unknown) => e)) as Error).message).toBe('boom');
    expect(((await collect(pooledBatches(throwError(() => new Error('source')), { batch: 1, maxInFlight: 1, run: sum })).catch((e: unknown) => e)) as Error).message).toBe('source');
    let attempts = 0;
    const flaky = async (items: number[], _i: number, attempt: number) => {
      attempts++;
      if (attempt === 0) throw Errors.workerFailed('died', { crashed: true });
      return sum(items);
    };
    const out = await collect(pooledBatches(of(1, 2), { batch: 2, maxInFlight: 1, run: flaky, retries: 1, retryable: isWorkerCrash }));
    expect(out.map((b) => b.result)).toEqual([3]);
    expect(attempts).toBe(2);
  });

  it('pulls a never-ending source only as far as demand allows, and aborts the batches in flight on unsubscribe', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<number> {
      for (let i = 0; ; i++) {
        pulled++;
        yield i;
      }
    }
    const signals: AbortSignal[] = [];
    const demand$ = new Subject<number>();
    const run = (items: number[], index: number, _a: number, signal: AbortSignal) => {
      signals.push(signal);
      // Batch 3 never finishes: the output waits for it, the others run ahead of it.
      return index === 3 ? new Promise<number>(() => {}) : sum(items);
    };
    const seen: number[] = [];
    const sub = pooledBatches(toObservable(endless(), { demand$ }), { batch: 4, maxInFlight: 2, demand: demand$, run }).subscribe((b) => seen.push(b.index));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toEqual([0, 1, 2]);
    // At most maxInFlight running and 2·maxInFlight opened beyond the last emitted.
    expect(pulled).toBeLessThanOrEqual((3 + 2 * 2 + 1) * 4);
    sub.unsubscribe();
    expect(signals[3]!.aborted).toBe(true);
  });

  it('on until$, stops reading but still runs the records already read', async () => {
    const stop = new Subject<void>();
    const source = new Subject<number>();
    const out: PooledBatch<number, number>[] = [];
    const done = new Promise<void>((resolve) => pooledBatches(source, { batch: 3, maxInFlight: 1, run: sum, until$: stop }).subscribe({ next: (b) => out.push(b), complete: resolve }));
    source.next(1);
    source.next(2);
    source.next(3);
    source.next(4);
    stop.next();
    await done;
    expect(out.map((b) => b.items)).toEqual([[1, 2, 3], [4]]);
    expect(source.observed).toBe(false);
  });

  it('completes on take(n) over a never-ending push source, and stays open on one that never emits', async () => {
    const values = await collect(pooledBatches(interval(1), { batch: 2, maxInFlight: 2, run: sum }).pipe(take(3)));
    expect(values.map((b) => b.items)).toEqual([[0, 1], [2, 3], [4, 5]]);
    let closed = false;
    const sub = pooledBatches(NEVER, { batch: 1, maxInFlight: 1, run: sum }).subscribe({ complete: () => (closed = true) });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(closed).toBe(false);
    sub.unsubscribe();
  });
});
