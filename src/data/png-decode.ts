/**
 * PNG bytes to pixels, shared by the PNG folder and the `png` field of NDJSON lines so that both read
 * images the same way: grayscale (with or without alpha) gives one channel, colour and palette give
 * three; alpha is dropped, not composited; 16-bit samples are scaled to 8 bits by pngjs.
 */
import { PNG } from 'pngjs';
import type { Shape } from './record.js';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG claiming more pixels than this is refused before pngjs allocates its RGBA buffer. */
export const MAX_PNG_PIXELS = 2 ** 26;

/** Decodes one PNG; throws a plain `Error` saying why it does not decode, for the caller to place. */
export function decodePng(bytes: Buffer): { shape: Shape; pixels: Float32Array } {
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG (no PNG signature)');
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (width * height > MAX_PNG_PIXELS) {
    throw new Error(`${width}x${height} is over the ${MAX_PNG_PIXELS} pixels one image may have`);
  }
  const png = PNG.sync.read(bytes);
  const channels = png.color ? 3 : 1;
  const count = png.width * png.height;
  const pixels = new Float32Array(count * channels);
  const rgba = png.data;
  for (let p = 0; p < count; p++) {
    for (let k = 0; k < channels; k++) pixels[p * channels + k] = rgba[p * 4 + k]! / 255;
  }
  return { shape: [png.height, png.width, channels], pixels };
}
