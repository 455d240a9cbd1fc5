/** The colour and any-shape sources: tinted MNIST (the residual fixture's data) and Fashion-MNIST. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectSource, openSource } from '../../src/data/index.js';
import { fashionMnistSource } from '../../src/data/fashion-mnist.js';
import { all } from './helpers.js';

const FIXTURES = path.join(import.meta.dirname, '..', '..', 'fixtures', 'onnx');

describe('tinted-mnist: source', () => {
  it('yields 32x32x3 images whose bytes are those make.py trained and referenced the residual fixture on', async () => {
    const meta = JSON.parse(await readFile(path.join(FIXTURES, 'resnet.ref.json'), 'utf8')) as { count: number; labels: number[] };
    const bin = await readFile(path.join(FIXTURES, 'resnet.ref.bin'));
    const want = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + meta.count * 3072 * 4));
    const records = await all(openSource('tinted-mnist:test', { limit: meta.count }));
    expect(records.map((r) => r.label)).toEqual(meta.labels);
    expect(records[0]).toMatchObject({ id: 'tinted-mnist:test/0', shape: [32, 32, 3] });
    const got = new Float32Array(meta.count * 3072);
    records.forEach((r, i) => got.set(r.pixels, i * 3072));
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  });

  it('colours differ between images and channels; offset seeks and keeps each image its colours', async () => {
    const summary = await inspectSource(openSource('tinted-mnist:test', { limit: 50 }));
    expect(summary).toMatchObject({ count: 50, shape: [32, 32, 3], rejected: 0 });
    const [a, b] = await all(openSource('tinted-mnist:test', { limit: 2 }));
    expect(Array.from(a!.pixels.subarray(0, 3))).not.toEqual(Array.from(b!.pixels.subarray(0, 3)));
    const [late] = await all(openSource('tinted-mnist:test', { offset: 1, limit: 1 }));
    expect(late!.id).toBe('tinted-mnist:test/1');
    expect(Buffer.from(late!.pixels.buffer).equals(Buffer.from(b!.pixels.buffer))).toBe(true);
  });
});

describe('fashion-mnist: source', () => {
  it("reads Debian's package: 10,000 28x28x1 test images, 1,000 per class", async () => {
    const summary = await inspectSource(openSource('fashion-mnist:test'));
    expect(summary).toMatchObject({ count: 10_000, shape: [28, 28, 1], rejected: 0 });
    expect(Object.values(summary.labels)).toEqual(new Array(10).fill(1000));
  });

  it('without the package, a BAD_SOURCE error naming it and the apt-get command', async () => {
    const kind = fashionMnistSource('/nonexistent/fashion-mnist');
    const read = kind.prepare({ uri: 'fashion-mnist:test', scheme: 'fashion-mnist', rest: 'test' });
    const iterator = read({ offset: 0, seeked: () => {}, declare: () => {}, signal: undefined, stdin: process.stdin })[Symbol.asyncIterator]();
    await expect(iterator.next()).rejects.toMatchObject({ code: 'BAD_SOURCE', message: expect.stringMatching(/dataset-fashion-mnist.*apt-get install dataset-fashion-mnist/) });
    expect(() => kind.prepare({ uri: 'fashion-mnist:val', scheme: 'fashion-mnist', rest: 'val' })).toThrow(/unknown Fashion-MNIST split/);
  });
});
