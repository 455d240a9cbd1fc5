/**
 * IDX files (LeCun's MNIST format): a big-endian header, then unsigned bytes. Read as a stream in
 * fixed chunks, never as a whole file, so a 47 MB training set costs no more memory than a small
 * one. Plain files are sized with fstat and seek for `offset`; gzip files (detected by their 1f 8b
 * magic, not by name) are sized from their ISIZE trailer and skipped through by decompressing.
 *
 * Ids are `BASENAME/INDEX` for `idx:` (`t10k-images-idx3-ubyte/0`); the index counts from the start
 * of the file, whatever the offset.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Errors, type Location } from '../errors.js';
import { ByteReader, fileChunks } from './byte-reader.js';
import type { OpenContext, RawItem, SourceKind } from './kind.js';
import type { ImageRecord, Shape } from './record.js';

const MAGIC_LABELS = 0x801;
const MAGIC_IMAGES = 0x803;
const MAGIC_IMAGES_CHANNELS = 0x804;
/** Deflate's best compression ratio; with it, a gzip file's size bounds its content when ISIZE wraps. */
const MAX_DEFLATE_RATIO = 1032;
/** One image larger than this is a corrupt header, not a picture: refused before allocating it. */
const MAX_IMAGE_BYTES = 2 ** 28;
const TWO_TO_32 = 2 ** 32;

/** byte/255 for every byte value, so decoding a record is one table lookup per pixel. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

type Role = 'images' | 'labels';

/** Uncompressed content size: exact, or for a gzip too large for ISIZE to be unambiguous, an upper bound. */
interface ContentSize {
  bytes: number;
  exact: boolean;
}

class IdxFile {
  private reader: ByteReader | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly gzip: boolean,
    readonly size: ContentSize,
    private readonly signal: AbortSignal | undefined,
  ) {}

  static async open(path: string, role: Role, signal: AbortSignal | undefined): Promise<IdxFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw Errors.badSource({ file: path }, `cannot open the ${role} file: ${(e as Error).message}`);
    }
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw Errors.badSource({ file: path }, `the ${role} file is not a regular file`);
      const magic = Buffer.alloc(2);
      await fh.read(magic, 0, 2, 0);
      const gzip = magic[0] === 0x1f && magic[1] === 0x8b;
      return new IdxFile(path, fh, gzip, gzip ? await gzipContentSize(fh, stat.size, path) : { bytes: stat.size, exact: true }, signal);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  private where(offset?: number): Location {
    return offset === undefined ? { file: this.path } : { file: this.path, offset };
  }

  /** The header's dimensions, after checking its magic number is one of `allowed`. */
  async readHeader(allowed: readonly number[]): Promise<{ dims: number[]; bytes: number }> {
    const head = await this.bytesAt(0, 4);
    if (head.length < 4) throw Errors.badSource(this.where(head.length), `the file ends inside the IDX header${this.cause()}`);
    const magic = head.readUInt32BE(0);
    if (!allowed.includes(magic)) throw Errors.badSource(this.where(0), wrongMagic(magic, allowed));
    const rank = magic & 0xff;
    const dimBytes = await this.bytesAt(4, 4 * rank);
    if (dimBytes.length < 4 * rank) {
      throw Errors.badSource(this.where(4 + dimBytes.length), `the file ends inside the IDX header${this.cause()}`);
    }
    const dims = Array.from({ length: rank }, (_, i) => dimBytes.readUInt32BE(4 * i));
    return { dims, bytes: 4 + 4 * rank };
  }

  private cause(): string {
    return this.reader?.failure ? `: ${this.reader.failure.message}` : '';
  }

  /** `n` bytes from `start` (fewer at the end); reads must go forward, as gzip cannot seek back. */
  async bytesAt(start: number, n: number): Promise<Buffer> {
    const reader = await this.readerAt(start);
    return reader.read(n);
  }

  /**
   * A reader positioned at `start`. A plain file simply reads from there (a seek); a gzip file
   * decompresses and discards up to it, so its position may fall short at the end of the data.
   */
  async readerAt(start: number): Promise<ByteReader> {
    if (this.gzip) {
      this.reader ??= new ByteReader(this.gunzipStream().iterator({ destroyOnReturn: true }));
      await this.reader.skip(start - this.reader.position);
      return this.reader;
    }
    if (this.reader?.position !== start) {
      await this.reader?.close();
      this.reader = new ByteReader(fileChunks(this.fh, start, this.signal), start);
    }
    return this.reader;
  }

  private gunzipStream(): Readable {
    // highWaterMark 1: the compressed side buffers one chunk, not Readable.from's default sixteen.
    const compressed = Readable.from(fileChunks(this.fh, 0, this.signal), { highWaterMark: 1 });
    // Errors reach the consumer through the gunzip stream it iterates; the callback only settles.
    return pipeline(compressed, createGunzip(), () => {});
  }

  async close(): Promise<void> {
    await this.reader?.close();
    await this.fh.close();
  }
}

