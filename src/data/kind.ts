/**
 * The contract between the source machinery and one kind of source (MNIST, IDX, PNG folder, NDJSON,
 * and later HTTP). A kind only turns bytes into candidate records; validation, offset, limit,
 * bad-record policy, counters and the Observable view are done once, in `source.ts`, for all kinds.
 */
import type { Readable } from 'node:stream';
import type { AdvstreamError, Location } from '../errors.js';
import type { ImageRecord, Shape } from './record.js';

/** A source URI split at its scheme: `idx:a.idx,b.idx` → scheme `idx`, rest `a.idx,b.idx`. */
export interface SourceRef {
  uri: string;
  scheme: string;
  rest: string;
}

/**
 * What a kind yields: a candidate record with where it came from (not yet validated), or a record
 * the kind already knows is bad (a PNG that does not decode, a line that is not JSON, a cut-off
 * IDX record). Whole-source problems (missing file, bad header) are thrown instead.
 */
export type RawItem = { record: ImageRecord; where: Location } | { bad: AdvstreamError };

/** What a header tells before any record is read. */
export interface Declaration {
  /** Records in the whole source, before offset and limit. */
  count?: number;
  /** The shape every record has. */
  shape?: Shape;
  /** Class names by label index, when labels come from names (PNG sub-folders). */
  classes?: string[];
}

export interface OpenContext {
  /**
   * Good records the consumer wants skipped. A kind that can jump past records it knows are good
   * without decoding them (IDX, by seeking) does so and reports how many through `seeked`, before
   * its first item; the machinery skips the rest after validation.
   */
  readonly offset: number;
  seeked(count: number): void;
  /** Reports a header; throws BAD_SOURCE when its shape contradicts the shape the consumer expects. */
  declare(info: Declaration): void;
  readonly signal: AbortSignal | undefined;
  /** The stream `-` reads: `process.stdin` unless the consumer passed another. */
  readonly stdin: Readable;
}

/** Opens one pass over a source; called once per iteration, so a file source can be read again. */
export type RecordReader = (ctx: OpenContext) => AsyncIterable<RawItem>;

export interface SourceKind {
  /** The URI schemes this kind answers to; the first names the kind. */
  readonly schemes: readonly string[];
  /** The URI form(s) for help text, e.g. `idx:IMAGES[,LABELS]`. */
  readonly form: string;
  /** What it reads, in one line of help. */
  readonly summary: string;
  /**
   * Parses the URI, throwing BAD_SPEC at once for a malformed one, so that mistakes surface when the
   * source is opened rather than when it is first read. Touches no file.
   */
  prepare(ref: SourceRef): RecordReader;
}
