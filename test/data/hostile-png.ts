/** Hand-built PNGs for the attacks: chunk lists pngjs's encoder would never write. */
import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

export function ihdr(width: number, height: number, colourType = 0): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data[8] = 8;
  data[9] = colourType;
  return chunk('IHDR', data);
}

/** An 8-bit grayscale PNG of zeros whose first IHDR says `first` and, when given, a second says `second` (the one its IDAT fits). */
export function twoHeaderPng(first: [number, number], second?: [number, number]): Buffer {
  const [w, h] = second ?? first;
  const raw = Buffer.alloc(h * (w + 1));
  return Buffer.concat([
    SIGNATURE,
    ihdr(first[0], first[1]),
    ...(second ? [ihdr(second[0], second[1])] : []),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
