/**
 * Attacks on the PNG decoder: the header it checks must be the header pngjs decodes by. On the old
 * code a second IHDR after a small first one passed the pixel check and decoded at its own size.
 */
import { describe, expect, it } from 'vitest';
import { decodePng, readPngHeader, MAX_PNG_PIXELS } from '../../src/data/png-decode.js';
import { twoHeaderPng } from './hostile-png.js';

describe('png-decode against hostile headers', () => {
  it('refuses a second IHDR instead of decoding by it', () => {
    // 8193² is over the old limit (2^26) too: the first header alone let it through.
    const bomb = twoHeaderPng([8, 8], [8193, 8193]);
    expect(bomb.length).toBeLessThan(200_000);
    expect(() => decodePng(bomb)).toThrow(/a second IHDR chunk at byte 33/);
  });

  it('still decodes a well-formed PNG at the size its one header says', () => {
    const ok = decodePng(twoHeaderPng([5, 3]));
    expect(ok.shape).toEqual([3, 5, 1]);
    expect(readPngHeader(twoHeaderPng([5, 3]))).toEqual({ width: 5, height: 3, channels: 1 });
  });

  it('refuses more pixels than a process can afford before pngjs allocates', () => {
    expect(MAX_PNG_PIXELS).toBe(4096 * 4096);
    expect(() => decodePng(twoHeaderPng([4097, 4096]))).toThrow(/4097x4096 is over the 16777216 pixels/);
  });

  it('refuses a header without pixels or with an unknown colour type', () => {
    expect(() => readPngHeader(twoHeaderPng([0, 3]))).toThrow(/0x3 has no pixels/);
    const odd = twoHeaderPng([2, 2]);
    odd[25] = 5;
    expect(() => readPngHeader(odd)).toThrow(/colour type 5/);
  });
});
