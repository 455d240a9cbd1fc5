import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SamplesFile } from '../../pipelines/index.js';
import { scratchDir } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await scratchDir('sinks');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('SamplesFile', () => {
  it('counts the bytes it writes, and a resumed file continues from a recorded size', () => {
    const file = path.join(dir, 'samples.ndjson');
    const first = SamplesFile.open(file);
    first.writeLine({ id: 'a' });
    const checkpointed = first.bytes;
    first.writeLine({ id: 'b' });
    first.close();
    expect(checkpointed).toBe(Buffer.byteLength('{"id":"a"}\n'));
    // A crash after 'b' but before the next checkpoint: 'b' is cut and computed again.
    const resumed = SamplesFile.open(file, checkpointed);
    resumed.writeLine({ id: 'b2' });
    resumed.close();
    expect(readFileSync(file, 'utf8')).toBe('{"id":"a"}\n{"id":"b2"}\n');
  });

  it('empties an existing file when not resuming, and refuses to resume a file shorter than recorded', () => {
    const file = path.join(dir, 'short.ndjson');
    const s = SamplesFile.open(file);
    s.writeLine({ id: 'x' });
    s.close();
    SamplesFile.open(file).close();
    expect(readFileSync(file, 'utf8')).toBe('');
    expect(() => SamplesFile.open(file, 10)).toThrowError(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => SamplesFile.open(path.join(dir, 'missing.ndjson'), 0)).toThrowError(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });

  it('refuses to resume where no line ends: a cut there would splice two records', () => {
    const file = path.join(dir, 'cut.ndjson');
    const s = SamplesFile.open(file);
    s.writeLine({ id: 'a' });
    s.writeLine({ id: 'b' });
    s.close();
    expect(() => SamplesFile.open(file, 5)).toThrowError(/has no line end at byte 5/);
    expect(() => SamplesFile.open(file, -3)).toThrowError(/not a byte count/);
    expect(readFileSync(file, 'utf8')).toBe('{"id":"a"}\n{"id":"b"}\n');
  });
});
