/** The service's alarms: in the audit response, at GET /v1/alarms, and as `advstream_alarms_total{group}`. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRecord } from '../../src/data/index.js';
import { createAuditServer, type AuditAlarmEvent, type Auditor, type AuditServer } from '../../pipelines/index.js';
import { jsonRecord, mnistRecords } from './audit-helpers.js';
import { post, standIn } from './serve-helpers.js';

let records: ImageRecord[];

/** The stand-in auditor (flags ids starting with `x`), passing each record's meta to its verdict as the real one does. */
function withMeta(): Auditor {
  const { auditor } = standIn();
  return {
    ...auditor,
    audit: async (rs, signal) => (await auditor.audit(rs, signal)).map((v, i) => (rs[i]!.meta ? { ...v, meta: rs[i]!.meta } : v)),
  };
}

const request = (items: { id: string; uploader?: string }[]) =>
  JSON.stringify({ records: items.map((it, i) => ({ ...jsonRecord(records[i % records.length]!), id: it.id, ...(it.uploader ? { uploader: it.uploader } : {}) })) });

beforeAll(async () => {
  records = await mnistRecords((p) => p % 2 === 1, 4);
});

describe('serve with alarms', () => {
  let service: AuditServer;
  let url: string;
  const auth = { authorization: 'Bearer t' };

  beforeAll(async () => {
    // p0 0.01, p1 0.5: ln 50 per flag against a threshold of ln 100, so two flags in a row alarm.
    service = createAuditServer({ auditor: withMeta(), token: 't', alarms: { margin: 0.49, falseAlarmRate: 0.01, groupBy: 'uploader' } });
    ({ url } = await service.listen(0));
  });
  afterAll(() => service.close());

  it('answers with the alarms the request raised, per group, and lists them at /v1/alarms', async () => {
    const first = await post(url, request([{ id: 'a1', uploader: 'alice' }, { id: 'x1', uploader: 'mallory' }, { id: 'x2', uploader: 'mallory' }, { id: 'a2', uploader: 'alice' }]), auth);
    expect(first.status).toBe(200);
    expect((first.json.verdicts as { meta?: unknown }[])[1]!.meta).toEqual({ uploader: 'mallory' });
    const alarms = first.json.alarms as AuditAlarmEvent[];
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatchObject({ type: 'alarm', group_by: 'uploader', group: 'mallory', window: { first_id: 'x1', last_id: 'x2', records: 2, flagged: 2 }, p0: 0.01 });
    // A group's test runs across requests: one flag now, one in the next request.
    expect(((await post(url, request([{ id: 'x3' }]), auth)).json.alarms as unknown[]).length).toBe(0);
    const second = await post(url, request([{ id: 'x4' }]), auth);
    expect((second.json.alarms as AuditAlarmEvent[]).map((a) => [a.group, a.window.first_id, a.window.last_id])).toEqual([[null, 'x3', 'x4']]);

    expect((await fetch(`${url}/v1/alarms`)).status).toBe(401);
    const listed = await fetch(`${url}/v1/alarms`, { headers: auth });
    expect(listed.status).toBe(200);
    expect(((await listed.json()) as { alarms: AuditAlarmEvent[] }).alarms.map((a) => a.group)).toEqual(['mallory', null]);
    expect(service.metrics()).toContain('advstream_alarms_total{group="mallory"} 1');
    expect(service.metrics()).toContain('advstream_alarms_total{group=""} 1');
  });

  it('without alarms: no alarms field, no metric, and /v1/alarms is 404', async () => {
    const plain = createAuditServer({ auditor: withMeta() });
    const { url: u } = await plain.listen(0);
    try {
      const r = await post(u, request([{ id: 'x1' }, { id: 'x2' }]));
      expect(r.json.alarms).toBeUndefined();
      expect((await fetch(`${u}/v1/alarms`)).status).toBe(404);
      expect(plain.metrics()).not.toContain('advstream_alarms_total');
    } finally {
      await plain.close();
    }
  });
});
