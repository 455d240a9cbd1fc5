/**
 * The audit as an HTTP service, on `node:http` (three routes need no framework):
 *
 * - `POST /v1/audit` `{"records":[{id, label?, pixels | png, shape?, scale?}, …]}` → `{"verdicts":[…]}`,
 *   in the records' order. Each record is read exactly as an `ndjson:` line is (the data room's own
 *   parser and validation), so a record the CLI accepts the service accepts, and the reasons match.
 * - `GET /healthz` → `{"status":"ok", …}` (no token needed: probes have none).
 * - `GET /metrics` → Prometheus text: requests by path and status, records audited, flags by
 *   detector, queue depth, request latency, and with `alarms` set, alarms by group.
 * - `GET /v1/alarms` (with `alarms` set) → `{"alarms":[…]}`, the most recent alarm events (see
 *   pipelines/alarms.ts); the test runs over the verdicts in the order their requests finish.
 *
 * Limits, checked in this order, each before any work is done: a token, when one is set (401); the
 * body, read whole before the request may take a queue slot, within a size (413, from
 * `Content-Length` or as it streams in) and a deadline (408), so a slow client holds a connection
 * and at most `maxBody` bytes, never a slot; the queue (503 with `Retry-After`: at most `queue`
 * requests are admitted, running or waiting for the pool); JSON nesting (400, checked before it is
 * parsed); the decoded pixels of the request (413, counted from the PNG headers and pixel arrays
 * before anything is decoded; a PNG must have the models' size to be decoded at all); the records
 * (400, with the reason and the record's index). Memory stays under `maxConnections × maxBody` for
 * bodies plus `queue × maxPixels × 4` bytes of decoded pixels. Admitted requests share the one
 * auditor, and so its bounded pool: each request's records run as batches there, in parallel with
 * other requests'. A request keeps its slot until its last batch has stopped, also when its client
 * has gone.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { formatShape, openSource, type ImageRecord, type Shape } from '../src/data/index.js';
import { readPngHeader } from '../src/data/png-decode.js';
import { isAdvstreamError } from '../src/errors.js';
import { QuantileSketch } from '../src/stats/index.js';
import { AlarmMonitor, cleanFlagRate, type AlarmOptions, type AuditAlarmEvent } from './alarms.js';
import type { Auditor, AuditVerdict } from './auditor.js';

export interface AuditServerOptions {
  /** The open auditor every request audits through; the server does not close it. */
  auditor: Auditor;
  /** When set, `/v1/audit` and `/metrics` require `Authorization: Bearer TOKEN`. */
  token?: string;
  /** The largest request body, in bytes; default 1 MiB. */
  maxBody?: number;
  /** Audit requests admitted at once, running or waiting for the pool; default 32. */
  queue?: number;
  /** Seconds a 503 asks the client to wait (`Retry-After`); default 1. */
  retryAfter?: number;
  /** Milliseconds a client has to send its request headers; default 10 000. */
  headersTimeoutMs?: number;
  /** Milliseconds a client has to send its whole body once its headers are in; default 10 000. */
  bodyTimeoutMs?: number;
  /** Open connections at most (each may hold up to `maxBody` while its body arrives); default 256. */
  maxConnections?: number;
  /**
   * Decoded pixel values (height × width × channels, all records) one request may have; default
   * 2^22 (16 MiB of float32, so the default queue holds at most 512 MiB of pixels).
   */
  maxPixels?: number;
  /** How deep the request's JSON may nest (the body object counts 1); default 32. */
  maxDepth?: number;
  /** Dataset-level alarms over every request's verdicts; a response then carries the alarms its verdicts raised. */
  alarms?: AlarmOptions;
}

/** Alarms `GET /v1/alarms` returns at most: the most recent. */
export const RECENT_ALARMS = 100;

export interface AuditServer {
  readonly server: http.Server;
  /** Starts listening; port 0 picks a free port. Binds 127.0.0.1 unless told otherwise. */
  listen(port: number, host?: string): Promise<{ host: string; port: number; url: string }>;
  /**
   * Stops accepting connections and waits for the requests in hand, at most `deadlineMs` (default
   * 30 000): then their audits are aborted, they are answered 503, and every connection is closed.
   * The auditor stays open.
   */
  close(deadlineMs?: number): Promise<void>;
  /** The Prometheus text of `/metrics`. */
  metrics(): string;
}

/** A reply the handler chose: status, JSON body and extra headers. */
class Reply extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const KNOWN_PATHS = new Set(['/v1/audit', '/v1/alarms', '/healthz', '/metrics']);

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Reads a body of at most `limit` bytes within `timeoutMs`; a longer one is a 413 as soon as it is
 * known to be, a slower one a 408 when the time is up.
 */
