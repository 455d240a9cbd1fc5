/**
 * The streaming audit through the pool: calibration that holds its false-positive rate on held-out
 * clean data, and the three faces (RxJS operator, Node stream, HTTP service) giving identical
 * verdicts for the same records; the operator's and the stream's flow control.
 */
import { copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EMPTY, from, lastValueFrom, Observable, of, Subject, throwError, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromRecords, toObservable, type ImageRecord } from '../../src/data/index.js';
import { loadCalibration } from '../../src/detect/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { wilson } from '../../src/stats/index.js';
import {
  audit,
  auditAdversarial,
  calibrationStage,
  createAuditServer,
  createAuditStream,
  openAuditor,
  type AuditEvent,
  type Auditor,
  type AuditSummaryEvent,
  type AuditVerdict,
  type CalibrationProgress,
} from '../../pipelines/index.js';
import { auditDetectors, auditModels, jsonRecord, mnistRecords } from './audit-helpers.js';
import { scratchDir } from './helpers.js';

const FPR = 0.05;
/** Records per calibration stage: positions ≡ 0 and ≡ 2 (mod 4) of mnist:test[0:4000). */
const CAL = 1000;

let dir: string;
let auditor: Auditor;
let calibrationFile: string;
let records: ImageRecord[];

beforeAll(async () => {
  dir = await scratchDir('audit');
  const m = await auditModels();
  calibrationFile = path.join(dir, 'calibration.json');
  auditor = await openAuditor({ detectors: auditDetectors(m), workers: 2, fpr: FPR, calibration: calibrationFile, calibrationLimit: CAL });
  records = await mnistRecords((p) => p % 2 === 1, 40);
});
afterAll(async () => {
  await auditor?.close();
  await rm(dir, { recursive: true, force: true });
});

const collect = <T>(o: Observable<T>) => lastValueFrom(o.pipe(toArray()));

describe('calibration through the pool', () => {
  it('records the decision in the file and reuses a file that fits', async () => {
    const c = await loadCalibration(calibrationFile);
    expect(c.fpr).toBe(FPR);
    expect(c.detectors['feature-squeezing']!.n).toBe(CAL);
    expect(c.combined!.n).toBe(CAL);
    expect(c.source).toMatch(/mnist:test, even positions only: stage 1 .* position % 4 == 0 \(1000 records\); stage 2 .* position % 4 == 2 \(1000 records\); odd positions held out/);
    expect(c.provenance).toMatchObject({ data: { uri: 'mnist:test', stage1: 'position % 4 == 0', stage2: 'position % 4 == 2', held_out: 'position % 2 == 1', limit: CAL } });
    expect(auditor.info.calibration.reused).toBe(false);
    // On its own records the rate is exact and never above the target.
    for (const s of [...Object.values(c.detectors), c.combined!]) expect(s.rate).toBeLessThanOrEqual(FPR);
    expect([0, 1, 2, 3, 4].map((p) => calibrationStage(p, true))).toEqual([1, null, 2, null, 1]);
    const m = await auditModels();
    const events: CalibrationProgress[] = [];
    const again = await openAuditor({ detectors: auditDetectors(m), workers: 1, fpr: FPR, calibration: calibrationFile, calibrationLimit: CAL, onCalibration: (e) => events.push(e) });
    await again.close();
    expect(again.info.calibration).toMatchObject({ reused: true, file: calibrationFile });
    expect(again.calibration).toEqual(c);
    expect(events).toEqual([{ phase: 'reused', file: calibrationFile }]);
    // Another rate does not fit: it is calibrated afresh (and saved where it was asked to be).
    const other = path.join(dir, 'other.json');
    await copyFile(calibrationFile, other);
    const reasons: string[] = [];
    const fresh = await openAuditor({
      detectors: auditDetectors(m),
      workers: 1,
      fpr: 0.1,
      calibration: other,
      calibrationLimit: 100,
      onCalibration: (e) => e.phase === 'calibrating' && reasons.push(e.reason),
    });
    await fresh.close();
    expect(fresh.info.calibration.reused).toBe(false);
    expect(reasons[0]).toMatch(/calibrated at fpr 0.05, the audit asks 0.1/);
    expect((await loadCalibration(other)).fpr).toBe(0.1);
  });

  it('holds its false-positive rate on 1500 held-out clean images, per detector and combined', async () => {
    const held = await mnistRecords((p) => p % 2 === 1, 1500);
    const events = await collect(audit(fromRecords(held, { uri: 'mnist:test odd' }), { auditor, statsEvery: { batches: 20 } }));
    const final = events.at(-1) as AuditSummaryEvent;
    expect(final).toMatchObject({ type: 'summary', final: true, records: 1500, stop_reason: 'end' });
    expect(Object.keys(final.detectors).sort()).toEqual(['combined', 'feature-squeezing', 'noise-instability', 'order-disagreement']);
    for (const [name, s] of [...Object.entries(final.detectors), ['decision', final.flagged] as const]) {
      // The interval of the held-out rate, widened for the calibration's own sampling error (its
      // threshold is a quantile of 1000 clean scores), at 99%.
      const half = 2.576 * Math.sqrt(FPR * (1 - FPR) * (1 / CAL + 1 / s.n));
      expect(Math.abs(s.p! - FPR), `${name}: ${s.k}/${s.n} flagged`).toBeLessThanOrEqual(half);
      // And the target lies in the held-out rate's own 95% Wilson interval.
      const { lo, hi } = wilson(s.k, s.n);
      expect(s.ci).toEqual([lo, hi]);
      expect(lo, `${name}: ${s.k}/${s.n} flagged`).toBeLessThanOrEqual(FPR);
      expect(hi, `${name}: ${s.k}/${s.n} flagged`).toBeGreaterThanOrEqual(FPR);
    }
    const verdicts = events.filter((e): e is Extract<AuditEvent, { type: 'verdict' }> => e.type === 'verdict');
    expect(verdicts.map((v) => v.id)).toEqual(held.map((r) => r.id));
    expect(events.filter((e) => e.type === 'summary').length).toBeGreaterThanOrEqual(2);
  });
});

