/** Builders for the small files the data tests read, written to a temp folder per test file. */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import type { ImageRecord } from '../../src/data/index.js';
import { AdvstreamError } from '../../src/errors.js';

/** A fresh temp folder and a function that removes it. */
export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'advstream-data-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The byte at (image i, pixel j) of the generated IDX files: distinct per image, covers 0 and 255. */
export const pixelByte = (i: number, j: number) => (i * 7 + j * 13) % 256;

/**
 * An IDX image file of `n` images h×w(×c), each byte `pixelByte(i, j)`. `claim` overrides the count in
 * the header; `images` overrides how many images' bytes follow it (fractional values cut a record).
 */
export function idxImages(n: number, h: number, w: number, opts: { c?: number; claim?: number; images?: number } = {}): Buffer {
  const dims = opts.c === undefined ? [opts.claim ?? n, h, w] : [opts.claim ?? n, h, w, opts.c];
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(opts.c === undefined ? 0x803 : 0x804, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const size = h * w * (opts.c ?? 1);
  const images = opts.images ?? n;
  const body = Buffer.alloc(Math.round(images * size));
  for (let k = 0; k < body.length; k++) body[k] = pixelByte(Math.floor(k / size), k % size);
  return Buffer.concat([header, body]);
}

export function idxLabels(labels: readonly number[], claim = labels.length): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0x801, 0);
  header.writeUInt32BE(claim, 4);
  return Buffer.concat([header, Buffer.from(labels)]);
}

/** A PNG whose pixel (x, y) has the grey value or RGBA `at(x, y)`. */
export function pngBytes(
  width: number,
  height: number,
  opts: { color?: boolean; alpha?: boolean; at?: (x: number, y: number) => number | [number, number, number, number] } = {},
): Buffer {
  const png = new PNG({ width, height });
  const at = opts.at ?? ((x, y) => (x * 31 + y * 17) % 256);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = at(x, y);
      const rgba = typeof v === 'number' ? [v, v, v, 255] : v;
      png.data.set(rgba, (y * width + x) * 4);
    }
  }
  const colorType = opts.color ? (opts.alpha ? 6 : 2) : opts.alpha ? 4 : 0;
  return PNG.sync.write(png, { colorType });
}

/** One NDJSON line of a 2×2×1 image, with overrides. */
export function line(fields: Record<string, unknown>): string {
  return JSON.stringify({ shape: [2, 2, 1], pixels: [0, 0.25, 0.5, 1], ...fields });
}

/** Records collected from an async iterable. */
export async function all(source: AsyncIterable<ImageRecord>): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  for await (const r of source) out.push(r);
  return out;
}

/** The error an async function throws (fails the test if it does not throw an AdvstreamError). */
export async function caught(fn: () => Promise<unknown>): Promise<AdvstreamError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof AdvstreamError) return e;
    throw e;
  }
  throw new Error('expected an AdvstreamError, nothing was thrown');
}

/** File descriptors this process holds open on `path` (Linux /proc). */
export function openFds(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;
}

export const hasProcFds = process.platform === 'linux';
