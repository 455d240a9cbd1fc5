/**
 * Dense arrays for training code, which wants one tensor's worth of data rather than a stream. Only
 * for bounded sources: it holds every record (use `limit` on an endless one).
 */
import { Errors } from '../errors.js';
import type { ImageRecord, Shape } from './record.js';
import { formatShape, sameShape } from './validate.js';

export interface Collected {
  /** `count` images back to back, each h*w*c values in HWC order. */
  x: Float32Array;
  /** The label of each image, -1 where it has none. */
  y: Int32Array;
  ids: string[];
  /** The shape of every image; undefined when there were none. */
  shape: Shape | undefined;
  count: number;
}

/**
 * Reads a bounded source to the end into dense arrays. Throws BAD_RECORD if records differ in shape
 * (a `RecordSource` never yields such records; a plain iterable might).
 *
 * @example
 * const { x, y, count } = await collect(openSource('mnist:test', { limit: 1000 }));
 */
export async function collect(source: AsyncIterable<ImageRecord> | Iterable<ImageRecord>): Promise<Collected> {
  let shape: Shape | undefined;
  let size = 0;
  let capacity = 0;
  let x = new Float32Array(0);
  let y = new Int32Array(0);
  const ids: string[] = [];
  for await (const record of source) {
    if (!shape) {
      shape = [...record.shape];
      size = shape[0] * shape[1] * shape[2];
    } else if (!sameShape(record.shape, shape)) {
      throw Errors.badRecord(
        { file: 'uri' in source ? String(source.uri) : 'records', id: record.id },
        `shape ${formatShape(record.shape)} differs from the first record's ${formatShape(shape)}`,
      );
    }
    const n = ids.length;
    if (n === capacity) {
      // Doubling rather than trusting a header's count: a limit or a cut file may deliver far fewer.
      capacity = Math.max(256, capacity * 2);
      const grownX = new Float32Array(capacity * size);
      grownX.set(x);
      x = grownX;
      const grownY = new Int32Array(capacity);
      grownY.set(y);
      y = grownY;
    }
    x.set(record.pixels, n * size);
    y[n] = record.label ?? -1;
    ids.push(record.id);
  }
  const count = ids.length;
  return { x: x.slice(0, count * size), y: y.slice(0, count), ids, shape, count };
}