async function gzipContentSize(fh: FileHandle, size: number, path: string): Promise<ContentSize> {
  if (size < 18) throw Errors.badSource({ file: path }, 'the gzip file is too short to hold a gzip header and trailer');
  const trailer = Buffer.alloc(4);
  await fh.read(trailer, 0, 4, size - 4);
  const isize = trailer.readUInt32LE(0);
  const most = size * MAX_DEFLATE_RATIO;
  // ISIZE is the content size mod 2^32: exact when the file cannot hold 4 GiB of content. An ISIZE no
  // deflate stream of this size could reach means a damaged trailer (a cut file): keep only the bound.
  if (isize > most) return { bytes: most, exact: false };
  if (most < TWO_TO_32) return { bytes: isize, exact: true };
  return { bytes: isize + Math.floor((most - isize) / TWO_TO_32) * TWO_TO_32, exact: false };
}

function wrongMagic(magic: number, allowed: readonly number[]): string {
  const expected = allowed.map(hex).join(' or ');
  const type = (magic >>> 8) & 0xff;
  if (magic === MAGIC_LABELS) return `magic number ${hex(magic)} marks a label file; expected ${expected}`;
  if (magic >>> 16 === 0 && type !== 0x08) {
    return `magic number ${hex(magic)}: IDX element type 0x${type.toString(16)} is not supported, only unsigned bytes (0x08); expected ${expected}`;
  }
  return `wrong magic number ${hex(magic)}; expected ${expected}`;
}

/**
 * How much of the header's claim the file backs. A claim beyond what the file holds is refused here,
 * before anything is read or allocated by it, unless the file stops inside a record: that is a cut
 * file, whose whole records are still good and whose cut record is reported as a bad record when the
 * stream reaches it. (A file that ends exactly on a record boundary has no cut record to blame: its
 * header's count is simply wrong.)
 */
function checkClaim(file: IdxFile, role: Role, headerBytes: number, count: number, itemBytes: number): void {
  const data = file.size.bytes - headerBytes;
  const claimed = BigInt(count) * BigInt(itemBytes);
  if (claimed <= BigInt(data)) return;
  const what = role === 'images' ? `${count} images of ${itemBytes} bytes` : `${count} labels`;
  if (!file.size.exact) {
    throw Errors.badSource(
      { file: file.path },
      `the header claims ${what} (${claimed} bytes), more than this gzip file can hold (at most ${file.size.bytes} bytes decompressed)`,
    );
  }
  if (data % itemBytes !== 0) return;
  throw Errors.badSource(
    { file: file.path },
    `the header claims ${what} (${claimed} bytes after the header) but the ${file.gzip ? 'decompressed ' : ''}file holds ${data} bytes (${data / itemBytes} ${role})`,
  );
}

export interface IdxSpec {
  images: string;
  labels?: string;
  /** The id of the record at `index` (counted from the start of the file). */
  idOf(index: number): string;
}

