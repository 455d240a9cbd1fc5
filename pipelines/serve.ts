/**
 * The audit as an HTTP service, on `node:http` (three routes need no framework):
 *
 * - `POST /v1/audit` `{"records":[{id, label?, pixels | png, shape?, scale?}, …]}` → `{"verdicts":[…]}`,
 *   in the records' order. Each record is read exactly as an `ndjson:` line is (the data room's own
 *   parser and validation), so a record the CLI accepts the service accepts, and the reasons match.
 * - `GET /healthz` → `{"status":"ok", …}` (no token needed: probes have none).
 * - `GET /metrics` → Prometheus text: requests by path and status, records audited, flags by
 *   detector, queue depth, request latency.
 *
 * Limits, checked in this order, each before any work is done: a token, when one is set (401); the
 * queue (503 with `Retry-After`, before the body is read: at most `queue` requests are admitted,
 * running or waiting for the pool, so memory stays under `queue × maxBody` plus their decoded
 * pixels); the body size (413, from `Content-Length` or as it streams in); JSON and records (400,
 * with the reason and the record's index). Admitted requests share the one auditor, and so its
 * bounded pool: each request's records run as batches there, in parallel with other requests'.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { openSource, type ImageRecord } from '../src/data/index.js';
import { isAdvstreamError } from '../src/errors.js';
import { QuantileSketch } from '../src/stats/index.js';
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
}

export interface AuditServer {
  readonly server: http.Server;
  /** Starts listening; port 0 picks a free port. Binds 127.0.0.1 unless told otherwise. */
  listen(port: number, host?: string): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting connections and waits for the requests in hand; the auditor stays open. */
  close(): Promise<void>;
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

const KNOWN_PATHS = new Set(['/v1/audit', '/healthz', '/metrics']);

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Reads a body of at most `limit` bytes; a longer one is a 413 as soon as it is known to be. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new Reply(413, 'BODY_TOO_LARGE', `the body is ${declared} bytes; the limit is ${limit}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Reply(413, 'BODY_TOO_LARGE', `the body is over the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Records from a request's JSON, through the NDJSON kind's parser: each record is one line, so its
 * validation (and the reasons it gives) is exactly `ndjson:`'s. Throws a 400 naming the record.
 */
async function parseRecords(body: Buffer, auditor: Auditor): Promise<ImageRecord[]> {
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
  const text = `${records.map((r) => JSON.stringify(r) ?? 'null').join('\n')}\n`;
  const out: ImageRecord[] = [];
  try {
    for await (const record of openSource('ndjson:-', { stdin: Readable.from([text]), shape: auditor.shape })) out.push(record);
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
  if (!(Number.isSafeInteger(maxBody) && maxBody > 0)) throw new RangeError(`maxBody must be a positive integer, got ${maxBody}`);
  if (!(Number.isSafeInteger(capacity) && capacity > 0)) throw new RangeError(`queue must be a positive integer, got ${capacity}`);
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
    if (depth >= capacity) {
      // Unread: the body is drained, not kept, and the connection closes after the answer.
      req.resume();
      throw new Reply(503, 'QUEUE_FULL', `the audit queue is full (${capacity} requests); retry later`, {
        'retry-after': String(retryAfter),
        connection: 'close',
      });
    }
    depth++;
    const t0 = performance.now();
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Error('the client went away'));
    };
    res.on('close', onClose);
    try {
      const body = await readBody(req, maxBody);
      const records = await parseRecords(body, auditor);
      const verdicts: AuditVerdict[] = await auditor.audit(records, controller.signal);
      audited += verdicts.length;
      for (const v of verdicts) {
        if (v.flagged) flagged++;
        for (const [name, f] of Object.entries(v.flags)) if (f) flags.set(name, (flags.get(name) ?? 0) + 1);
        if (v.flagged && auditor.plan.combined) flags.set('combined', (flags.get('combined') ?? 0) + 1);
      }
      sendJson(res, 200, { verdicts });
      const seconds = (performance.now() - t0) / 1000;
      latency.add(seconds);
      latencySum += seconds;
    } finally {
      depth--;
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
      case '/v1/audit':
        allow('POST');
        authorize(req);
        await auditRequest(req, res);
        return;
      default:
        throw new Reply(404, 'NOT_FOUND', `no route ${path}; routes: POST /v1/audit, GET /healthz, GET /metrics`);
    }
  };

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const done = route(req, res, path)
      .catch((e: unknown) => {
        if (e instanceof Reply) {
          // A request answered before its body was read closes its connection: the rest is not waited for.
          if (e.status === 413 || e.status === 401) e.headers.connection ??= 'close';
          if (!req.complete) req.resume();
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
  });

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
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...handling]);
      server.closeIdleConnections();
      await closed;
    },
    metrics,
  };
}
