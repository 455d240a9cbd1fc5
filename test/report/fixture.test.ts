import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeRun, ndjson, RUN_FILE, SAMPLES_FILE } from './make-fixture.js';

describe('report fixture', () => {
  // The recorded run must follow the schema EvalStats emits today: remake it and compare.
  it('is what EvalStats makes now (UPDATE_FIXTURES=1 rewrites it)', () => {
    const { events, samples } = makeRun();
    const files: [string, string][] = [
      [RUN_FILE, ndjson(events)],
      [SAMPLES_FILE, ndjson(samples)],
    ];
    for (const [file, text] of files) {
      if (process.env.UPDATE_FIXTURES === '1' || !existsSync(file)) writeFileSync(file, text);
      expect(readFileSync(file, 'utf8'), `${file} is stale: run with UPDATE_FIXTURES=1`).toBe(text);
    }
  });
});
