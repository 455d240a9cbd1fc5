/**
 * A source is a pull-based stream of validated `ImageRecord`s. Kinds (kinds.ts) only decode; this
 * module does, once for all of them: validation, the expected shape, offset and limit, the bad-record
 * policy, the reject sink, counters and abort.
 *
 * Read-ahead bound. A record is decoded only when the consumer pulls it, so no decoded record is
 * ever held ahead of demand: `take(10)` on any source decodes exactly 10 good records (plus the bad
 * ones met on the way, and those an `offset` skips where the kind cannot seek). Bytes are read ahead in chunks:
 * - IDX and NDJSON files: at most one 64 KiB chunk beyond the record just decoded (83 MNIST images);
 * - gzip IDX: that, plus one queued 64 KiB compressed chunk and zlib's 16 KiB output buffers;
 * - a stream the caller passes as stdin: its own highWaterMark (16 chunks for an object-mode stream)
 *   plus the chunk being split into lines;
 * - PNG folders: one file per record, none ahead.
 */
import type { Readable } from 'node:stream';
import type { Observable } from 'rxjs';
import { type AdvstreamError, type ErrorCode, Errors } from '../errors.js';
import type { Declaration, OpenContext, RawItem, RecordReader } from './kind.js';
import { parseSourceUri } from './kinds.js';
import { type ObservableOptions, toObservable } from './observable.js';
import type { ImageRecord, Shape } from './record.js';
import { checkRecord, formatShape, sameShape } from './validate.js';

export type OnBadRecord = 'fail' | 'skip';

/** One rejected record, as a reject sink receives it and `--rejects` writes it (one JSON line each). */
export interface RejectedRecord {
  file: string;
  offset?: number;
  line?: number;
  id?: string;
  code: ErrorCode;
  reason: string;
}

/** Where rejected records go; `write` may be async, and the source waits for it. */
export interface RejectSink {
  write(reject: RejectedRecord): void | Promise<void>;
}

export interface SourceOptions {
  /** Stop after this many good records. */
  limit?: number;
  /** Skip this many good records first (bad ones among them are still rejected). IDX seeks. */
  offset?: number;
  /** `fail` (default): the first bad record ends the stream with its BAD_RECORD error. `skip`: count it and go on. */
  onBadRecord?: OnBadRecord;
  /** Receives every rejected record, under either policy. */
  rejects?: RejectSink;
  /** The shape every record must have; without it the first good record (or the header) fixes it. */
  shape?: Shape;
  signal?: AbortSignal;
  /** What `-` / `ndjson:-` reads; `process.stdin` by default. */
  stdin?: Readable;
}

export interface SourceCounters {
  /** Good records delivered. */
  read: number;
  /** Bad records met (under `fail`, the one that ended the stream). */
  rejected: number;
  /** Good records passed over for `offset`. */
  skipped: number;
}

/** What is known about a source: its kind and, once its header has been read, count, shape and class names. */
export interface SourceInfo extends Declaration {
  uri: string;
  kind: string;
}

export interface RecordSource extends AsyncIterable<ImageRecord> {
  readonly uri: string;
  /** Live counters of the current (or last) pass; each pass starts them from zero. */
  readonly counters: Readonly<SourceCounters>;
  describe(): SourceInfo;
  /** The same records as an Observable that reads only as far as its subscriber asks (see observable.ts). */
  toObservable(options?: ObservableOptions): Observable<ImageRecord>;
}

function rejectedRecord(error: AdvstreamError): RejectedRecord {
  const d = error.details;
  const reject: RejectedRecord = { file: String(d.file), code: error.code, reason: String(d.reason ?? error.message) };
  if (typeof d.offset === 'number') reject.offset = d.offset;
  if (typeof d.line === 'number') reject.line = d.line;
  if (typeof d.id === 'string') reject.id = d.id;
  return reject;
}

function checkCount(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
    throw Errors.badArgument(`${name} must be a non-negative integer, got ${value}`);
  }
}

function checkOptions(options: SourceOptions): void {
  checkCount('limit', options.limit);
  checkCount('offset', options.offset);
  if (options.onBadRecord !== undefined && options.onBadRecord !== 'fail' && options.onBadRecord !== 'skip') {
    throw Errors.badArgument(`onBadRecord must be 'fail' or 'skip', got '${String(options.onBadRecord)}'`);
  }
  const shape = options.shape;
  if (shape !== undefined && !(Array.isArray(shape) && shape.length === 3 && shape.every((d) => Number.isInteger(d) && d > 0))) {
    throw Errors.badArgument(`shape must be [height, width, channels] of positive integers, got ${JSON.stringify(shape)}`);
  }
}

