import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ByteReader } from '../../src/data/byte-reader.js';

const reader = (chunks: string[]) => new ByteReader(Readable.from(chunks).iterator());

describe('ByteReader', () => {
  it('reads exact sizes across chunks, short only at the end, tracking the position', async () => {
    const r = reader(['abc', 'defg', 'h']);
    expect((await r.read(5)).toString()).toBe('abcde');
    expect(r.position).toBe(5);
    expect(await r.skip(2)).toBe(2);
    expect((await r.read(5)).toString()).toBe('h');
    expect(r.position).toBe(8);
    expect((await r.read(1)).length).toBe(0);
  });

  it('drops an over-long line as it streams, keeps the lines around it', async () => {
    const r = reader(['short\nthis line is far', ' too long\nok\r\n', 'last']);
    expect(await r.readLine(10)).toMatchObject({ tooLong: false, offset: 0 });
    const long = await r.readLine(10);
    expect(long).toMatchObject({ tooLong: true, offset: 6 });
    expect(long!.bytes.length).toBe(0);
    expect((await r.readLine(10))!.bytes.toString()).toBe('ok');
    expect((await r.readLine(10))!.bytes.toString()).toBe('last');
    expect(await r.readLine(10)).toBeUndefined();
  });
});
