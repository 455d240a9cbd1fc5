import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSource, type RejectedRecord } from '../../src/data/index.js';
import { all, caught, pngBytes, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

function folder(name: string, files: Record<string, Buffer | string>): string {
  const dir = join(tmp.dir, name);
  for (const [rel, bytes] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), bytes);
  }
  return dir;
}

const gray = (v: number) => pngBytes(3, 2, { at: () => v });

describe('png: source', () => {
  const digits = folder('digits', {
    '1/b.png': gray(10),
    '1/a.png': gray(20),
    '0/z.png': gray(30),
    '10/c.png': gray(40),
    'loose.png': gray(50),
    'notes.txt': 'not an image',
    '.hidden/x.png': gray(60),
  });

  it('reads PNGs in sorted path order, labels from integer sub-folders, loose files unlabeled', async () => {
    const records = await all(openSource(`png:${digits}`));
    expect(records.map((r) => [r.id, r.label])).toEqual([
      ['0/z.png', 0],
      ['1/a.png', 1],
      ['1/b.png', 1],
      ['10/c.png', 10],
      ['loose.png', undefined],
    ]);
    expect(records[1]!.shape).toEqual([2, 3, 1]);
    expect(Array.from(records[1]!.pixels)).toEqual(Array(6).fill(Math.fround(20 / 255)));
  });

  it('colour PNGs give three channels, alpha dropped; grey with alpha gives one', async () => {
    const dir = folder('colour', {
      'rgba.png': pngBytes(2, 1, { color: true, alpha: true, at: (x) => (x ? [255, 0, 0, 10] : [0, 51, 102, 255]) }),
    });
    const [rgba] = await all(openSource(`png:${dir}`));
    expect(rgba!.shape).toEqual([1, 2, 3]);
    expect(Array.from(rgba!.pixels)).toEqual([0, 0.2, 0.4, 1, 0, 0].map(Math.fround));
    const greyAlpha = folder('grey-alpha', { 'ga.png': pngBytes(2, 2, { alpha: true, at: () => [51, 51, 51, 0] }) });
    const [ga] = await all(openSource(`png:${greyAlpha}`));
    expect(ga!.shape).toEqual([2, 2, 1]);
    expect(ga!.pixels[0]).toBeCloseTo(0.2, 6);
  });

  it('names non-integer folders by their sorted index and reports the class names', async () => {
    const dir = folder('named', { 'dog/1.png': gray(1), 'cat/1.png': gray(2), 'cow/1.png': gray(3) });
    const source = openSource(`png:${dir}`);
    const records = await all(source);
    expect(records.map((r) => [r.id, r.label])).toEqual([
      ['cat/1.png', 0],
      ['cow/1.png', 1],
      ['dog/1.png', 2],
    ]);
    expect(source.describe().classes).toEqual(['cat', 'cow', 'dog']);
  });

  it('labels.csv overrides folders; bad labels and missing files are bad records naming their line', async () => {
    const dir = folder('csv', {
      '7/a.png': gray(1),
      'b.png': gray(2),
      'c.png': gray(3),
      'd.png': gray(4),
      'labels.csv': 'file,label\n7/a.png,2\nb.png,-1\nghost.png,4\nc.png,5\n',
    });
    const rejects: RejectedRecord[] = [];
    const source = openSource(`png:${dir}`, { onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } });
    const records = await all(source);
    expect(records.map((r) => [r.id, r.label])).toEqual([
      ['7/a.png', 2],
      ['c.png', 5],
      ['d.png', undefined],
    ]);
    expect(rejects).toEqual([
      { file: join(dir, 'labels.csv'), line: 3, id: 'b.png', code: 'BAD_RECORD', reason: "label '-1' is not a non-negative integer" },
      { file: join(dir, 'labels.csv'), id: 'ghost.png', code: 'BAD_RECORD', reason: 'listed, but there is no such PNG file' },
    ]);
    expect(source.counters).toEqual({ read: 3, rejected: 2, skipped: 0 });
  });

  it('a PNG that does not decode is a bad record naming the file; skip counts it', async () => {
    const good = gray(9);
    const dir = folder('broken', {
      'a.png': good,
      'b.png': Buffer.from('definitely not a png'),
      'c.png': good.subarray(0, good.length - 20),
      'd.png': good,
    });
    const error = await caught(() => all(openSource(`png:${dir}`)));
    expect(error.code).toBe('BAD_RECORD');
    expect(error.details).toMatchObject({ file: join(dir, 'b.png'), id: 'b.png' });
    expect(error.message).toContain('the PNG does not decode: not a PNG');
    const rejects: RejectedRecord[] = [];
    const source = openSource(`png:${dir}`, { onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } });
    expect((await all(source)).map((r) => r.id)).toEqual(['a.png', 'd.png']);
    expect(rejects.map((r) => r.id)).toEqual(['b.png', 'c.png']);
    expect(source.counters.read + source.counters.rejected).toBe(4);
  });

  it('the first good image fixes the shape; later images of another shape are bad', async () => {
    const dir = folder('shapes', { 'a.png': gray(1), 'b.png': pngBytes(4, 4), 'c.png': gray(2) });
    const error = await caught(() => all(openSource(`png:${dir}`)));
    expect(error.details).toMatchObject({ id: 'b.png' });
    expect(error.message).toContain("shape 4x4x1 differs from the source's shape 2x3x1");
    const expected = await caught(() => all(openSource(`png:${dir}`, { shape: [4, 4, 1] })));
    expect(expected.details).toMatchObject({ id: 'a.png' });
  });

  it('offset and limit count good records', async () => {
    const source = openSource(`png:${digits}`, { offset: 1, limit: 2 });
    expect((await all(source)).map((r) => r.id)).toEqual(['1/a.png', '1/b.png']);
    expect(source.counters).toEqual({ read: 2, rejected: 0, skipped: 1 });
  });

  it('a path that is not a folder is a bad source', async () => {
    const error = await caught(() => all(openSource(`png:${join(digits, 'loose.png')}`)));
    expect(error.code).toBe('BAD_SOURCE');
    expect((await caught(() => all(openSource(`png:${join(tmp.dir, 'nowhere')}`)))).code).toBe('BAD_SOURCE');
  });
});