class PulledSource implements RecordSource {
  readonly counters: SourceCounters = { read: 0, rejected: 0, skipped: 0 };
  private info: SourceInfo;

  constructor(
    readonly uri: string,
    kind: string,
    private readonly reader: RecordReader,
    private readonly options: SourceOptions,
  ) {
    this.info = options.shape ? { uri, kind, shape: [...options.shape] } : { uri, kind };
  }

  describe(): SourceInfo {
    const { shape, classes, ...rest } = this.info;
    return { ...rest, ...(shape && { shape: [...shape] }), ...(classes && { classes: [...classes] }) };
  }

  toObservable(options?: ObservableOptions): Observable<ImageRecord> {
    return toObservable(this, options);
  }

  [Symbol.asyncIterator](): AsyncGenerator<ImageRecord, void, undefined> {
    return this.pass();
  }

  private async *pass(): AsyncGenerator<ImageRecord, void, undefined> {
    const { limit = Infinity, offset = 0, onBadRecord = 'fail', rejects, signal, stdin: stdinOption } = this.options;
    const counters = this.counters;
    counters.read = counters.rejected = counters.skipped = 0;
    signal?.throwIfAborted();
    if (limit === 0) return;
    let shape = this.options.shape;
    let toSkip = offset;

    const ctx: OpenContext = {
      offset,
      seeked: (n) => {
        const skipped = Math.min(Math.max(0, n), toSkip);
        toSkip -= skipped;
        counters.skipped += skipped;
      },
      declare: (declared) => {
        if (declared.shape) {
          if (shape && !sameShape(shape, declared.shape)) {
            throw Errors.badSource(
              { file: this.uri },
              `its records are ${formatShape(declared.shape)} but the expected shape is ${formatShape(shape)}`,
            );
          }
          shape = declared.shape;
        }
        this.info = { ...this.info, ...declared, ...(shape && { shape }) };
      },
      signal,
      // A getter: touching process.stdin opens it, which only a stdin source should do.
      get stdin() {
        return stdinOption ?? process.stdin;
      },
    };

    const reject = async (error: AdvstreamError) => {
      counters.rejected++;
      await rejects?.write(rejectedRecord(error));
      if (onBadRecord === 'fail') throw error;
    };

    // for-await closes the kind's iterator (and so its files) on every way out: limit, error, return().
    for await (const item of this.reader(ctx)) {
      signal?.throwIfAborted();
      if ('bad' in item) {
        await reject(item.bad);
        continue;
      }
      const reason = checkRecord(item.record, shape);
      if (reason !== undefined) {
        await reject(Errors.badRecord(item.where, reason));
        continue;
      }
      if (!shape) {
        shape = item.record.shape;
        this.info = { ...this.info, shape };
      }
      if (toSkip > 0) {
        toSkip--;
        counters.skipped++;
        continue;
      }
      counters.read++;
      yield item.record;
      // Checked after the yield, so reaching the limit never pulls one record more.
      if (counters.read >= limit) return;
    }
  }
}

/**
 * Opens a source by URI; nothing is read until it is iterated (each iteration reads it afresh).
 * Throws BAD_SPEC for an unknown scheme or malformed URI, BAD_ARGUMENT for bad options.
 *
 * @example
 * const source = openSource('mnist:test', { limit: 100, onBadRecord: 'skip' });
 * for await (const record of source) console.log(record.id, record.label);
 */
export function openSource(uri: string, options: SourceOptions = {}): RecordSource {
  checkOptions(options);
  const { kind, ref } = parseSourceUri(uri);
  return new PulledSource(uri, kind.schemes[0]!, kind.prepare(ref), options);
}

/**
 * Wraps records already in hand (an array, a generator) as a source, with the same validation,
 * options and Observable view as any other; `uri` names it in errors (default `records`).
 *
 * @example
 * const source = fromRecords([{ id: 'a', shape: [1, 1, 1], pixels: new Float32Array([0.5]) }]);
 */
export function fromRecords(
  records: Iterable<ImageRecord> | AsyncIterable<ImageRecord>,
  options: SourceOptions & { uri?: string } = {},
): RecordSource {
  const { uri = 'records', ...rest } = options;
  checkOptions(rest);
  async function* read(): AsyncGenerator<RawItem, void, undefined> {
    for await (const record of records) {
      const id = typeof record?.id === 'string' ? record.id : undefined;
      yield { record, where: id === undefined ? { file: uri } : { file: uri, id } };
    }
  }
  return new PulledSource(uri, 'records', read, rest);
}
