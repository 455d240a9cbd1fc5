import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { collect, openSource, type RejectedRecord } from '../../src/data/index.js';
import { all, caught, hasProcFds, idxImages, idxLabels, openFds, pixelByte, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

function write(name: string, bytes: Buffer): string {
  const path = join(tmp.dir, name);
  writeFileSync(path, bytes);
  return path;
}

const LABELS = [3, 1, 4, 1, 5, 9, 2, 6];
const images = write('images.idx', idxImages(8, 3, 4));
const labels = write('labels.idx', idxLabels(LABELS));
const imagesGz = write('images.idx.gz', gzipSync(idxImages(8, 3, 4)));
const labelsGz = write('labels.gz', gzipSync(idxLabels(LABELS)));

describe('idx: source', () => {
  it('reads images and labels in lockstep, bytes scaled to [0,1], ids BASENAME/INDEX', async () => {
    const source = openSource(`idx:${images},${labels}`);
    const records = await all(source);
    expect(records.map((r) => r.id)).toEqual(LABELS.map((_, i) => `images.idx/${i}`));
    expect(records.map((r) => r.label)).toEqual(LABELS);
    expect(records[5]!.shape).toEqual([3, 4, 1]);
    expect(Array.from(records[5]!.pixels)).toEqual(Array.from({ length: 12 }, (_, j) => Math.fround(pixelByte(5, j) / 255)));
    expect(source.describe()).toMatchObject({ kind: 'idx', count: 8, shape: [3, 4, 1] });
    expect(source.counters).toEqual({ read: 8, rejected: 0, skipped: 0 });
  });

  it('leaves records unlabeled without a label file', async () => {
    const records = await all(openSource(`idx:${images}`));
    expect(records).toHaveLength(8);
    expect(records.every((r) => !('label' in r))).toBe(true);
  });

  it('accepts 0x00000804 files with a channel dimension', async () => {
    const path = write('rgb.idx', idxImages(2, 2, 2, { c: 3 }));
    const { x, shape, count } = await collect(openSource(`idx:${path}`));
    expect(shape).toEqual([2, 2, 3]);
    expect(count).toBe(2);
    expect(x[12]).toBeCloseTo(pixelByte(1, 0) / 255, 6);
  });

  it('reads gzip files (detected by magic, not name) to the same records', async () => {
    const plain = await all(openSource(`idx:${images},${labels}`));
    const gz = await all(openSource(`idx:${imagesGz},${labelsGz}`));
    expect(gz.map((r) => [r.id.replace('.gz', ''), r.label, Array.from(r.pixels)])).toEqual(
      plain.map((r) => [r.id, r.label, Array.from(r.pixels)]),
    );
    const renamed = write('no-suffix', gzipSync(idxImages(2, 3, 4)));
    expect(await all(openSource(`idx:${renamed}`))).toHaveLength(2);
  });

  it.each([
    ['plain', () => `idx:${images},${labels}`],
    ['gzip', () => `idx:${imagesGz},${labelsGz}`],
  ])('offset and limit select good records (%s)', async (_, uri) => {
    const source = openSource(uri(), { offset: 3, limit: 2 });
    const records = await all(source);
    expect(records.map((r) => r.id.split('/')[1])).toEqual(['3', '4']);
    expect(records.map((r) => r.label)).toEqual([1, 5]);
    expect(Array.from(records[0]!.pixels)).toEqual(Array.from({ length: 12 }, (_, j) => Math.fround(pixelByte(3, j) / 255)));
    expect(source.counters).toEqual({ read: 2, rejected: 0, skipped: 3 });
    const past = openSource(uri(), { offset: 100 });
    expect(await all(past)).toEqual([]);
    expect(past.counters.skipped).toBe(8);
  });

  it('a truncated file yields the whole records, then names the cut one (file, byte offset, index)', async () => {
    const path = write('cut.idx', idxImages(5, 3, 4, { images: 3.5 }));
    const seen: string[] = [];
    const error = await caught(async () => {
      for await (const r of openSource(`idx:${path}`)) seen.push(r.id);
    });
    expect(seen).toEqual(['cut.idx/0', 'cut.idx/1', 'cut.idx/2']);
    expect(error.code).toBe('BAD_RECORD');
    expect(error.details).toMatchObject({ file: path, offset: 16 + 3 * 12, id: 'cut.idx/3' });
    expect(error.message).toContain(`${path}, byte 52, record cut.idx/3: truncated: record 3 of 5`);

    const rejects: RejectedRecord[] = [];
    const skipping = openSource(`idx:${path}`, { onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } });
    expect(await all(skipping)).toHaveLength(3);
    expect(skipping.counters).toEqual({ read: 3, rejected: 1, skipped: 0 });
    expect(rejects).toEqual([expect.objectContaining({ file: path, offset: 52, id: 'cut.idx/3', code: 'BAD_RECORD' })]);
  });

  it('an offset past the cut still reports the cut record', async () => {
    const path = write('cut2.idx', idxImages(5, 3, 4, { images: 3.5 }));
    const source = openSource(`idx:${path}`, { offset: 4, onBadRecord: 'skip' });
    expect(await all(source)).toEqual([]);
    expect(source.counters).toEqual({ read: 0, rejected: 1, skipped: 3 });
  });

  it('a cut gzip stream yields what decompressed, then a bad record with the zlib reason', async () => {
    const whole = gzipSync(idxImages(400, 28, 28));
    const path = write('cut.gz', whole.subarray(0, Math.floor(whole.length * 0.6)));
    const source = openSource(`idx:${path}`, { onBadRecord: 'skip' });
    const records = await all(source);
    expect(records.length).toBeGreaterThan(0);
    expect(records.length).toBeLessThan(400);
    expect(source.counters.rejected).toBe(1);
    const error = await caught(() => all(openSource(`idx:${path}`)));
    expect(error.code).toBe('BAD_RECORD');
    expect(error.details).toMatchObject({ file: path, id: `cut.gz/${records.length}`, offset: 16 + records.length * 784 });
    expect(error.message).toMatch(/truncated.*(unexpected end of file|ends)/);
  });

  it('rejects a wrong magic number as a bad source, at byte 0', async () => {
    const bad = idxImages(2, 3, 4);
    bad.writeUInt32BE(0x12345678, 0);
    const path = write('magic.idx', bad);
    const error = await caught(() => all(openSource(`idx:${path}`)));
    expect(error.code).toBe('BAD_SOURCE');
    expect(error.details).toMatchObject({ file: path, offset: 0 });
    expect(error.message).toContain('wrong magic number 0x12345678');
    const swapped = await caught(() => all(openSource(`idx:${labels},${images}`)));
    expect(swapped.message).toContain('marks a label file');
    const floats = idxImages(2, 3, 4);
    floats.writeUInt32BE(0x00000d03, 0);
    expect((await caught(() => all(openSource(`idx:${write('float.idx', floats)}`)))).message).toContain('element type 0xd');
  });

  it('refuses a header claiming 10^9 images in a small file before reading or allocating', async () => {
    const path = write('liar.idx', idxImages(2, 28, 28, { claim: 1e9 }));
    const heapBefore = process.memoryUsage().arrayBuffers;
    const started = performance.now();
    const error = await caught(() => all(openSource(`idx:${path}`, { onBadRecord: 'skip' })));
    expect(performance.now() - started).toBeLessThan(500);
    expect(process.memoryUsage().arrayBuffers - heapBefore).toBeLessThan(16 * 2 ** 20);
    expect(error.code).toBe('BAD_SOURCE');
    expect(error.message).toContain('claims 1000000000 images of 784 bytes');
    expect(error.message).toContain('holds 1568 bytes (2 images)');

    const gz = write('liar.gz', gzipSync(idxImages(2, 28, 28, { claim: 1e9 })));
    const gzError = await caught(() => all(openSource(`idx:${gz}`)));
    expect(gzError.code).toBe('BAD_SOURCE');
    expect(gzError.message).toContain('decompressed file holds 1568 bytes');
  });

  it('refuses images too large to allocate and empty images', async () => {
    const header = Buffer.alloc(16 + 10);
    [0x803, 1, 65535, 65535].forEach((v, i) => header.writeUInt32BE(v, 4 * i));
    const huge = write('huge.idx', header);
    expect((await caught(() => all(openSource(`idx:${huge}`)))).message).toContain('over the 268435456 bytes');
    const empty = write('empty-dims.idx', idxImages(0, 0, 4));
    expect((await caught(() => all(openSource(`idx:${empty}`)))).code).toBe('BAD_SOURCE');
  });

  it('refuses label files that disagree with the images', async () => {
    const fewer = write('fewer.idx', idxLabels([1, 2, 3]));
    const error = await caught(() => all(openSource(`idx:${images},${fewer}`)));
    expect(error.code).toBe('BAD_SOURCE');
    expect(error.message).toContain('holds 3 labels but the image file');
    const short = write('short-labels.idx', idxLabels([1, 2, 3], 8));
    expect((await caught(() => all(openSource(`idx:${images},${short}`)))).message).toContain('claims 8 labels');
  });

  it('names a missing file and a malformed spec', async () => {
    const missing = join(tmp.dir, 'nope.idx');
    const error = await caught(() => all(openSource(`idx:${missing}`)));
    expect(error.code).toBe('BAD_SOURCE');
    expect(error.details.file).toBe(missing);
    expect(() => openSource('idx:a,b,c')).toThrow(expect.objectContaining({ code: 'BAD_SPEC' }));
    expect(() => openSource('idx:')).toThrow(expect.objectContaining({ code: 'BAD_SPEC' }));
  });

  it('refuses a file whose shape contradicts the expected shape', async () => {
    const error = await caught(() => all(openSource(`idx:${images}`, { shape: [28, 28, 1] })));
    expect(error.code).toBe('BAD_SOURCE');
    expect(error.message).toContain('records are 3x4x1 but the expected shape is 28x28x1');
  });

  it.runIf(hasProcFds)('closes both files when the consumer stops early', async () => {
    const source = openSource(`idx:${images},${labels}`);
    for await (const r of source) {
      expect(openFds(images)).toBe(1);
      expect(openFds(labels)).toBe(1);
      if (r.id.endsWith('/1')) break;
    }
    expect(openFds(images)).toBe(0);
    expect(openFds(labels)).toBe(0);
  });
});
