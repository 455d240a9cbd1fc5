/**
 * Pixels in `--samples` lines: the clean image as the line's `pixels`, each adversarial as the
 * `adversarial` of its `adversarials[]` entry (one per attack and source model), both in one of
 *
 *   "u8:<base64>"    one byte per value, v = round(255·p)   (preferred: 784 values → 1,048 characters)
 *   "f32:<base64>"   little-endian IEEE-754 float32 per value, in [0, 1]
 *   [0, 0.5, …]      a JSON array of numbers in [0, 1]
 *
 * Values are row-major height × width × channels (HWC, the models' input layout). The line's
 * optional `shape: [height, width, channels]` applies to every image on the line; it defaults to
 * [28, 28, 1] for 784 values and is required otherwise. Example line:
 *
 *   {"id":"17","label":7,"clean":{"zoo:mlp":7},"shape":[28,28,1],"pixels":"u8:AAAA…",
 *    "adversarials":[{"attack":"fgsm:eps=0.1","source":"zoo:mlp","success":true,"linf":0.1,"l2":2.3,
 *                     "confidence":0.9,"preds":{"zoo:mlp":3},"adversarial":"u8:AAAA…"}]}
 *
 * u8 quantises to 1/255: enough to look at, not to recompute norms (the line's `linf` and `l2` are
 * the exact ones).
 */
import { Errors, type Location } from '../errors.js';

/** Height, width, channels. */
export type ImageShape = [number, number, number];

export type PixelEncoding = 'u8' | 'f32';

/** The shape that 784 values take when a line gives none (MNIST). */
export const DEFAULT_SHAPE: ImageShape = [28, 28, 1];

/**
 * Encodes pixels in [0, 1] for a `--samples` line (values outside are clipped by u8).
 *
 * @example
 * line.pixels = encodePixels(cleanImage); // "u8:…"
 */
export function encodePixels(values: ArrayLike<number>, encoding: PixelEncoding = 'u8'): string {
  if (encoding === 'u8') {
    const bytes = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) bytes[i] = Math.round(255 * Math.min(1, Math.max(0, values[i]!)));
    return `u8:${Buffer.from(bytes).toString('base64')}`;
  }
  const floats = Float32Array.from(values);
  const bytes = Buffer.alloc(floats.length * 4);
  floats.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return `f32:${bytes.toString('base64')}`;
}

/**
 * Decodes one image in any of the accepted forms to values in [0, 1]; `where` names the line and
 * field in errors.
 *
 * @example
 * decodePixels('u8:AP8=', { file: 'samples.ndjson', line: 1 }); // Float32Array [0, 1]
 */
export function decodePixels(value: unknown, where: Location, field = 'pixels'): Float32Array {
  const bad = (reason: string) => Errors.badRecord(where, `${field}: ${reason}`);
  if (Array.isArray(value)) {
    const out = new Float32Array(value.length);
    value.forEach((v, i) => {
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw bad(`value ${i} is ${JSON.stringify(v)}, not a number in [0, 1]`);
      out[i] = v;
    });
    return out;
  }
  if (typeof value !== 'string') throw bad('must be "u8:<base64>", "f32:<base64>" or an array of numbers in [0, 1]');
  const colon = value.indexOf(':');
  const tag = colon < 0 ? '' : value.slice(0, colon);
  const body = value.slice(colon + 1);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) throw bad('the data after the tag is not base64');
  const bytes = Buffer.from(body, 'base64');
  if (tag === 'u8') {
    const out = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i]! / 255;
    return out;
  }
  if (tag === 'f32') {
    if (bytes.length % 4 !== 0) throw bad(`f32 data of ${bytes.length} bytes is not whole float32 values`);
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i++) {
      const v = bytes.readFloatLE(i * 4);
      if (!(v >= 0 && v <= 1)) throw bad(`value ${i} is ${v}, not in [0, 1]`);
      out[i] = v;
    }
    return out;
  }
  throw bad(`unknown encoding '${tag}'; use "u8:<base64>" or "f32:<base64>"`);
}

/** The shape of `length` values: the given one (which must match), or [28, 28, 1] for 784. */
export function imageShape(length: number, shape: ImageShape | undefined, where: Location, field = 'pixels'): ImageShape {
  if (shape !== undefined) {
    if (shape[0] * shape[1] * shape[2] !== length) {
      throw Errors.badRecord(where, `${field}: ${length} values do not fill shape [${shape.join(', ')}]`);
    }
    if (shape[2] !== 1 && shape[2] !== 3) throw Errors.badRecord(where, `shape: ${shape[2]} channels; images have 1 or 3`);
    return shape;
  }
  if (length === DEFAULT_SHAPE[0] * DEFAULT_SHAPE[1]) return DEFAULT_SHAPE;
  throw Errors.badRecord(where, `${field}: ${length} values need a "shape": [height, width, channels] on the line`);
}
