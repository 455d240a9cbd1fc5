/**
 * The HTTP source and the webhook sink, against msw (main thread only: msw cannot see inside worker
 * threads, and neither needs to: workers never do I/O).
 */
import { delay, http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { filter, take, toArray, lastValueFrom } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSource, type ImageRecord } from '../../src/data/index.js';
import { isAdvstreamError, type AdvstreamError } from '../../src/errors.js';
import { evaluate, webhookSink, type EvalEvent, type FinalEvent } from '../../pipelines/index.js';
import { allEvents, finalOf, testModels } from './helpers.js';

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const BASE = 'https://data.example.test';

/** MNIST test images as NDJSON lines: bytes with scale 255, as a client would post them. */
async function mnistLines(count: number): Promise<string[]> {
  const lines: string[] = [];
  for await (const r of openSource('mnist:test', { limit: count })) {
    lines.push(JSON.stringify({ id: `img-${lines.length}`, label: r.label, scale: 255, pixels: Array.from(r.pixels, (p) => Math.round(p * 255)) }));
  }
  return lines;
}

/** A streamed body: each line is produced only when the client reads that far. */
function streamed(lines: () => Iterator<string>, produced: { n: number }): ReadableStream<Uint8Array> {
  const it = lines();
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const next = it.next();
        if (next.done) controller.close();
        else {
          produced.n++;
          controller.enqueue(encoder.encode(`${next.value}\n`));
        }
      },
    },
    { highWaterMark: 0 },
  );
}

async function read(uri: string, options: Parameters<typeof openSource>[1] = {}): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  for await (const r of openSource(uri, options)) out.push(r);
  return out;
}

async function failure(p: Promise<unknown>): Promise<AdvstreamError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!isAdvstreamError(e)) throw new Error(`expected an advstream error, got ${String(e)}`);
  return e;
}