async function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new Reply(413, 'BODY_TOO_LARGE', `the body is ${declared} bytes; the limit is ${limit}`);
  const chunks: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Reply(408, 'BODY_TIMEOUT', `the body did not arrive within ${timeoutMs} ms`)), timeoutMs);
  });
  const read = (async () => {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new Reply(413, 'BODY_TOO_LARGE', `the body is over the limit of ${limit} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, size);
  })();
  try {
    return await Promise.race([read, late]);
  } finally {
    clearTimeout(timer);
    // The loser of the race must not surface as an unhandled rejection.
    read.catch(() => {});
  }
}

/**
 * Whether `body`'s JSON nests deeper than `max`, counting brackets outside strings (malformed JSON
 * is JSON.parse's to refuse). Scanned before parsing: the records are re-serialized for the NDJSON
 * parser, and a JSON value nested a few thousand deep overflows the stack there.
 */
function tooDeep(body: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * Pixel values the records will decode to, from each PNG's header (read, not decoded) and each
 * pixel array's length. A PNG of another size than `shape` is refused here, before pngjs decodes
 * it: it could only be rejected after decoding, and decoding costs its full size.
 */
function countPixels(records: readonly unknown[], shape: Shape): number {
  let total = 0;
  records.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) return;
    const { png, pixels, id } = r as { png?: unknown; pixels?: unknown; id?: unknown };
    if (typeof png === 'string') {
      let header;
      try {
        header = readPngHeader(Buffer.from(png, 'base64'));
      } catch {
        // The NDJSON parser rejects it with its own reason.
        return;
      }
      const got: Shape = [header.height, header.width, header.channels];
      if (formatShape(got) !== formatShape(shape)) {
        const named = typeof id === 'string' || typeof id === 'number' ? ` (id ${id})` : '';
        throw new Reply(400, 'BAD_RECORD', `records[${i}]${named}: shape ${formatShape(got)} differs from the source's shape ${formatShape(shape)}`);
      }
      total += got[0] * got[1] * got[2];
    } else if (Array.isArray(pixels)) total += pixels.length;
  });
  return total;
}

/**
 * Records from a request's JSON, through the NDJSON kind's parser: each record is one line, so its
 * validation (and the reasons it gives) is exactly `ndjson:`'s. Throws a 400 naming the record.
 */
async function parseRecords(body: Buffer, auditor: Auditor, limits: { maxDepth: number; maxPixels: number }): Promise<ImageRecord[]> {
  if (tooDeep(body, limits.maxDepth)) throw new Reply(400, 'BAD_JSON', `the body nests deeper than ${limits.maxDepth} levels`);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new Reply(400, 'BAD_JSON', `the body is not JSON: ${(e as Error).message}`);
  }
  const records = (json as { records?: unknown } | null)?.records;
  if (typeof json !== 'object' || json === null || Array.isArray(json) || !Array.isArray(records)) {
    throw new Reply(400, 'BAD_REQUEST', 'the body must be a JSON object {"records": [...]}');
  }
  if (records.length === 0) return [];
  const pixels = countPixels(records, auditor.shape);
  if (pixels > limits.maxPixels) {
    throw new Reply(413, 'TOO_MANY_PIXELS', `the records decode to ${pixels} pixel values; a request may have ${limits.maxPixels}`);
  }
  const text = `${records.map((r) => JSON.stringify(r) ?? 'null').join('\n')}\n`;
  const out: ImageRecord[] = [];
  try {
    for await (const record of openSource('ndjson:-', { stdin: Readable.from([text]), shape: auditor.shape })) {
      out.push(record);
      // PNGs decode on this thread: other connections get a turn between records.
      if (out.length % 64 === 0) await nextTurn();
    }
  } catch (e) {
    if (isAdvstreamError(e) && (e.code === 'BAD_RECORD' || e.code === 'BAD_SOURCE')) {
      const line = typeof e.details.line === 'number' ? e.details.line : undefined;
      const where = line !== undefined ? `records[${line - 1}]` : 'records';
      const id = typeof e.details.id === 'string' ? ` (id ${e.details.id})` : '';
      throw new Reply(400, 'BAD_RECORD', `${where}${id}: ${String(e.details.reason ?? e.message)}`);
    }
    throw e;
  }
  return out;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * An HTTP server auditing records through `options.auditor`.
 *
 * @example
 *   const auditor = await openAuditor();
 *   const service = createAuditServer({ auditor, token: process.env.ADVSTREAM_TOKEN });
 *   const { url } = await service.listen(8080); // http://127.0.0.1:8080
 */
