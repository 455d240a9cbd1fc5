/**
 * `http://…` and `https://…`: NDJSON records (the `ndjson:` format, one JSON object per line)
 * streamed from a URL with `fetch`, in the thread that opens the source. The response body is read
 * as the consumer pulls records, so a long or endless response is never held whole; the line
 * parsing is the NDJSON kind's own, fed the body as the stream it reads, with errors placed at the
 * URL. A non-2xx status or a failed connection is BAD_SOURCE; no retries (a proxy or a cache can add them).
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Errors, type Location } from '../errors.js';
import type { OpenContext, RawItem, RecordReader, SourceKind } from './kind.js';
import { ndjsonSource } from './ndjson.js';

/** Puts a location the NDJSON reader gave (`stdin`, line n) at the URL instead. */
function atUrl(item: RawItem, url: string): RawItem {
  if ('record' in item) return { record: item.record, where: { ...item.where, file: url } };
  const d = item.bad.details;
  const where: Location = { file: url };
  if (typeof d.line === 'number') where.line = d.line;
  if (typeof d.offset === 'number') where.offset = d.offset;
  if (typeof d.id === 'string') where.id = d.id;
  const reason = typeof d.reason === 'string' ? d.reason : item.bad.message;
  return { bad: item.bad.code === 'BAD_RECORD' ? Errors.badRecord(where, reason) : Errors.badSource(where, reason) };
}

async function* readHttp(url: string, parse: RecordReader, ctx: OpenContext): AsyncGenerator<RawItem, void, undefined> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { accept: 'application/x-ndjson, application/jsonl, application/json;q=0.9, */*;q=0.5' },
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
  } catch (e) {
    ctx.signal?.throwIfAborted();
    const cause = (e as { cause?: { message?: string } }).cause?.message;
    throw Errors.badSource({ file: url }, `cannot fetch: ${(e as Error).message}${cause ? ` (${cause})` : ''}`);
  }
  if (!res.ok) {
    // Not awaited: a cancel can wait on a server that never ends the body.
    void res.body?.cancel().catch(() => {});
    throw Errors.badSource({ file: url }, `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }
  if (!res.body) return;
  const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  const inner: OpenContext = {
    offset: ctx.offset,
    seeked: (n) => ctx.seeked(n),
    declare: (info) => ctx.declare(info),
    signal: ctx.signal,
    stdin: body,
  };
  try {
    for await (const item of parse(inner)) yield atUrl(item, url);
  } catch (e) {
    if ((e as { code?: string }).code === 'BAD_SOURCE' || ctx.signal?.aborted) throw e;
    throw Errors.badSource({ file: url }, `the response broke off: ${(e as Error).message}`);
  } finally {
    // The NDJSON reader leaves the stream it reads open (it is usually stdin): the body is ours.
    body.destroy();
  }
}

export const httpSource: SourceKind = {
  schemes: ['https', 'http'],
  form: 'https://HOST/PATH | http://…',
  summary: 'NDJSON records (as ndjson:) streamed from a URL with fetch',
  prepare(ref) {
    let url: URL;
    try {
      url = new URL(ref.uri);
    } catch {
      throw Errors.badSpec(ref.uri, 'not a valid URL');
    }
    if (!url.host) throw Errors.badSpec(ref.uri, 'expected http(s)://HOST/PATH');
    const parse = ndjsonSource.prepare({ uri: 'ndjson:-', scheme: 'ndjson', rest: '-' });
    return (ctx) => readHttp(url.href, parse, ctx);
  },
};
