/**
 * The audit service: its limits (413, 400, 401, 503 with Retry-After) checked on a stand-in auditor
 * whose speed the test controls, then concurrent clients on loopback through a real auditor and pool.
 */
import http from 'node:http';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRecord } from '../../src/data/index.js';
import { openAuditPool } from '../../pipelines/audit-pool.js';
import { auditorOnPool } from '../../pipelines/auditor.js';
import { createAuditServer, openAuditor, type Auditor, type AuditServer, type AuditVerdict } from '../../pipelines/index.js';
import { auditDetectors, auditModels, mnistRecords } from './audit-helpers.js';
import { body, post, standIn } from './serve-helpers.js';
import { scratchDir } from './helpers.js';

let records: ImageRecord[];

beforeAll(async () => {
  records = await mnistRecords((p) => p % 2 === 1, 8);
});

describe('the service limits', () => {
  let service: AuditServer;
  let url: string;
  let stand: ReturnType<typeof standIn>;

  beforeAll(async () => {
    stand = standIn();
    service = createAuditServer({ auditor: stand.auditor, token: 'sesame', maxBody: 32 * 1024, queue: 1, retryAfter: 3 });
    ({ url } = await service.listen(0));
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
  afterAll(() => service.close());
  const auth = { authorization: 'Bearer sesame' };

  it('answers a good request with verdicts in the records\' order', async () => {
    const r = await post(url, body(records.slice(0, 3), ['a', 'x1', 'b']), auth);
    expect(r.status).toBe(200);
    expect((r.json.verdicts as AuditVerdict[]).map((v) => [v.id, v.flagged])).toEqual([
      ['a', false],
      ['x1', true],
      ['b', false],
    ]);
  });

  it('refuses a missing or wrong token with 401, and needs none for /healthz', async () => {
    const missing = await post(url, body(records.slice(0, 1)));
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    expect((missing.json.error as { code: string }).code).toBe('UNAUTHORIZED');
    expect((await post(url, body(records.slice(0, 1)), { authorization: 'Bearer open-sesame' })).status).toBe(401);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', queue: { depth: 0, capacity: 1 } });
  });

  it('refuses a body over the limit with 413, declared or streamed', async () => {
    const big = await post(url, body([...records, ...records, ...records]), auth);
    expect(body([...records, ...records, ...records]).length).toBeGreaterThan(32 * 1024);
    expect(big.status).toBe(413);
    expect((big.json.error as { code: string }).code).toBe('BODY_TOO_LARGE');
    // Chunked, with no Content-Length: cut off as it streams in.
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${url}/v1/audit`, { method: 'POST', headers: { ...auth, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      const chunk = ' '.repeat(4096);
      let sent = 0;
      const more = () => {
        while (sent < 64 && !req.destroyed) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', more);
        }
        req.end();
      };
      more();
    });
    expect(status).toBe(413);
  });

  it('refuses malformed JSON and malformed records with 400 and the reason', async () => {
    const notJson = await post(url, '{"records": [', auth);
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatchObject({ code: 'BAD_JSON' });
    expect((await post(url, '{"images": []}', auth)).json.error).toMatchObject({ code: 'BAD_REQUEST' });
    const records2 = JSON.parse(body(records.slice(0, 2), ['ok', 'bright'])) as { records: { pixels: number[] }[] };
    records2.records[1]!.pixels[5] = 2;
    const badPixel = await post(url, JSON.stringify(records2), auth);
    expect(badPixel.status).toBe(400);
    expect(badPixel.json.error).toEqual({ code: 'BAD_RECORD', message: 'records[1] (id bright): pixel 5 is 2, outside [0, 1]' });
    // The same validation as an ndjson: line: id required, exactly one of pixels and png, a shape for odd sizes.
    const cases: [unknown, RegExp][] = [
      [{ pixels: [0] }, /records\[0\]: id is required/],
      [{ id: 'both', pixels: [0], png: 'AAAA' }, /exactly one of pixels and png/],
      [{ id: 'short', pixels: [0, 1, 0] }, /no shape given, and 3 pixels are not 784/],
      [{ id: 'small', pixels: [0, 1, 0, 1], shape: [2, 2, 1] }, /shape 2x2x1 differs/],
      [7, /not a JSON object/],
    ];
    for (const [record, reason] of cases) {
      const r = await post(url, JSON.stringify({ records: [record] }), auth);
      expect(r.status).toBe(400);
      expect((r.json.error as { message: string }).message).toMatch(reason);
    }
    expect(stand.seen).not.toContain('ok');
  });

  it('answers 503 with Retry-After when the queue is full, and serves again once it drains', async () => {
    const release = stand.hold();
    const first = post(url, body(records.slice(0, 1), ['held']), auth);
    while (!stand.seen.includes('held')) await new Promise((resolve) => setTimeout(resolve, 5));
    const full = await post(url, body(records.slice(0, 1), ['turned-away']), auth);
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('3');
    expect(full.json.error).toMatchObject({ code: 'QUEUE_FULL' });
    expect(stand.seen).not.toContain('turned-away');
    release();
    expect((await first).status).toBe(200);
    expect((await post(url, body(records.slice(0, 1), ['later']), auth)).status).toBe(200);
  });

  it('routes nothing else, and counts every answer in /metrics', async () => {
    expect((await fetch(`${url}/v2/audit`)).status).toBe(404);
    const wrongMethod = await fetch(`${url}/v1/audit`, { headers: auth });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    const res = await fetch(`${url}/metrics`, { headers: auth });
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const status of [200, 400, 401, 413, 503]) expect(text).toMatch(new RegExp(`advstream_http_requests_total\\{path="/v1/audit",status="${status}"\\} \\d+`));
    expect(text).toMatch(/advstream_http_requests_total\{path="other",status="404"\} 1/);
    expect(text).toMatch(/advstream_records_audited_total 5/);
    expect(text).toMatch(/advstream_flags_total\{detector="feature-squeezing"\} 1/);
    expect(text).toMatch(/advstream_queue_depth 0/);
    expect(text).toMatch(/advstream_queue_capacity 1/);
    expect(text).toMatch(/advstream_request_duration_seconds\{quantile="0.5"\} [\d.e-]+/);
    expect(text).toMatch(/advstream_request_duration_seconds_count 3/);
  });
});

describe('concurrent clients through a real pool', () => {
  let dir: string;
  let auditor: Auditor;

  beforeAll(async () => {
    dir = await scratchDir('serve');
    const m = await auditModels();
    auditor = await openAuditor({ detectors: auditDetectors(m), workers: 2, fpr: 0.05, calibration: path.join(dir, 'calibration.json'), calibrationLimit: 200, batch: 4 });
  });
  afterAll(async () => {
    await auditor?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 20 parallel requests, each with its own records, losing none', async () => {
    const service = createAuditServer({ auditor });
    const { url } = await service.listen(0);
    try {
      const replies = await Promise.all(
        Array.from({ length: 20 }, async (_, k) => {
          const ids = [`c${k}-0`, `c${k}-1`, `c${k}-2`];
          const r = await post(url, body([records[k % 8]!, records[(k + 1) % 8]!, records[(k + 2) % 8]!], ids));
          return { ids, status: r.status, got: (r.json.verdicts as AuditVerdict[]).map((v) => v.id) };
        }),
      );
      for (const r of replies) {
        expect(r.status).toBe(200);
        expect(r.got).toEqual(r.ids);
      }
      expect(service.metrics()).toMatch(/advstream_records_audited_total 60/);
    } finally {
      await service.close();
    }
  });
  it('keeps an abandoned request\'s work bounded: waiting batches never reach the pool, and the call settles only when the running ones have stopped (B5)', async () => {
    const pool = await openAuditPool({ detectors: auditDetectors(await auditModels()), workers: 1 });
    let sent = 0;
    let running = 0;
    let most = 0;
    const run = pool.runner.run.bind(pool.runner);
    pool.runner = {
      ...pool.runner,
      run: (task, signal) => {
        sent++;
        most = Math.max(most, ++running);
        return run(task, signal).finally(() => running--);
      },
    };
    try {
      const counted = await auditorOnPool(pool, { calibration: auditor.calibration, batch: 2, maxInFlight: 2 });
      const many = Array.from({ length: 40 }, (_, i) => ({ ...records[i % 8]!, id: `r${i}` }));
      const client = new AbortController();
      const call = counted.audit(many, client.signal);
      while (sent === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      client.abort(new Error('the client went away'));
      await expect(call).rejects.toThrow('the client went away');
      // Settled only once nothing of it runs; of its 20 batches only the ones admitted before the abort were sent.
      expect(running).toBe(0);
      expect(sent).toBeLessThanOrEqual(2);
      // Many requests at once put at most maxInFlight batches in the pool.
      await Promise.all(Array.from({ length: 4 }, () => counted.audit(many.slice(0, 8))));
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      await pool.close();
    }
  });
});