describe('operator, stream and service', () => {
  it('give identical verdicts for the same records', async () => {
    const viaOperator = await collect(from(records).pipe(auditAdversarial({ auditor })));
    const viaStream: AuditVerdict[] = [];
    await pipeline(
      Readable.from(records),
      createAuditStream({ auditor }),
      new Writable({
        objectMode: true,
        write(v: AuditVerdict, _e, cb) {
          viaStream.push(v);
          cb();
        },
      }),
    );
    const service = createAuditServer({ auditor });
    const { url } = await service.listen(0);
    let viaHttp: AuditVerdict[];
    try {
      const res = await fetch(`${url}/v1/audit`, { method: 'POST', body: JSON.stringify({ records: records.map(jsonRecord) }) });
      expect(res.status).toBe(200);
      viaHttp = ((await res.json()) as { verdicts: AuditVerdict[] }).verdicts;
    } finally {
      await service.close();
    }
    expect(viaOperator.map((v) => v.id)).toEqual(records.map((r) => r.id));
    expect(viaStream).toEqual(viaOperator);
    expect(viaHttp).toEqual(JSON.parse(JSON.stringify(viaOperator)));
    const v = viaOperator[0]!;
    expect(Object.keys(v.scores)).toEqual(['order-disagreement', 'feature-squeezing', 'noise-instability']);
    expect(Object.keys(v.predictions)).toHaveLength(3);
    expect(v.evidence['order-disagreement']).toHaveProperty('disagree');
    expect(typeof v.combined).toBe('number');
  });
});

/**
 * An auditor that counts what it is given and remembers each signal, over the real one; a batch
 * holding the id `hang` never finishes (until aborted).
 */
function spy(inner: Auditor, hang?: string) {
  const seen = { records: 0, signals: [] as AbortSignal[], hung: undefined as AbortSignal | undefined, active: 0, maxActive: 0 };
  const wrapped: Auditor = {
    ...inner,
    batch: 4,
    maxInFlight: 2,
    audit: async (rs, signal) => {
      seen.records += rs.length;
      if (signal) seen.signals.push(signal);
      seen.active++;
      seen.maxActive = Math.max(seen.maxActive, seen.active);
      try {
        if (hang !== undefined && rs.some((r) => r.id === hang)) {
          seen.hung = signal;
          await new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
        }
        return await inner.audit(rs, signal);
      } finally {
        seen.active--;
      }
    },
    close: async () => {},
  };
  return { wrapped, seen };
}

