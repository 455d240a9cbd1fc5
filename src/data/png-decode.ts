/**
 * PNG bytes to pixels, shared by the PNG folder and the `png` field of NDJSON lines so that both read
 * images the same way: grayscale (with or without alpha) gives one channel, colour and palette give
 * three; alpha is dropped, not composited; 16-bit samples are scaled to 8 bits by pngjs.
 */
import { PNG } from 'pngjs';
import type { Shape } from './record.js';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A PNG claiming more pixels than this is refused before pngjs allocates its buffers. 4096² pixels:
 * decoding one costs about 64 MiB of RGBA plus 4 bytes per channel of output (~260 MiB at most, and
 * a second or so of the thread), which a process reading a folder can afford; 8192² (the old limit)
 * cost ~1.3 GB and 5–6 s.
 */
export const MAX_PNG_PIXELS = 2 ** 24;

/** What the IHDR chunk says, read without decoding anything. */
export interface PngHeader {
  width: number;
  height: number;
  /** 1 for grayscale (with or without alpha), 3 for colour and palette: the channels {@link decodePng} gives. */
  channels: 1 | 3;
}

const COLOUR_CHANNELS: Record<number, 1 | 3> = { 0: 1, 2: 3, 3: 3, 4: 1, 6: 3 };

/**
 * The header the decoder will use. pngjs takes the last IHDR it meets, so the whole chunk list is
 * walked: a file whose first IHDR is small and a later one huge is refused here, not decoded.
 * Throws a plain `Error` saying why, for the caller to place.
 */
export function readPngHeader(bytes: Buffer): PngHeader {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG (no PNG signature)');
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString('latin1', 12, 16) !== 'IHDR') throw new Error('the first chunk is not a 13-byte IHDR');
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  const channels = COLOUR_CHANNELS[bytes[25]!];
  if (channels === undefined) throw new Error(`colour type ${bytes[25]} is not a PNG colour type`);
  if (width === 0 || height === 0) throw new Error(`${width}x${height} has no pixels`);
  for (let at = 33; at + 8 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (type === 'IHDR') throw new Error(`a second IHDR chunk at byte ${at} (a PNG has one)`);
    if (type === 'IEND') break;
    at += 12 + length;
  }
  return { width, height, channels };
}

/** Decodes one PNG; throws a plain `Error` saying why it does not decode, for the caller to place. */
export function decodePng(bytes: Buffer): { shape: Shape; pixels: Float32Array } {
  const header = readPngHeader(bytes);
  if (header.width * header.height > MAX_PNG_PIXELS) {
    throw new Error(`${header.width}x${header.height} is over the ${MAX_PNG_PIXELS} pixels one image may have`);
  }
  const png = PNG.sync.read(bytes);
  if (png.width !== header.width || png.height !== header.height) {
    throw new Error(`decoded as ${png.width}x${png.height}, not the ${header.width}x${header.height} its header says`);
  }
  const channels = png.color ? 3 : 1;
  const count = png.width * png.height;
  const pixels = new Float32Array(count * channels);
  const rgba = png.data;
  for (let p = 0; p < count; p++) {
    for (let k = 0; k < channels; k++) pixels[p * channels + k] = rgba[p * 4 + k]! / 255;
  }
  return { shape: [png.height, png.width, channels], pixels };
}
