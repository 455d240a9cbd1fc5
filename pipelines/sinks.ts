/**
 * Where evaluation events go besides the Observable: a per-image samples file that a checkpoint can
 * resume exactly, and a webhook. Both run in the main thread.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { Errors } from '../src/errors.js';

/**
 * An NDJSON file written synchronously, one line per call, tracking its size so that a checkpoint
 * can record it and a resumed run can cut the file back to it (lines written after the checkpoint
 * belong to batches the resumed run computes again).
 */
export class SamplesFile {
  private fd: number;
  private size: number;

  private constructor(fd: number, size: number) {
    this.fd = fd;
    this.size = size;
  }

  /**
   * Creates (or empties) `file`; with `resumeAt`, keeps its first `resumeAt` bytes and appends after
   * them. `resumeAt` must end a line of the file: a cut inside one would splice two records.
   */
  static open(file: string, resumeAt?: number): SamplesFile {
    if (resumeAt === undefined) return new SamplesFile(openSync(file, 'w'), 0);
    if (!(Number.isSafeInteger(resumeAt) && resumeAt >= 0)) {
      throw Errors.badArgument(`cannot resume samples file ${file} at ${String(resumeAt)}: not a byte count`);
    }
    let fd: number;
    try {
      fd = openSync(file, 'r+');
    } catch (e) {
      throw Errors.badArgument(`cannot resume samples file ${file}: ${(e as Error).message}`);
    }
    const have = fstatSync(fd).size;
    if (have < resumeAt) {
      closeSync(fd);
      throw Errors.badArgument(`samples file ${file} holds ${have} bytes, fewer than the ${resumeAt} its checkpoint recorded`);
    }
    const last = Buffer.alloc(1);
    if (resumeAt > 0 && (readSync(fd, last, 0, 1, resumeAt - 1) !== 1 || last[0] !== 0x0a)) {
      closeSync(fd);
      throw Errors.badArgument(`samples file ${file} has no line end at byte ${resumeAt}, where its checkpoint says its lines end`);
    }
    ftruncateSync(fd, resumeAt);
    return new SamplesFile(fd, resumeAt);
  }

  /** Bytes written so far (resumed ones included). */
  get bytes(): number {
    return this.size;
  }

  writeLine(value: unknown): void {
    const bytes = Buffer.from(`${JSON.stringify(value)}\n`);
    let at = 0;
    while (at < bytes.length) at += writeSync(this.fd, bytes, at, bytes.length - at, this.size + at);
    this.size += bytes.length;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export interface WebhookOptions {
  /** Per request; default 10 s. */
  timeoutMs?: number;
  /** Told of each failed request (the CLI prints it to stderr). */
  onFailure?: (message: string) => void;
}

export interface WebhookReport {
  url: string;
  posted: number;
  failed: number;
  /** Stats events replaced by a newer one while the webhook was slow. */
  coalesced: number;
}

export interface WebhookSink {
  /** Queues `body` for POSTing; `droppable` bodies (stats) may be replaced by a newer droppable one. */
  post(body: unknown, droppable?: boolean): void;
  /** Counts so far. */
  report(): WebhookReport;
  /** Waits for every queued request to finish (success or failure). */
  drain(): Promise<WebhookReport>;
}

/**
 * POSTs JSON bodies to `url`, one request at a time and in order. A failure (network error,
 * timeout, non-2xx status) is reported through `onFailure` and counted, never thrown: a monitoring
 * endpoint that is down must not stop an evaluation. When requests back up, a waiting stats body is
 * replaced by the next one (only the latest statistics matter); other bodies are never dropped.
 *
 * @example
 * const hook = webhookSink('https://example.org/hook', { onFailure: (m) => console.error(m) });
 * hook.post({ type: 'final', images: 10 });
 * await hook.drain();
 */
export function webhookSink(url: string, options: WebhookOptions = {}): WebhookSink {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw Errors.badArgument(`webhook must be an http(s) URL, got '${url}'`);
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  const counts: WebhookReport = { url, posted: 0, failed: 0, coalesced: 0 };
  const queue: { body: string; droppable: boolean }[] = [];
  let sending: Promise<void> | undefined;

  const send = async (body: string): Promise<void> => {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // The body is not needed; reading it frees the connection.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
      counts.posted++;
    } catch (e) {
      counts.failed++;
      options.onFailure?.(`webhook ${url}: ${(e as Error).message}`);
    }
  };

  const pump = async (): Promise<void> => {
    while (queue.length > 0) await send(queue.shift()!.body);
    sending = undefined;
  };

  return {
    post(body, droppable = false) {
      const last = queue[queue.length - 1];
      if (droppable && last?.droppable) {
        queue.pop();
        counts.coalesced++;
      }
      queue.push({ body: JSON.stringify(body), droppable });
      sending ??= pump();
    },
    report: () => ({ ...counts }),
    async drain() {
      while (sending) await sending;
      return { ...counts };
    },
  };
}