describe('auditAdversarial', () => {
  it('emits nothing for an empty source, one verdict for one record, and passes an error on', async () => {
    expect(await collect(EMPTY.pipe(auditAdversarial({ auditor })))).toEqual([]);
    expect((await collect(of(records[0]!).pipe(auditAdversarial({ auditor })))).map((v) => v.id)).toEqual([records[0]!.id]);
    const e = await collect(throwError(() => new Error('boom')).pipe(auditAdversarial({ auditor }))).catch((x: unknown) => x);
    expect((e as Error).message).toBe('boom');
  });

  it('fails with BAD_RECORD on a record of another shape', async () => {
    const bad: ImageRecord = { id: 'small', shape: [2, 2, 1], pixels: new Float32Array(4) };
    const e = await collect(of(records[0]!, bad).pipe(auditAdversarial({ auditor }))).catch((x: unknown) => x);
    expect(isAdvstreamError(e) && e.code).toBe('BAD_RECORD');
  });

  it('pulls a never-ending source only as far as its pool takes it, and aborts on unsubscribe', async () => {
    // Batch 1 (records e4…e7) never finishes: the output waits for it, the pool runs ahead of it
    // only as far as the bounds allow, and unsubscribing aborts it.
    const { wrapped, seen } = spy(auditor, 'e5');
    let pulled = 0;
    async function* endless(): AsyncGenerator<ImageRecord> {
      for (let i = 0; ; i++) {
        pulled++;
        yield { ...records[i % records.length]!, id: `e${i}` };
      }
    }
    const demand$ = new Subject<number>();
    const got: string[] = [];
    const sub = toObservable(endless(), { demand$ })
      .pipe(auditAdversarial({ auditor: wrapped, demand: demand$ }))
      .subscribe((v) => got.push(v.id));
    while (got.length < 4) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(got).toEqual(['e0', 'e1', 'e2', 'e3']);
    // maxInFlight 2, batch 4, one batch out: at most 1 + 2·2 batches opened.
    expect(pulled).toBeLessThanOrEqual((1 + 2 * 2) * 4 + 1);
    expect(seen.maxActive).toBeLessThanOrEqual(2);
    expect(seen.hung?.aborted).toBe(false);
    sub.unsubscribe();
    expect(seen.hung?.aborted).toBe(true);
  });
});

describe('createAuditStream', () => {
  it('makes a fast writer wait, then delivers every verdict in order', async () => {
    const { wrapped, seen } = spy(auditor);
    let pulled = 0;
    const input = Readable.from(
      (function* () {
        for (let i = 0; i < 200; i++) {
          pulled++;
          yield { ...records[i % records.length]!, id: `s${i}` };
        }
      })(),
    );
    const stream = createAuditStream({ auditor: wrapped, readableHighWaterMark: 4 });
    input.pipe(stream);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Nobody reads: the readable side fills, the write callback waits, the pipe stops pulling.
    expect(seen.records).toBeLessThanOrEqual(4 * 2 + 4 + 4);
    expect(pulled).toBeLessThan(60);
    const ids: string[] = [];
    for await (const v of stream as AsyncIterable<AuditVerdict>) ids.push(v.id);
    expect(ids).toEqual(Array.from({ length: 200 }, (_, i) => `s${i}`));
    expect(seen.maxActive).toBeLessThanOrEqual(2);
  });

  it('errors on a bad record under fail, and skips it to the rejects under skip', async () => {
    const bad = { id: 'nan', shape: [28, 28, 1], pixels: new Float32Array(784).fill(Number.NaN) } as ImageRecord;
    const failing = createAuditStream({ auditor });
    const e = await pipeline(Readable.from([records[0]!, bad]), failing, new Writable({ objectMode: true, write: (_v, _e, cb) => cb() })).catch((x: unknown) => x);
    expect(isAdvstreamError(e) && e.code).toBe('BAD_RECORD');
    const rejects: unknown[] = [];
    const ids: string[] = [];
    await pipeline(
      Readable.from([records[0]!, bad, records[1]!]),
      createAuditStream({ auditor, onBadRecord: 'skip', rejects: { write: (r) => void rejects.push(r) } }),
      new Writable({
        objectMode: true,
        write(v: AuditVerdict, _e, cb) {
          ids.push(v.id);
          cb();
        },
      }),
    );
    expect(ids).toEqual([records[0]!.id, records[1]!.id]);
    expect(rejects).toEqual([{ file: 'stream', id: 'nan', code: 'BAD_RECORD', reason: 'pixel 0 is NaN' }]);
  });
});
