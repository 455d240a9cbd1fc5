import { describe, expect, it } from 'vitest';
import { collect, inspectSource, openSource } from '../../src/data/index.js';
import { all } from './helpers.js';

const TEST_HISTOGRAM = { 0: 980, 1: 1135, 2: 1032, 3: 1010, 4: 982, 5: 892, 6: 958, 7: 1028, 8: 974, 9: 1009 };

describe('mnist: source', () => {
  it('mnist:test has 10,000 28x28x1 images in [0,1] with the known label histogram', async () => {
    const summary = await inspectSource(openSource('mnist:test'));
    expect(summary).toMatchObject({ count: 10_000, shape: [28, 28, 1], min: 0, max: 1, unlabeled: 0, rejected: 0 });
    expect(summary.labels).toEqual(Object.fromEntries(Object.entries(TEST_HISTOGRAM).map(([k, v]) => [k, v])));
  });

  it('ids are mnist:SPLIT/INDEX, and the first test digit is a 7', async () => {
    const [first] = await all(openSource('mnist:test', { limit: 1 }));
    expect(first).toMatchObject({ id: 'mnist:test/0', label: 7, shape: [28, 28, 1] });
  });

  it('mnist:train holds 60,000 images (counted from the header, read by seeking to the end)', async () => {
    const source = openSource('mnist:train', { offset: 59_995 });
    const records = await all(source);
    expect(source.describe().count).toBe(60_000);
    expect(records.map((r) => r.id)).toEqual([59_995, 59_996, 59_997, 59_998, 59_999].map((i) => `mnist:train/${i}`));
    expect(source.counters).toEqual({ read: 5, rejected: 0, skipped: 59_995 });
  });

  it('offset and limit pick the same records as a full read', async () => {
    const full = await collect(openSource('mnist:test', { limit: 20 }));
    const part = await collect(openSource('mnist:test', { offset: 10, limit: 5 }));
    expect(part.ids).toEqual([10, 11, 12, 13, 14].map((i) => `mnist:test/${i}`));
    expect(Array.from(part.y)).toEqual(Array.from(full.y.subarray(10, 15)));
    expect(part.x).toEqual(full.x.subarray(10 * 784, 15 * 784));
  });

  it('an unknown split is a bad spec that lists the valid ones', () => {
    expect(() => openSource('mnist:validation')).toThrow(expect.objectContaining({ code: 'BAD_SPEC', details: expect.objectContaining({ valid: ['train', 'test'] }) }));
  });

  it('can be read twice, from the start each time', async () => {
    const source = openSource('mnist:test', { limit: 3 });
    const once = (await all(source)).map((r) => r.id);
    expect((await all(source)).map((r) => r.id)).toEqual(once);
    expect(source.counters.read).toBe(3);
  });
});