/** One pass over an IDX image file and its optional label file, in lockstep. */
export async function* readIdx(spec: IdxSpec, ctx: OpenContext): AsyncGenerator<RawItem, void, undefined> {
  const opened: IdxFile[] = [];
  try {
    const images = await IdxFile.open(spec.images, 'images', ctx.signal);
    opened.push(images);
    const header = await images.readHeader([MAGIC_IMAGES, MAGIC_IMAGES_CHANNELS]);
    const [count, height, width, channels = 1] = header.dims as [number, number, number, number?];
    if (height === 0 || width === 0 || channels === 0) {
      throw Errors.badSource({ file: images.path }, `the header declares empty images (${height}x${width}x${channels})`);
    }
    if (BigInt(height) * BigInt(width) * BigInt(channels) > BigInt(MAX_IMAGE_BYTES)) {
      throw Errors.badSource(
        { file: images.path },
        `the header declares ${height}x${width}x${channels} images, over the ${MAX_IMAGE_BYTES} bytes one image may have`,
      );
    }
    const imageBytes = height * width * channels;
    checkClaim(images, 'images', header.bytes, count, imageBytes);

    let labels: IdxFile | undefined;
    let labelHeaderBytes = 0;
    if (spec.labels !== undefined) {
      labels = await IdxFile.open(spec.labels, 'labels', ctx.signal);
      opened.push(labels);
      const labelHeader = await labels.readHeader([MAGIC_LABELS]);
      labelHeaderBytes = labelHeader.bytes;
      const labelCount = labelHeader.dims[0]!;
      if (labelCount !== count) {
        throw Errors.badSource(
          { file: labels.path },
          `the label file holds ${labelCount} labels but the image file ${images.path} holds ${count} images`,
        );
      }
      checkClaim(labels, 'labels', labelHeaderBytes, labelCount, 1);
    }

    const shape: Shape = [height, width, channels];
    ctx.declare({ count, shape });

    // Seek only past records the file is known to hold whole; a gzip file reports how far it got.
    const wholeRecords = images.size.exact ? Math.floor((images.size.bytes - header.bytes) / imageBytes) : count;
    const wanted = Math.min(ctx.offset, count, wholeRecords);
    const imageReader = await images.readerAt(header.bytes + wanted * imageBytes);
    const start = Math.floor((imageReader.position - header.bytes) / imageBytes);
    const labelReader = labels ? await labels.readerAt(labelHeaderBytes + start) : undefined;
    ctx.seeked(start);

    const gzipNote = images.gzip ? ' (offsets count uncompressed bytes)' : '';
    for (let index = start; index < count; index++) {
      const offset = header.bytes + index * imageBytes;
      const id = spec.idOf(index);
      const bytes = imageReader.position === offset ? await imageReader.read(imageBytes) : Buffer.alloc(0);
      if (bytes.length < imageBytes) {
        const cause = imageReader.failure ? `: ${imageReader.failure.message}` : '';
        const got = Math.max(0, imageReader.position - offset);
        yield {
          bad: Errors.badRecord(
            { file: images.path, offset, id },
            `truncated: record ${index} of ${count} needs ${imageBytes} bytes but the data ends after ${got}${cause}${gzipNote}`,
          ),
        };
        return;
      }
      const record: ImageRecord = { id, shape: [height, width, channels], pixels: new Float32Array(imageBytes) };
      for (let j = 0; j < imageBytes; j++) record.pixels[j] = UNIT[bytes[j]!]!;
      if (labels && labelReader) {
        const label = await labelReader.read(1);
        if (label.length < 1) {
          const cause = labelReader.failure ? `: ${labelReader.failure.message}` : '';
          yield {
            bad: Errors.badRecord(
              { file: labels.path, offset: labelHeaderBytes + index, id },
              `truncated: the label file ends before label ${index} of ${count}${cause}`,
            ),
          };
          return;
        }
        record.label = label[0]!;
      }
      yield { record, where: { file: images.path, offset, id } };
    }
  } finally {
    for (const file of opened) await file.close();
  }
}

/** Splits `IMAGES[,LABELS]`; paths that contain a comma are not supported. */
function parseIdxRest(uri: string, rest: string): { images: string; labels?: string } {
  const parts = rest.split(',');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw Errors.badSpec(uri, 'expected idx:IMAGES or idx:IMAGES,LABELS (paths without commas)');
  }
  return parts[1] === undefined ? { images: parts[0]! } : { images: parts[0]!, labels: parts[1] };
}

export const idxSource: SourceKind = {
  schemes: ['idx'],
  form: 'idx:IMAGES[,LABELS]',
  summary: 'IDX unsigned-byte images (0x803, or 0x804 with channels) and labels (0x801); plain or gzip',
  prepare(ref) {
    const files = parseIdxRest(ref.uri, ref.rest);
    const name = basename(files.images);
    return (ctx) => readIdx({ ...files, idOf: (i) => `${name}/${i}` }, ctx);
  },
};