export function createAuditServer(options: AuditServerOptions): AuditServer {
  const { auditor } = options;
  const maxBody = options.maxBody ?? 1024 * 1024;
  const capacity = options.queue ?? 32;
  const retryAfter = options.retryAfter ?? 1;
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 10_000;
  const maxConnections = options.maxConnections ?? 256;
  const limits = { maxPixels: options.maxPixels ?? 2 ** 22, maxDepth: options.maxDepth ?? 32 };
  const positive = { maxBody, queue: capacity, headersTimeoutMs, bodyTimeoutMs, maxConnections, ...limits };
  for (const [name, value] of Object.entries(positive)) {
    if (!(Number.isSafeInteger(value) && value > 0)) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  const expected = options.token ? digest(options.token) : undefined;

  const requests = new Map<string, number>();
  const names = [...auditor.plan.detectors.map((d) => d.name), ...(auditor.plan.combined ? ['combined'] : [])];
  const flags = new Map(names.map((n) => [n, 0]));
  let flagged = 0;
  let audited = 0;
  let depth = 0;
  const latency = new QuantileSketch();
  let latencySum = 0;
  const handling = new Set<Promise<void>>();
  /** The audits running, to abort when a shutdown's deadline passes. */
  const running = new Set<AbortController>();
  /** The requests whose bodies are still arriving, to cut off then. */
  const reading = new Set<IncomingMessage>();
  let closing = false;
  const monitor = options.alarms ? new AlarmMonitor(cleanFlagRate(auditor.info), options.alarms) : undefined;
  const recentAlarms: AuditAlarmEvent[] = [];
  /** By group label; bounded as the monitor's groups are (maxGroups, the field's absence, the overflow). */
  const alarmCounts = new Map<string, number>();

  const count = (path: string, status: number) => {
    const key = `${KNOWN_PATHS.has(path) ? path : 'other'}\u0000${status}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
  };

  const authorize = (req: IncomingMessage) => {
    if (!expected) return;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !timingSafeEqual(digest(match[1]!.trim()), expected)) {
      throw new Reply(401, 'UNAUTHORIZED', match ? 'wrong bearer token' : 'a bearer token is required (Authorization: Bearer TOKEN)', {
        'www-authenticate': 'Bearer',
      });
    }
  };

  const metrics = (): string => {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${Number.isFinite(value) ? value : 'NaN'}`);
    };
    metric(
      'advstream_http_requests_total',
      'counter',
      'HTTP requests answered, by path and status.',
      [...requests].map(([key, n]) => {
        const [path, status] = key.split('\u0000') as [string, string];
        return [`{path="${escapeLabel(path)}",status="${status}"}`, n];
      }),
    );
    metric('advstream_records_audited_total', 'counter', 'Records audited.', [['', audited]]);
    metric('advstream_records_flagged_total', 'counter', "Records flagged by the audit's decision.", [['', flagged]]);
    metric(
      'advstream_flags_total',
      'counter',
      'Records flagged, by detector (each against its own calibrated threshold).',
      [...flags].map(([n, k]) => [`{detector="${escapeLabel(n)}"}`, k]),
    );
    if (monitor) metric('advstream_alarms_total', 'counter', 'Dataset-level alarms raised, by group.', [...alarmCounts].map(([g, n]) => [`{group="${escapeLabel(g)}"}`, n]));
    metric('advstream_queue_depth', 'gauge', 'Audit requests admitted and not yet answered.', [['', depth]]);
    metric('advstream_queue_capacity', 'gauge', 'Audit requests admitted at most; more get 503.', [['', capacity]]);
    metric('advstream_request_duration_seconds', 'summary', 'Latency of audit requests answered 200.', [
      ...[0.5, 0.9, 0.99].map((q): [string, number] => [`{quantile="${q}"}`, latency.count ? latency.quantile(q) : NaN]),
    ]);
    lines.push(`advstream_request_duration_seconds_sum ${latencySum}`, `advstream_request_duration_seconds_count ${latency.count}`);
    return `${lines.join('\n')}\n`;
  };

  const send = (res: ServerResponse, status: number, body: string, headers: Record<string, string>) => {
    if (res.headersSent) return;
    res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };
  const sendJson = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) =>
    send(res, status, JSON.stringify(value), { 'content-type': 'application/json', ...headers });

  const auditRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    if (closing) throw new Reply(503, 'SHUTTING_DOWN', 'the service is shutting down', { connection: 'close' });
    reading.add(req);
    let body: Buffer;
    try {
      body = await readBody(req, maxBody, bodyTimeoutMs);
    } finally {
      reading.delete(req);
    }
    if (closing) throw new Reply(503, 'SHUTTING_DOWN', 'the service is shutting down', { connection: 'close' });
    if (depth >= capacity) {
      throw new Reply(503, 'QUEUE_FULL', `the audit queue is full (${capacity} requests); retry later`, {
        'retry-after': String(retryAfter),
        connection: 'close',
      });
    }
    depth++;
    const controller = new AbortController();
    running.add(controller);
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Error('the client went away'));
    };
    res.on('close', onClose);
    try {
      const records = await parseRecords(body, auditor, limits);
      controller.signal.throwIfAborted();
      const verdicts: AuditVerdict[] = await auditor.audit(records, controller.signal);
      audited += verdicts.length;
      for (const v of verdicts) {
        if (v.flagged) flagged++;
        for (const [name, f] of Object.entries(v.flags)) if (f) flags.set(name, (flags.get(name) ?? 0) + 1);
        if (v.flagged && auditor.plan.combined) flags.set('combined', (flags.get('combined') ?? 0) + 1);
      }
      const alarms: AuditAlarmEvent[] = [];
      for (const v of monitor ? verdicts : []) {
        const alarm = monitor!.add(v);
        if (!alarm) continue;
        alarms.push(alarm);
        recentAlarms.push(alarm);
        if (recentAlarms.length > RECENT_ALARMS) recentAlarms.shift();
        const label = alarm.overflow ? '(overflow)' : (alarm.group ?? '');
        alarmCounts.set(label, (alarmCounts.get(label) ?? 0) + 1);
      }
      sendJson(res, 200, monitor ? { verdicts, alarms } : { verdicts });
      const seconds = (performance.now() - t0) / 1000;
      latency.add(seconds);
      latencySum += seconds;
    } catch (e) {
      if (controller.signal.aborted && closing) throw new Reply(503, 'SHUTTING_DOWN', 'the service shut down before the audit finished', { connection: 'close' });
      throw e;
    } finally {
      depth--;
      running.delete(controller);
      res.off('close', onClose);
    }
  };

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const allow = (method: string) => {
      if (req.method !== method) throw new Reply(405, 'METHOD_NOT_ALLOWED', `${path} takes ${method}`, { allow: method });
    };
    switch (path) {
      case '/healthz':
        allow('GET');
        sendJson(res, 200, {
          status: 'ok',
          backend: auditor.info.backend,
          engine: auditor.info.engine,
          workers: auditor.info.workers,
          detectors: auditor.info.detectors,
          fpr: auditor.info.fpr,
          queue: { depth, capacity },
        });
        return;
      case '/metrics':
        allow('GET');
        authorize(req);
        send(res, 200, metrics(), { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        return;
      case '/v1/alarms':
        if (!monitor) throw new Reply(404, 'NOT_FOUND', 'alarms are off: start the service with an alarm flag');
        allow('GET');
        authorize(req);
        sendJson(res, 200, { alarms: recentAlarms });
        return;
      case '/v1/audit':
        allow('POST');
        authorize(req);
        await auditRequest(req, res);
        return;
      default:
        throw new Reply(404, 'NOT_FOUND', `no route ${path}; routes: POST /v1/audit, GET /healthz, GET /metrics${monitor ? ', GET /v1/alarms' : ''}`);
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const done = route(req, res, path)
      .catch((e: unknown) => {
        if (e instanceof Reply) {
          // A request answered before its body was read closes its connection: the rest is not waited for.
          if (e.status === 413 || e.status === 401 || e.status === 408) e.headers.connection ??= 'close';
          if (!req.complete) {
            req.resume();
            // A client past its body deadline is not waited for to finish sending.
            if (e.status === 408) res.once('finish', () => req.socket.destroy());
          }
          sendJson(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
        } else if (!res.headersSent && !res.destroyed) {
          const message = isAdvstreamError(e) ? `${e.code}: ${e.message}` : (e as Error)?.message ?? String(e);
          sendJson(res, 500, { error: { code: isAdvstreamError(e) ? e.code : 'INTERNAL', message } });
        }
      })
      .finally(() => {
        // 499: the client left before an answer (nginx's "client closed request").
        count(path, res.headersSent ? res.statusCode : 499);
        handling.delete(done);
      });
    handling.add(done);
  };
  const server = http.createServer(
    // requestTimeout backs the body deadline up for bodies no handler reads; Node checks it every second.
    { headersTimeout: headersTimeoutMs, requestTimeout: headersTimeoutMs + bodyTimeoutMs + 1000, connectionsCheckingInterval: 1000 },
    handle,
  );
  server.maxConnections = maxConnections;

  return {
    server,
    listen: (port, host = '127.0.0.1') =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve({ host: address.address, port: address.port, url: `http://${shown}:${address.port}` });
        });
      }),
    close: async (deadlineMs = 30_000) => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deadlineMs)));
      const settled = Promise.allSettled([...handling]);
      if ((await Promise.race([settled, deadline])) === 'late') {
        for (const controller of running) controller.abort(new Error('the service is shutting down'));
        // Aborted audits are answered once their running batch ends; bodies still arriving are not waited for.
        for (const req of reading) req.socket.destroy();
      }
      clearTimeout(timer);
      await settled;
      server.closeAllConnections();
      await closed;
    },
    metrics,
  };
}
