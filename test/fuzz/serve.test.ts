/**
 * Property-based fuzzing of the audit service's request body, on loopback against a stand-in
 * auditor: every body ends in 200 or a coded 4xx, never a 500, within CASE_MS, and the server keeps
 * answering. Attack-specific cases (slow clients, deep JSON, pixel budgets) are in
 * test/pipelines/serve-hostile.test.ts.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditServer, type AuditServer } from '../../pipelines/index.js';
import { twoHeaderPng } from '../data/hostile-png.js';
import { pngBytes } from '../data/helpers.js';
import { standIn } from '../pipelines/serve-helpers.js';
import { params, withinMemory } from './fuzz.js';

let service: AuditServer;
let url: string;

beforeAll(async () => {
  service = createAuditServer({ auditor: standIn().auditor, maxBody: 256 * 1024, maxPixels: 64 * 784 });
  ({ url } = await service.listen(0));
});
afterAll(() => service.close(1000));

const CODES: Record<number, string[]> = {
  400: ['BAD_JSON', 'BAD_REQUEST', 'BAD_RECORD'],
  413: ['BODY_TOO_LARGE', 'TOO_MANY_PIXELS'],
};

const record = fc.record(
  {
    id: fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null)),
    label: fc.oneof(fc.integer({ min: -1, max: 12 }), fc.double()),
    pixels: fc.oneof(
      fc.constant(null),
      fc.array(fc.oneof(fc.double({ min: -1, max: 2 }), fc.constant(null), fc.string({ maxLength: 2 })), { maxLength: 30 }),
      fc.constant(Array(784).fill(0.25)),
    ),
    scale: fc.constantFrom(1, 255, 3),
    shape: fc.oneof(fc.constant([28, 28, 1]), fc.array(fc.integer({ min: -1, max: 30 }), { maxLength: 4 })),
    png: fc.oneof(
      fc.base64String({ maxLength: 64 }),
      fc.constant(pngBytes(28, 28).toString('base64')),
      fc.constant(twoHeaderPng([28, 28], [2000, 2000]).toString('base64')),
      fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 })).map(([w, h]) => twoHeaderPng([w, h]).toString('base64')),
    ),
    extra: fc.jsonValue({ maxDepth: 6 }),
  },
  { requiredKeys: [] },
);
const deep = fc.integer({ min: 1, max: 5000 }).map((n) => `{"records":[{"id":"d","x":${'['.repeat(n)}${']'.repeat(n)}}]}`);
const body = fc.oneof(
  fc.array(record, { maxLength: 70 }).map((records) => JSON.stringify({ records })),
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v) ?? ''),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u).toString('latin1')),
  deep,
);

describe('fuzz: the service body', () => {
  it('answers every body with 200 or a coded 4xx', async () => {
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(body, async (text) => {
          const res = await fetch(`${url}/v1/audit`, { method: 'POST', body: text, headers: { 'content-type': 'application/json' } });
          const json = (await res.json()) as { verdicts?: unknown[]; error?: { code: string; message: string } };
          if (res.status === 200) {
            expect(Array.isArray(json.verdicts)).toBe(true);
            return;
          }
          expect(Object.keys(CODES).map(Number)).toContain(res.status);
          expect(CODES[res.status]).toContain(json.error?.code);
        }),
        params(150),
      ),
    );
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });
});
