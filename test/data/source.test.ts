import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SOURCE_KINDS,
  checkRecord,
  collect,
  fromRecords,
  openSource,
  parseSourceUri,
  type ImageRecord,
  type RejectedRecord,
  type SourceOptions,
} from '../../src/data/index.js';
import { all, caught, idxImages, idxLabels, line, pngBytes, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

const HTTP_SAMPLE = 'https://data.example.test/contract.ndjson';
const server = setupServer(
  http.get(HTTP_SAMPLE, () => new HttpResponse(Array.from({ length: 7 }, (_, i) => line({ id: `h${i}`, label: i })).join('\n'))),
);
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterAll(() => server.close());

/**
 * One sample per registered scheme, so the contract below runs on every kind; registering a kind
 * (http:, say) without adding a sample here fails the first test.
 */
const SAMPLES: Record<string, () => { uri: string; options?: SourceOptions }> = {
  https: () => ({ uri: HTTP_SAMPLE }),
  mnist: () => ({ uri: 'mnist:test', options: { limit: 50 } }),
  'fashion-mnist': () => ({ uri: 'fashion-mnist:test', options: { limit: 50 } }),
  'tinted-mnist': () => ({ uri: 'tinted-mnist:test', options: { limit: 50 } }),
  idx: () => {
    const images = join(tmp.dir, 'c.idx.gz');
    const labels = join(tmp.dir, 'c-labels.idx');
    writeFileSync(images, gzipSync(idxImages(6, 4, 4)));
    writeFileSync(labels, idxLabels([0, 1, 2, 3, 4, 5]));
    return { uri: `idx:${images},${labels}` };
  },
  png: () => {
    const dir = join(tmp.dir, 'c-png');
    for (const [i, rel] of ['0/a.png', '0/b.png', '1/c.png', '2/d.png', 'e.png'].entries()) {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), pngBytes(2, 2, { at: () => i * 40 }));
    }
    return { uri: `png:${dir}` };
  },
  ndjson: () => {
    const path = join(tmp.dir, 'c.ndjson');
    writeFileSync(path, Array.from({ length: 7 }, (_, i) => line({ id: `n${i}`, label: i })).join('\n'));
    return { uri: `ndjson:${path}` };
  },
};

describe('source registry', () => {
  it('every registered kind has unique schemes, a help form, and a contract sample', () => {
    const schemes = SOURCE_KINDS.flatMap((k) => k.schemes);
    expect(new Set(schemes).size).toBe(schemes.length);
    for (const kind of SOURCE_KINDS) expect(kind.form).toContain(`${kind.schemes[0]}:`);
    expect(Object.keys(SAMPLES).sort()).toEqual(SOURCE_KINDS.map((k) => k.schemes[0]).sort());
  });

  describe.each(Object.entries(SAMPLES))('contract: %s', (scheme, sample) => {
    const { uri, options = {} } = sample();
    it('yields valid records of one shape with unique ids, and names its kind', async () => {
      const source = openSource(uri, options);
      const records = await all(source);
      expect(records.length).toBeGreaterThan(3);
      for (const r of records) expect(checkRecord(r)).toBeUndefined();
      expect(new Set(records.map((r) => r.shape.join('x'))).size).toBe(1);
      expect(new Set(records.map((r) => r.id)).size).toBe(records.length);
      expect(source.describe()).toMatchObject({ uri, kind: scheme, shape: records[0]!.shape });
      expect(source.counters).toEqual({ read: records.length, rejected: 0, skipped: 0 });
    });

    it('offset and limit select the same records as a slice of a full read', async () => {
      const full = (await all(openSource(uri, options))).map((r) => r.id);
      const part = await all(openSource(uri, { ...options, offset: 1, limit: 2 }));
      expect(part.map((r) => r.id)).toEqual(full.slice(1, 3));
    });

    it('can stop early and be read again from the start', async () => {
      const source = openSource(uri, options);
      const first: string[] = [];
      for await (const r of source) if (first.push(r.id) === 2) break;
      expect(source.counters.read).toBe(2);
      expect((await all(source)).slice(0, 2).map((r) => r.id)).toEqual(first);
    });
  });

  it('parses URIs: scheme case-insensitive, - is NDJSON on stdin, unknown schemes list the valid ones', () => {
    expect(parseSourceUri('MNIST:test').ref).toEqual({ uri: 'MNIST:test', scheme: 'mnist', rest: 'test' });
    expect(parseSourceUri('-').ref).toMatchObject({ scheme: 'ndjson', rest: '-' });
    const unknown = (() => {
      try {
        openSource('csv:data.csv');
      } catch (e) {
        return e;
      }
    })();
    expect(unknown).toMatchObject({ code: 'BAD_SPEC', details: { valid: ['mnist:', 'fashion-mnist:', 'tinted-mnist:', 'idx:', 'png:', 'ndjson:', 'https:', 'http:'] } });
    expect(() => openSource('just-a-path.idx')).toThrow(expect.objectContaining({ code: 'BAD_SPEC' }));
  });
});

