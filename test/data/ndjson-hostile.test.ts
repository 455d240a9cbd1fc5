/**
 * NDJSON lines an attacker sizes: on the old code a 50 MB line (under its 64 MiB limit) was held and
 * parsed, costing 1.6 GB and 12 s before its record was judged; now a line over 16 MiB is a bad
 * record dropped as it streams past, and pixel arrays are not copied by the schema.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { openSource, type RejectedRecord } from '../../src/data/index.js';
import { MAX_LINE_BYTES } from '../../src/data/ndjson.js';
import { all, caught, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

describe('ndjson against hostile lines', () => {
  it('drops a line over 16 MiB as a bad record, and reads the next', async () => {
    expect(MAX_LINE_BYTES).toBe(16 * 1024 * 1024);
    const file = join(tmp.dir, 'long.ndjson');
    const out = createWriteStream(file);
    const values = 9 * 1024 * 1024;
    out.write(`{"id":"long","shape":[1,${values},1],"pixels":[0`);
    const chunk = ',0'.repeat(1024 * 1024);
    for (let i = 1; i < values; i += 1024 * 1024) out.write(chunk);
    out.write(']}\n{"id":"next","shape":[1,1,1],"pixels":[0.5]}\n');
    out.end();
    await once(out, 'close');
    const rejected: RejectedRecord[] = [];
    const records = await all(openSource(`ndjson:${file}`, { onBadRecord: 'skip', rejects: { write: async (r) => void rejected.push(r) } }));
    expect(records.map((r) => r.id)).toEqual(['next']);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ line: 1, reason: `the line is longer than ${16 * 1024 * 1024} bytes` });
  });

  it('names the first pixel that is not a number', async () => {
    const file = join(tmp.dir, 'text.ndjson');
    const out = createWriteStream(file);
    out.end(`${JSON.stringify({ id: 'p', shape: [1, 3, 1], pixels: [0, 'x', 1] })}\n`);
    await once(out, 'close');
    const error = await caught(() => all(openSource(`ndjson:${file}`)));
    expect(error.details).toMatchObject({ line: 1, id: 'p', reason: 'pixels[1]: expected a number (or null for NaN), got "x"' });
  });
});
