import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { openSource, type RejectedRecord } from '../../src/data/index.js';
import { all, caught, line, pngBytes, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

let files = 0;
function ndjson(lines: readonly string[]): string {
  const path = join(tmp.dir, `f${files++}.ndjson`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

const mnistLike = Array.from({ length: 784 }, (_, i) => i % 256);

describe('ndjson: source', () => {
  it('reads pixels (scale 1 or 255), the default 28x28x1 shape, png fields, numeric ids', async () => {
    const read = async (lines: string[]) => all(openSource(`ndjson:${ndjson(lines)}`));
    const [small] = await read([line({ id: 'a', label: 3 })]);
    expect(small).toMatchObject({ id: 'a', label: 3, shape: [2, 2, 1] });
    expect(Array.from(small!.pixels)).toEqual([0, 0.25, 0.5, 1]);
    const [mnist] = await read([JSON.stringify({ id: 'b', pixels: mnistLike, scale: 255 })]);
    expect(mnist).toMatchObject({ id: 'b', shape: [28, 28, 1] });
    expect('label' in mnist!).toBe(false);
    expect(mnist!.pixels[255]).toBe(1);
    expect(mnist!.pixels[51]).toBeCloseTo(0.2, 6);
    const [png] = await read([JSON.stringify({ id: 7, label: 0, png: pngBytes(3, 2, { at: () => 51 }).toString('base64') })]);
    expect(png).toMatchObject({ id: '7', label: 0, shape: [2, 3, 1] });
    expect(png!.pixels[0]).toBeCloseTo(0.2, 6);
  });

  it('records of another shape than the first are bad', async () => {
    const path = ndjson([line({ id: 'a' }), JSON.stringify({ id: 'b', pixels: mnistLike, scale: 255 })]);
    const error = await caught(() => all(openSource(`ndjson:${path}`)));
    expect(error.details).toMatchObject({ line: 2, id: 'b', reason: "shape 28x28x1 differs from the source's shape 2x2x1" });
  });

  const badCases: Array<[string, string, string | undefined, RegExp]> = [
    ['not JSON', '{"id": "x", pixels: [}', undefined, /^not JSON: /],
    ['not an object', '[1, 2, 3]', undefined, /^not a JSON object$/],
    ['missing id', JSON.stringify({ shape: [2, 2, 1], pixels: [0, 0, 0, 0] }), undefined, /^id is required/],
    ['wrong shape', line({ id: 'abc', shape: [3, 3, 1] }), 'abc', /^shape 3x3x1 needs 9 pixels, got 4$/],
    ['no shape, not 784', JSON.stringify({ id: 'abc', pixels: [0, 1] }), 'abc', /^no shape given, and 2 pixels are not 784/],
    ['bad shape field', line({ id: 'abc', shape: [2, 2] }), 'abc', /^shape must be \[height, width, channels\]/],
    ['NaN pixel (null)', line({ id: 'abc', pixels: [0, null, 0, 0] }), 'abc', /^pixel 1 is NaN$/],
    ['pixel above 1', line({ id: 'abc', pixels: [0, 0, 1.5, 0] }), 'abc', /^pixel 2 is 1.5, outside \[0, 1\]$/],
    ['negative pixel', line({ id: 'abc', pixels: [-0.5, 0, 0, 0] }), 'abc', /^pixel 0 is -0.5, outside \[0, 1\]$/],
    ['pixel above 255 at scale 255', line({ id: 'abc', pixels: [0, 0, 0, 300], scale: 255 }), 'abc', /^pixel 3 is 1.17\d*, outside \[0, 1\]$/],
    ['string pixel', line({ id: 'abc', pixels: [0, 'x', 0, 0] }), 'abc', /^pixels\[1\]: /],
    ['unknown scale', line({ id: 'abc', scale: 100 }), 'abc', /^scale must be 1 or 255$/],
    ['negative label', line({ id: 'abc', label: -1 }), 'abc', /^label -1 is not a non-negative integer$/],
    ['fractional label', line({ id: 'abc', label: 2.5 }), 'abc', /^label 2.5 is not a non-negative integer$/],
    ['string label', line({ id: 'abc', label: '3' }), 'abc', /^label must be a number$/],
    ['both pixels and png', line({ id: 'abc', png: 'AAAA' }), 'abc', /^exactly one of pixels and png/],
    ['png that does not decode', JSON.stringify({ id: 'abc', png: 'bm90IGEgcG5n' }), 'abc', /^png does not decode: not a PNG/],
  ];

  it.each(badCases)('a bad line (%s) is a bad record naming file, line and id', async (_, bad, id, reason) => {
    const path = ndjson([line({ id: 'ok1' }), line({ id: 'ok2' }), bad, line({ id: 'ok3' })]);
    const seen: string[] = [];
    const error = await caught(async () => {
      for await (const r of openSource(`ndjson:${path}`)) seen.push(r.id);
    });
    expect(seen).toEqual(['ok1', 'ok2']);
    expect(error.code).toBe('BAD_RECORD');
    expect(error.details.file).toBe(path);
    expect(error.details.line).toBe(3);
    expect(error.details.id).toBe(id);
    expect(String(error.details.reason)).toMatch(reason);
    expect(error.message).toContain(`${path}, line 3${id ? `, record ${id}` : ''}: `);
  });

  it('skip rejects every bad line, writes each to the sink, and drops nothing silently', async () => {
    const lines = [line({ id: 'ok1' }), ...badCases.map(([, bad]) => bad), line({ id: 'ok2' })];
    const path = ndjson(lines);
    const rejects: RejectedRecord[] = [];
    const source = openSource(`ndjson:${path}`, { onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } });
    expect((await all(source)).map((r) => r.id)).toEqual(['ok1', 'ok2']);
    expect(source.counters.read + source.counters.rejected).toBe(lines.length);
    expect(rejects.map((r) => r.line)).toEqual(badCases.map((_, i) => i + 2));
    for (const r of rejects) {
      expect(r).toMatchObject({ file: path, code: 'BAD_RECORD' });
      expect(r.reason.length).toBeGreaterThan(0);
    }
  });

  it('blank lines are not records, and do not shift line numbers', async () => {
    const path = ndjson([line({ id: 'a' }), '', '   ', '{oops', line({ id: 'b' })]);
    const error = await caught(() => all(openSource(`ndjson:${path}`)));
    expect(error.details.line).toBe(4);
    const source = openSource(`ndjson:${path}`, { onBadRecord: 'skip' });
    expect((await all(source)).map((r) => r.id)).toEqual(['a', 'b']);
    expect(source.counters).toEqual({ read: 2, rejected: 1, skipped: 0 });
  });

  it('handles CRLF line ends and a last line without a newline', async () => {
    const path = join(tmp.dir, 'crlf.ndjson');
    writeFileSync(path, `${line({ id: 'a' })}\r\n${line({ id: 'b' })}`);
    expect((await all(openSource(`ndjson:${path}`))).map((r) => r.id)).toEqual(['a', 'b']);
  });

  it('offset skips good records only; bad ones on the way are still rejected', async () => {
    const path = ndjson([line({ id: 'a' }), '{bad', line({ id: 'b' }), line({ id: 'c' }), line({ id: 'd' }), line({ id: 'e' })]);
    const source = openSource(`ndjson:${path}`, { offset: 2, limit: 2, onBadRecord: 'skip' });
    expect((await all(source)).map((r) => r.id)).toEqual(['c', 'd']);
    expect(source.counters).toEqual({ read: 2, rejected: 1, skipped: 2 });
  });

  it('reads stdin for ndjson:- and for - alone, with stdin line numbers', async () => {
    const text = `${line({ id: 'a' })}\n${line({ id: 'b', label: -2 })}\n`;
    const source = openSource('-', { stdin: Readable.from([text]), onBadRecord: 'skip' });
    const rejects: RejectedRecord[] = [];
    const withSink = openSource('ndjson:-', { stdin: Readable.from([Buffer.from(text)]), onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } });
    expect((await all(source)).map((r) => r.id)).toEqual(['a']);
    expect(source.describe().kind).toBe('ndjson');
    await all(withSink);
    expect(rejects).toEqual([{ file: 'stdin', line: 2, id: 'b', code: 'BAD_RECORD', reason: 'label -2 is not a non-negative integer' }]);
  });

  it('splits lines across chunk boundaries, multi-byte characters included', async () => {
    const text = `${line({ id: 'é' })}\n${line({ id: 'ü' })}\n`;
    const bytes = Buffer.from(text);
    const chunks = Array.from(bytes, (b) => Buffer.from([b]));
    expect((await all(openSource('-', { stdin: Readable.from(chunks) }))).map((r) => r.id)).toEqual(['é', 'ü']);
  });

  it('a missing file is a bad source; an empty spec a bad spec', async () => {
    expect((await caught(() => all(openSource(`ndjson:${join(tmp.dir, 'none.ndjson')}`)))).code).toBe('BAD_SOURCE');
    expect(() => openSource('ndjson:')).toThrow(expect.objectContaining({ code: 'BAD_SPEC' }));
  });
});