describe('source options', () => {
  it.each<[string, SourceOptions]>([
    ['negative limit', { limit: -1 }],
    ['fractional limit', { limit: 1.5 }],
    ['NaN offset', { offset: Number.NaN }],
    ['unknown policy', { onBadRecord: 'maybe' as 'skip' }],
    ['bad shape', { shape: [0, 28, 1] }],
  ])('%s is a BAD_ARGUMENT', (_, options) => {
    expect(() => openSource('mnist:test', options)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });

  it('limit 0 reads nothing and opens nothing', async () => {
    const source = openSource(`idx:${join(tmp.dir, 'does-not-exist')}`, { limit: 0 });
    expect(await all(source)).toEqual([]);
  });

  it('under fail the sink also receives the record that ended the stream', async () => {
    const rejects: RejectedRecord[] = [];
    const bad = { id: 'x', shape: [1, 1, 1] as [number, number, number], pixels: new Float32Array([2]) };
    const source = fromRecords([bad], { uri: 'mem', rejects: { write: (r) => void rejects.push(r) } });
    const error = await caught(() => all(source));
    expect(error.code).toBe('BAD_RECORD');
    expect(rejects).toEqual([{ file: 'mem', id: 'x', code: 'BAD_RECORD', reason: 'pixel 0 is 2, outside [0, 1]' }]);
    expect(source.counters.rejected).toBe(1);
  });

  it('waits for an async sink before reading on', async () => {
    const order: string[] = [];
    const records: ImageRecord[] = [
      { id: 'bad', shape: [1, 1, 1], pixels: new Float32Array([-1]) },
      { id: 'good', shape: [1, 1, 1], pixels: new Float32Array([1]) },
    ];
    const sink = { write: async (r: RejectedRecord) => { await new Promise((res) => setTimeout(res, 20)); order.push(`rejected ${r.id}`); } };
    for await (const r of fromRecords(records, { onBadRecord: 'skip', rejects: sink })) order.push(`read ${r.id}`);
    expect(order).toEqual(['rejected bad', 'read good']);
  });

  it('stdin is read from the stream passed as an option', async () => {
    const source = openSource('ndjson:-', { stdin: Readable.from([`${line({ id: 'in' })}\n`]) });
    expect((await all(source)).map((r) => r.id)).toEqual(['in']);
  });
});

describe('collect', () => {
  it('gathers dense x, y (-1 when unlabeled), ids, shape and count', async () => {
    const records: ImageRecord[] = Array.from({ length: 300 }, (_, i) => ({
      id: `c${i}`,
      ...(i % 2 ? {} : { label: i % 10 }),
      shape: [1, 2, 1],
      pixels: new Float32Array([i / 300, 0]),
    }));
    const { x, y, ids, shape, count } = await collect(fromRecords(records));
    expect(count).toBe(300);
    expect(shape).toEqual([1, 2, 1]);
    expect(x.length).toBe(600);
    expect(x[2 * 299]).toBeCloseTo(299 / 300, 6);
    expect(Array.from(y.subarray(0, 4))).toEqual([0, -1, 2, -1]);
    expect(ids[299]).toBe('c299');
  });

  it('an empty source collects to empty arrays and no shape', async () => {
    expect(await collect(fromRecords([]))).toEqual({ x: new Float32Array(0), y: new Int32Array(0), ids: [], shape: undefined, count: 0 });
  });

  it('refuses records of mixed shapes from a plain iterable', async () => {
    const mixed: ImageRecord[] = [
      { id: 'a', shape: [1, 1, 1], pixels: new Float32Array([0]) },
      { id: 'b', shape: [1, 2, 1], pixels: new Float32Array([0, 0]) },
    ];
    expect((await caught(() => collect(mixed))).code).toBe('BAD_RECORD');
  });
});

describe('checkRecord', () => {
  const ok: ImageRecord = { id: 'a', label: 1, shape: [1, 2, 1], pixels: new Float32Array([0, 1]) };
  it.each<[string, Partial<ImageRecord>, string | undefined]>([
    ['a good record', {}, undefined],
    ['no label', { label: undefined }, undefined],
    ['empty id', { id: '' }, 'id must be a non-empty string'],
    ['shape of two dims', { shape: [1, 2] as unknown as [number, number, number] }, 'shape [1,2] is not three positive integers'],
    ['pixel count', { pixels: new Float32Array(3) }, 'shape 1x2x1 needs 2 pixels, got 3'],
    ['NaN', { pixels: new Float32Array([0, Number.NaN]) }, 'pixel 1 is NaN'],
    ['Infinity', { pixels: new Float32Array([Infinity, 0]) }, 'pixel 0 is Infinity, outside [0, 1]'],
    ['negative label', { label: -1 }, 'label -1 is not a non-negative integer'],
    ['fractional label', { label: 0.5 }, 'label 0.5 is not a non-negative integer'],
  ])('%s', (_, change, reason) => {
    expect(checkRecord({ ...ok, ...change })).toBe(reason);
  });

  it('checks the expected shape after the pixel count', () => {
    expect(checkRecord(ok, [2, 1, 1])).toBe("shape 1x2x1 differs from the source's shape 2x1x1");
  });
});
