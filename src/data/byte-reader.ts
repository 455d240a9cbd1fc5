/**
 * Exact-size and line reads over a byte stream, pulling one chunk at a time. Holding at most the
 * chunk being consumed (plus whatever the stream itself buffers, its highWaterMark) is what keeps
 * every source's memory bounded no matter how large the file is.
 */
import type { FileHandle } from 'node:fs/promises';

const EMPTY = Buffer.alloc(0);

/** Bytes per read for the files sources open themselves; also the unit of their read-ahead. */
export const CHUNK_BYTES = 64 * 1024;

/**
 * A file's bytes from `start`, one positional read per chunk pulled: nothing is read until asked,
 * and seeking is just a different `start`. The caller owns (and closes) the handle.
 */
export async function* fileChunks(fh: FileHandle, start: number, signal?: AbortSignal): AsyncGenerator<Buffer, void, undefined> {
  let position = start;
  for (;;) {
    signal?.throwIfAborted();
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    const { bytesRead } = await fh.read(buffer, 0, CHUNK_BYTES, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`stream yielded a ${typeof chunk}, expected bytes or text`);
}

export interface Line {
  /** The line without its `\n` (and without a `\r` before it); empty when `tooLong`. */
  bytes: Buffer;
  /** The line exceeded the limit and was discarded rather than held in memory. */
  tooLong: boolean;
  /** Byte offset of the line's first byte. */
  offset: number;
}

/** Reads over chunks of bytes (Buffers, or strings as UTF-8) from any async iterator: a file, stdin, gunzip. */
export class ByteReader {
  private pending: Buffer = EMPTY;
  private ended = false;
  /** Bytes consumed so far: the stream offset of the next byte `read` returns. */
  position: number;
  /**
   * Why the data ended early, when it ended with a decompression error rather than a clean end:
   * the bytes before the error are still good, so callers report the record it cut, not the source.
   */
  failure: Error | undefined;

  /** `position` is the offset of the first chunk's first byte, for the offsets this reader reports. */
  constructor(
    private readonly chunks: AsyncIterator<unknown>,
    position = 0,
  ) {
    this.position = position;
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    try {
      const next = await this.chunks.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      this.pending = toBuffer(next.value);
      return true;
    } catch (e) {
      // zlib errors (Z_BUF_ERROR for a cut gzip, Z_DATA_ERROR for corrupt data) end the data; other
      // errors (I/O, abort) are not ours to soften.
      const code = (e as { code?: unknown }).code;
      if (typeof code !== 'string' || !code.startsWith('Z_')) throw e;
      this.ended = true;
      this.failure = e as Error;
      return false;
    }
  }

  /** Stops reading: returns the chunk iterator, which closes a stream iterated with `destroyOnReturn`. */
  async close(): Promise<void> {
    this.ended = true;
    this.pending = EMPTY;
    await this.chunks.return?.();
  }

  /** Up to `n` bytes; fewer only at the end of the data. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (this.pending.length === 0 && !(await this.fill())) break;
      const take = Math.min(n - got, this.pending.length);
      parts.push(this.pending.subarray(0, take));
      this.pending = this.pending.subarray(take);
      got += take;
    }
    this.position += got;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
  }

  /** Discards up to `n` bytes without keeping them; returns how many there were. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      if (this.pending.length === 0 && !(await this.fill())) break;
      const take = Math.min(n - skipped, this.pending.length);
      this.pending = this.pending.subarray(take);
      skipped += take;
    }
    this.position += skipped;
    return skipped;
  }

  /** The next line, or `undefined` at the end; a line longer than `maxBytes` is dropped, not buffered. */
  async readLine(maxBytes: number): Promise<Line | undefined> {
    const offset = this.position;
    const parts: Buffer[] = [];
    let length = 0;
    let tooLong = false;
    let sawAny = false;
    for (;;) {
      if (this.pending.length === 0 && !(await this.fill())) {
        if (!sawAny) return undefined;
        break;
      }
      sawAny = true;
      const nl = this.pending.indexOf(0x0a);
      const piece = nl >= 0 ? this.pending.subarray(0, nl) : this.pending;
      this.pending = this.pending.subarray(nl >= 0 ? nl + 1 : this.pending.length);
      this.position += piece.length + (nl >= 0 ? 1 : 0);
      length += piece.length;
      if (!tooLong) {
        if (length > maxBytes) {
          tooLong = true;
          parts.length = 0;
        } else {
          parts.push(piece);
        }
      }
      if (nl >= 0) break;
    }
    let bytes = tooLong ? EMPTY : parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    return { bytes, tooLong, offset };
  }
}
