/**
 * The service under hostile clients, each attack reproduced on loopback against a stand-in auditor:
 * slow bodies and headers, deep JSON, more pixels than a request may decode, a PNG with a second
 * header, and a shutdown that must not wait forever.
 */
import net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRecord } from '../../src/data/index.js';
import { createAuditServer, type AuditServer, type AuditServerOptions } from '../../pipelines/index.js';
import { twoHeaderPng } from '../data/hostile-png.js';
import { mnistRecords } from './audit-helpers.js';
import { body, post, standIn } from './serve-helpers.js';

let records: ImageRecord[];
beforeAll(async () => {
  records = await mnistRecords((p) => p % 2 === 1, 4);
});

let service: AuditServer | undefined;
afterEach(async () => {
  // Bounded here too, so that a server without a shutdown deadline fails the test instead of hanging it.
  const closing = service?.close(1000);
  await Promise.race([closing, new Promise((r) => setTimeout(r, 3000))]);
  service?.server.closeAllConnections();
  service = undefined;
});

async function start(options: Omit<AuditServerOptions, 'auditor'>, stand = standIn()) {
  service = createAuditServer({ auditor: stand.auditor, ...options });
  const { url, port } = await service.listen(0);
  return { url, port, stand };
}

/**
 * A client that sends its headers and then one body byte every `everyMs`, never finishing; resolves
 * with what the server answered when the connection closes (it gives up itself after `giveUpMs`).
 */
function slowClient(port: number, everyMs: number, giveUpMs = 5000): Promise<{ answer: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    setTimeout(() => socket.destroy(), giveUpMs).unref();
    let answer = '';
    const drip = setInterval(() => socket.write(' '), everyMs);
    socket.on('connect', () => socket.write('POST /v1/audit HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{'));
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(drip);
      resolve({ answer, ms: performance.now() - t0 });
    });
  });
}

describe('the service against hostile clients', () => {
  it('reads bodies before taking a queue slot, and cuts slow ones off at the body deadline', async () => {
    const { url, port } = await start({ queue: 1, bodyTimeoutMs: 600 });
    const slow = [slowClient(port, 100), slowClient(port, 100), slowClient(port, 100)];
    await new Promise((r) => setTimeout(r, 200));
    // Three clients dripping their bodies hold no slot: a normal request still gets its answer.
    expect((await post(url, body(records.slice(0, 1)))).status).toBe(200);
    for (const s of await Promise.all(slow)) {
      expect(s.answer).toMatch(/^HTTP\/1\.1 408/);
      expect(s.answer).toMatch(/BODY_TIMEOUT/);
      expect(s.ms).toBeLessThan(5000);
    }
  });

  it('closes a connection whose headers do not arrive in time', async () => {
    const { port } = await start({ headersTimeoutMs: 300 });
    const t0 = performance.now();
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('POST /v1/audit HTTP/1.1\r\nhost: x\r\n'));
      setTimeout(() => socket.destroy(), 5000).unref();
      let got = '';
      socket.on('data', (d) => (got += d.toString()));
      socket.on('error', () => {});
      socket.on('close', () => resolve(got));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('answers deeply nested JSON with 400, not 500', async () => {
    const { url } = await start({});
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const text = `{"records":[{"id":"deep","pixels":${JSON.stringify(Array.from(records[0]!.pixels))},"extra":${deep}}]}`;
    const r = await post(url, text);
    expect(r.status).toBe(400);
    expect(r.json.error).toEqual({ code: 'BAD_JSON', message: 'the body nests deeper than 32 levels' });
  });

  it('refuses a request whose records decode to more pixels than its budget, before decoding', async () => {
    const { url, stand } = await start({ maxPixels: 2 * 784 });
    const r = await post(url, body(records.slice(0, 3), ['p1', 'p2', 'p3']));
    expect(r.status).toBe(413);
    expect(r.json.error).toEqual({ code: 'TOO_MANY_PIXELS', message: 'the records decode to 2352 pixel values; a request may have 1568' });
    expect(stand.seen).not.toContain('p1');
    expect((await post(url, body(records.slice(0, 2)))).status).toBe(200);
  });

  it('refuses a PNG of another size than the models take from its header, and one with a second header', async () => {
    const { url } = await start({});
    const big = await post(url, JSON.stringify({ records: [{ id: 'wide', png: twoHeaderPng([3000, 3000]).toString('base64') }] }));
    expect(big.status).toBe(400);
    expect((big.json.error as { message: string }).message).toBe("records[0] (id wide): shape 3000x3000x1 differs from the source's shape 28x28x1");
    const sneaky = await post(url, JSON.stringify({ records: [{ id: 'two', png: twoHeaderPng([28, 28], [2000, 2000]).toString('base64') }] }));
    expect(sneaky.status).toBe(400);
    expect((sneaky.json.error as { message: string }).message).toMatch(/^records\[0\] \(id two\): png does not decode: a second IHDR chunk/);
  });

  it('shuts down within its deadline, answering the requests it gave up on with 503', async () => {
    const { url, stand } = await start({});
    const release = stand.hold();
    const held = post(url, body(records.slice(0, 1), ['held']));
    while (!stand.seen.includes('held')) await new Promise((r) => setTimeout(r, 5));
    const t0 = performance.now();
    const closed = await Promise.race([service!.close(300).then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 3000))]);
    release();
    expect(closed).toBe('closed');
    expect(performance.now() - t0).toBeLessThan(3000);
    const answer = await held;
    expect(answer.status).toBe(503);
    expect(answer.json.error).toMatchObject({ code: 'SHUTTING_DOWN' });
  });
});
