/**
 * The one place that decides whether a record is usable. Every source hands its records here, so a
 * record that passes is the same contract whether it came from IDX bytes, a PNG or a JSON line.
 */
import type { ImageRecord, Shape } from './record.js';

/** `28x28x1`: how shapes read in messages. */
export function formatShape(shape: readonly number[]): string {
  return shape.join('x');
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function isShape(shape: unknown): shape is Shape {
  return Array.isArray(shape) && shape.length === 3 && shape.every((d) => Number.isInteger(d) && d > 0);
}

/**
 * Why `record` cannot be used, or `undefined` when it can: the shape is three positive integers
 * whose product is the pixel count (and equals `expected` when given), every pixel is finite and in
 * [0,1], the label (when present) is a non-negative integer.
 *
 * @example
 * checkRecord({ id: 'a', shape: [1, 1, 1], pixels: new Float32Array([2]) }); // 'pixel 0 is 2, outside [0, 1]'
 */
export function checkRecord(record: ImageRecord, expected?: Shape): string | undefined {
  if (typeof record.id !== 'string' || record.id === '') return 'id must be a non-empty string';
  if (!isShape(record.shape)) return `shape ${JSON.stringify(record.shape)} is not three positive integers`;
  const size = record.shape[0] * record.shape[1] * record.shape[2];
  if (!(record.pixels instanceof Float32Array)) return 'pixels must be a Float32Array';
  if (record.pixels.length !== size) {
    return `shape ${formatShape(record.shape)} needs ${size} pixels, got ${record.pixels.length}`;
  }
  if (expected && !sameShape(record.shape, expected)) {
    return `shape ${formatShape(record.shape)} differs from the source's shape ${formatShape(expected)}`;
  }
  const pixels = record.pixels;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i]!;
    // One comparison pair per pixel on the hot path; NaN fails both, so it lands here too.
    if (!(v >= 0 && v <= 1)) {
      return Number.isNaN(v) ? `pixel ${i} is NaN` : `pixel ${i} is ${v}, outside [0, 1]`;
    }
  }
  if (record.label !== undefined && !(Number.isInteger(record.label) && record.label >= 0)) {
    return `label ${record.label} is not a non-negative integer`;
  }
  return undefined;
}
