import { EMPTY, firstValueFrom, from, lastValueFrom, NEVER, of, Subject, take, throwError, toArray, type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { AdvstreamError, Errors, isAdvstreamError } from '../../src/errors.js';
import { batchRecords, inIndexOrder, runTasks } from '../../pipelines/index.js';

const collect = <T>(o: Observable<T>) => lastValueFrom(o.pipe(toArray()));
const failure = (o: Observable<unknown>) => lastValueFrom(o).then(
  () => undefined,
  (e: unknown) => e,
);

describe('batchRecords', () => {
  it('emits nothing for an empty source', async () => {
    expect(await collect(EMPTY.pipe(batchRecords(3)))).toEqual([]);
  });

  it('emits a short last group for one value, and exact groups for many', async () => {
    expect(await collect(of(1).pipe(batchRecords(3)))).toEqual([[1]]);
    expect(await collect(from([1, 2, 3, 4, 5, 6, 7]).pipe(batchRecords(3)))).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('passes an error on and drops the partial group', async () => {
    const seen: number[][] = [];
    const source = new Subject<number>();
    const done = new Promise((resolve) => source.pipe(batchRecords(2)).subscribe({ next: (g) => seen.push(g), error: resolve }));
    source.next(1);
    source.next(2);
    source.next(3);
    source.error(new Error('boom'));
    expect(((await done) as Error).message).toBe('boom');
    expect(seen).toEqual([[1, 2]]);
  });

  it('drops the partial group and unsubscribes the source when until$ emits', async () => {
    const stop = new Subject<void>();
    const source = new Subject<number>();
    const seen: number[][] = [];
    let completed = false;
    source.pipe(batchRecords(2, { until$: stop })).subscribe({ next: (g) => seen.push(g), complete: () => (completed = true) });
    source.next(1);
    source.next(2);
    source.next(3);
    stop.next();
    expect(seen).toEqual([[1, 2]]);
    expect(completed).toBe(true);
    expect(source.observed).toBe(false);
  });

  it('honours an until$ that fired before subscription (a replayed stop)', async () => {
    expect(await collect(NEVER.pipe(batchRecords(2, { until$: of(undefined) })))).toEqual([]);
  });

  it('unsubscribes its source when its subscriber leaves early', () => {
    const source = new Subject<number>();
    const sub = source.pipe(batchRecords(2)).subscribe();
    expect(source.observed).toBe(true);
    sub.unsubscribe();
    expect(source.observed).toBe(false);
  });

  it('refuses a batch size that is not a positive integer', () => {
    expect(() => batchRecords(0)).toThrowError(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });
});

const crash = () => Errors.workerFailed('worker exited', { crashed: true });
const retryable = (e: unknown) => isAdvstreamError(e) && e.details.crashed === true;

describe('runTasks', () => {
  const double = (t: number) => Promise.resolve(t * 2);

  it('emits nothing for no tasks, one result for one, every result for many', async () => {
    const opts = { concurrency: 2, retries: 0, retryable };
    expect(await collect(EMPTY.pipe(runTasks(double, opts)))).toEqual([]);
    expect(await collect(of(4).pipe(runTasks(double, opts)))).toEqual([8]);
    expect((await collect(from([1, 2, 3, 4, 5]).pipe(runTasks(double, opts)))).sort()).toEqual([10, 2, 4, 6, 8]);
  });

  it('runs at most `concurrency` tasks at once', async () => {
    let running = 0;
    let peak = 0;
    const slow = async (t: number) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return t;
    };
    await collect(from([1, 2, 3, 4, 5, 6, 7]).pipe(runTasks(slow, { concurrency: 3, retries: 0, retryable })));
    expect(peak).toBe(3);
  });

  it('retries a retryable failure, up to `retries` times, then fails as WORKER_FAILED', async () => {
    const attempts: number[] = [];
    const flaky = async (t: number, attempt: number) => {
      attempts.push(attempt);
      if (attempt < 2) throw crash();
      return t;
    };
    expect(await collect(of(7).pipe(runTasks(flaky, { concurrency: 1, retries: 2, retryable })))).toEqual([7]);
    expect(attempts).toEqual([0, 1, 2]);
    const retries: number[] = [];
    const e = await failure(
      of(7).pipe(runTasks(flaky, { concurrency: 1, retries: 1, retryable, onRetry: (_t, n) => retries.push(n), describe: (t) => `task ${t}` })),
    );
    expect(e).toBeInstanceOf(AdvstreamError);
    expect((e as AdvstreamError).code).toBe('WORKER_FAILED');
    expect((e as AdvstreamError).message).toContain('task 7 failed on 2 workers');
    expect(retries).toEqual([1]);
  });

  it('fails at once, without retrying, on a task error', async () => {
    let calls = 0;
    const bad = async () => {
      calls++;
      throw Errors.badArgument('bad task');
    };
    const e = await failure(of(1).pipe(runTasks(bad, { concurrency: 1, retries: 5, retryable })));
    expect((e as AdvstreamError).code).toBe('BAD_ARGUMENT');
    expect(calls).toBe(1);
  });

  it('passes an upstream error on', async () => {
    const e = await failure(throwError(() => new Error('upstream')).pipe(runTasks(double, { concurrency: 1, retries: 0, retryable })));
    expect((e as Error).message).toBe('upstream');
  });

  it('aborts running tasks through their signal on early unsubscribe', async () => {
    const signals: AbortSignal[] = [];
    const aborted: number[] = [];
    const hang = (t: number, _attempt: number, signal: AbortSignal) =>
      new Promise<number>((_resolve, reject) => {
        signals.push(signal);
        signal.addEventListener('abort', () => reject(signal.reason));
        void t;
      });
    const sub = from([1, 2, 3]).pipe(runTasks(hang, { concurrency: 2, retries: 3, retryable, onAbort: (t) => aborted.push(t) })).subscribe();
    expect(signals).toHaveLength(2);
    sub.unsubscribe();
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(aborted).toEqual([1, 2]);
  });

  it('keeps taking tasks from a never-ending source while it is subscribed', async () => {
    const first = await firstValueFrom(
      from((function* () {
        for (let i = 0; ; i++) yield i;
      })()).pipe(take(1000), runTasks(double, { concurrency: 4, retries: 0, retryable }), take(3), toArray()),
    );
    expect(first).toHaveLength(3);
  });
});

describe('inIndexOrder', () => {
  it('emits nothing for nothing, and one value in place', async () => {
    expect(await collect(EMPTY.pipe(inIndexOrder((v: number) => v)))).toEqual([]);
    expect(await collect(of(0).pipe(inIndexOrder((v: number) => v)))).toEqual([0]);
  });

  it('reorders many values by index, holding early ones', async () => {
    expect(await collect(from([2, 0, 3, 1, 4]).pipe(inIndexOrder((v: number) => v)))).toEqual([0, 1, 2, 3, 4]);
    expect(await collect(from([6, 5]).pipe(inIndexOrder((v: number) => v, 5)))).toEqual([5, 6]);
  });

  it('fails when an index is missing at completion, or arrives twice', async () => {
    expect(String(await failure(from([0, 2]).pipe(inIndexOrder((v: number) => v))))).toContain('index 1 never arrived');
    expect(String(await failure(from([0, 0]).pipe(inIndexOrder((v: number) => v))))).toContain('arrived twice');
  });

  it('passes an error on, and unsubscribes upstream when left early', async () => {
    expect(String(await failure(throwError(() => new Error('up')).pipe(inIndexOrder((v: number) => v))))).toContain('up');
    const source = new Subject<number>();
    const sub = source.pipe(inIndexOrder((v) => v)).subscribe();
    sub.unsubscribe();
    expect(source.observed).toBe(false);
  });
});