describe('http(s) source', () => {
  it('streams NDJSON records from a URL', async () => {
    const lines = ['{"id":"a","label":1,"pixels":[0,0.5,1,0.25],"shape":[2,2,1]}', '', '{"id":7,"pixels":[1,1,1,1],"shape":[2,2,1]}'];
    server.use(http.get(`${BASE}/small.ndjson`, () => new HttpResponse(lines.join('\n'), { headers: { 'content-type': 'application/x-ndjson' } })));
    const records = await read(`${BASE}/small.ndjson`);
    expect(records.map((r) => [r.id, r.label, Array.from(r.pixels)])).toEqual([
      ['a', 1, [0, 0.5, 1, 0.25]],
      ['7', undefined, [1, 1, 1, 1]],
    ]);
  });

  it('places bad records at the URL and line, and skips them under skip', async () => {
    server.use(http.get(`${BASE}/bad.ndjson`, () => new HttpResponse('{"id":"a","pixels":[0,0,0,0],"shape":[2,2,1]}\nnot json\n')));
    const e = await failure(read(`${BASE}/bad.ndjson`));
    expect(e.code).toBe('BAD_RECORD');
    expect(e.details).toMatchObject({ file: `${BASE}/bad.ndjson`, line: 2 });
    const rejects: unknown[] = [];
    const kept = await read(`${BASE}/bad.ndjson`, { onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } });
    expect(kept.map((r) => r.id)).toEqual(['a']);
    expect(rejects).toMatchObject([{ file: `${BASE}/bad.ndjson`, line: 2, code: 'BAD_RECORD' }]);
  });

  it('fails with BAD_SOURCE on an HTTP error or a refused connection', async () => {
    server.use(
      http.get(`${BASE}/missing.ndjson`, () => new HttpResponse('no', { status: 404, statusText: 'Not Found' })),
      http.get(`${BASE}/down.ndjson`, () => HttpResponse.error()),
    );
    const missing = await failure(read(`${BASE}/missing.ndjson`));
    expect(missing.code).toBe('BAD_SOURCE');
    expect(missing.message).toContain('HTTP 404');
    expect((await failure(read(`${BASE}/down.ndjson`))).code).toBe('BAD_SOURCE');
    expect((await failure(read('https://'))).code).toBe('BAD_SPEC');
  });

  it('reads the body only as far as records are pulled', async () => {
    const produced = { n: 0 };
    function* endless() {
      for (let i = 0; ; i++) yield JSON.stringify({ id: `r${i}`, label: i % 10, pixels: [0, 0, 0, 0], shape: [2, 2, 1] });
    }
    server.use(http.get(`${BASE}/endless.ndjson`, () => new HttpResponse(streamed(endless, produced))));
    const five = await lastValueFrom(openSource(`${BASE}/endless.ndjson`).toObservable().pipe(take(5), toArray()));
    expect(five.map((r) => r.id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    // Byte-level read-ahead only: a few 64 KiB chunks' worth of lines at most, not the endless body.
    expect(produced.n).toBeLessThan(5000);
  });
});

describe('webhook sink', () => {
  it('POSTs every body in order; a failure is counted and reported, never thrown', async () => {
    const got: unknown[] = [];
    let calls = 0;
    server.use(
      http.post(`${BASE}/hook`, async ({ request }) => {
        calls++;
        if (calls === 2) return new HttpResponse('busy', { status: 503, statusText: 'Service Unavailable' });
        got.push(await request.json());
        return new HttpResponse(null, { status: 204 });
      }),
    );
    const failures: string[] = [];
    const hook = webhookSink(`${BASE}/hook`, { onFailure: (m) => failures.push(m) });
    hook.post({ type: 'stats', n: 1 });
    hook.post({ type: 'stats', n: 2 });
    hook.post({ type: 'final', n: 3 });
    const report = await hook.drain();
    expect(got).toEqual([{ type: 'stats', n: 1 }, { type: 'final', n: 3 }]);
    expect(report).toMatchObject({ posted: 2, failed: 1 });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain('503');
  });

  it('replaces a waiting stats body with a newer one when the endpoint is slow, never the final', async () => {
    const got: { n: number }[] = [];
    server.use(
      http.post(`${BASE}/slow`, async ({ request }) => {
        await delay(100);
        got.push((await request.json()) as { n: number });
        return HttpResponse.json({});
      }),
    );
    const hook = webhookSink(`${BASE}/slow`);
    for (let n = 1; n <= 5; n++) hook.post({ n }, true);
    hook.post({ n: 6 });
    hook.post({ n: 7 }, true);
    const report = await hook.drain();
    expect(got.map((b) => b.n)).toEqual([1, 5, 6, 7]);
    expect(report).toMatchObject({ posted: 4, failed: 0, coalesced: 3 });
  });

  it('times out a hanging endpoint', async () => {
    server.use(http.post(`${BASE}/hang`, async () => {
      await delay('infinite');
      return HttpResponse.json({});
    }));
    const failures: string[] = [];
    const hook = webhookSink(`${BASE}/hang`, { timeoutMs: 100, onFailure: (m) => failures.push(m) });
    hook.post({ type: 'final' });
    expect(await hook.drain()).toMatchObject({ posted: 0, failed: 1 });
    expect(failures).toHaveLength(1);
  });

  it('rejects a URL that is not http(s)', () => {
    expect(() => webhookSink('ftp://x')).toThrowError(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });
});

describe('evaluate over HTTP, reporting to a webhook', () => {
  it('gives the statistics of the same images read from disk, and posts each stats line and the final', async () => {
    const models = await testModels();
    const lines = await mnistLines(32);
    const posted: EvalEvent[] = [];
    server.use(
      http.get(`${BASE}/mnist.ndjson`, () => new HttpResponse(lines.join('\n'))),
      http.post(`${BASE}/hook`, async ({ request }) => {
        posted.push((await request.json()) as EvalEvent);
        return HttpResponse.json({ ok: true });
      }),
    );
    const options = { models, attacks: ['fgsm:eps=0.1'], workers: 1, batch: 8, backend: 'wasm', statsEvery: { batches: 2 } } as const;
    const hook = webhookSink(`${BASE}/hook`);
    const overHttp = await allEvents(
      evaluate({ uri: `${BASE}/mnist.ndjson` }, options).pipe(
        filter((e) => {
          if (e.type === 'stats' || e.type === 'final') hook.post(e, e.type === 'stats');
          return true;
        }),
      ),
    );
    await hook.drain();
    const fromDisk = finalOf(await allEvents(evaluate({ uri: 'mnist:test', limit: 32 }, options)));
    const a = finalOf(overHttp);
    const pick = (e: FinalEvent) => ({ images: e.images, models: e.models, transfer: e.transfer });
    expect(a.images).toBe(32);
    expect(pick(a)).toEqual(pick(fromDisk));
    expect(posted.map((e) => e.type)).toEqual(['stats', 'stats', 'final']);
    expect((posted[2] as FinalEvent).images).toBe(32);
  });
});
