/** Record admission on its own: the checks, the policies, and a reject sink that fails. */
import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { ImageRecord } from '../../src/data/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { admitRecords } from '../../pipelines/admit.js';

const image = (id: string, value = 0.5): ImageRecord => ({ id, shape: [1, 2, 1], pixels: new Float32Array([value, 0]), label: 1 });

const run = (records: ImageRecord[], options: Partial<Parameters<typeof admitRecords>[0]> = {}) =>
  lastValueFrom(from(records).pipe(admitRecords({ file: 'test', shape: [1, 2, 1], policy: 'skip', ...options }, (r: ImageRecord) => r), toArray()));

describe('admitRecords', () => {
  it('passes good records, in order, and nothing else under skip', async () => {
    const skipped: string[] = [];
    const rejects: string[] = [];
    const out = await run([image('a'), image('b', 1.5), image('c'), image('d', Number.NaN), { id: 'e', shape: [1, 2, 1], pixels: new Float32Array(2) }], {
      onSkip: (r) => skipped.push(r.id),
      refuse: (r) => (r.label === undefined ? 'no label' : undefined),
      rejects: { write: (r) => void rejects.push(`${r.id} ${r.code} ${r.reason}`) },
    });
    expect(out.map((r) => r.id)).toEqual(['a', 'c']);
    expect(skipped).toEqual(['b', 'd', 'e']);
    expect(rejects).toEqual(['b BAD_RECORD pixel 0 is 1.5, outside [0, 1]', 'd BAD_RECORD pixel 0 is NaN', 'e BAD_RECORD no label']);
  });

  it('fails with BAD_RECORD naming the source and record under fail, once the reject is written', async () => {
    const written: string[] = [];
    const e = await run([image('a'), image('b', 2), image('c')], {
      policy: 'fail',
      rejects: { write: async (r) => void written.push(r.id!) },
    }).catch((x: unknown) => x);
    expect(isAdvstreamError(e) && e.code).toBe('BAD_RECORD');
    expect((e as Error).message).toMatch(/^test, record b: pixel 0 is 2/);
    expect(written).toEqual(['b']);
  });

  it('errors the flow, not the subscriber behind it, when the reject sink fails', async () => {
    const down = new Error('disk full');
    const e = await run([image('a'), image('b', 2), image('c')], { rejects: { write: () => Promise.reject(down) } }).catch((x: unknown) => x);
    expect(e).toBe(down);
  });

  it('refuses a record of another shape', async () => {
    const e = await run([{ ...image('a'), shape: [2, 1, 1] }], { policy: 'fail' }).catch((x: unknown) => x);
    expect(isAdvstreamError(e) && e.details.reason).toMatch(/differs from the source's shape 1x2x1/);
  });
});
