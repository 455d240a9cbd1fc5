/** The service tests' stand-in auditor and request helpers. */
import type { ImageRecord } from '../../src/data/index.js';
import { planDetectors, type Calibration } from '../../src/detect/index.js';
import type { Auditor, AuditVerdict } from '../../pipelines/index.js';
import { jsonRecord } from './audit-helpers.js';

/** An auditor that flags ids starting with `x`, and waits for `gate` when one is set (or until its signal aborts). */
export function standIn(): { auditor: Auditor; hold(): () => void; seen: string[] } {
  let gate: Promise<void> | undefined;
  const seen: string[] = [];
  const auditor: Auditor = {
    plan: planDetectors(['feature-squeezing:model=m']),
    calibration: {} as Calibration,
    info: {
      backend: 'stand-in',
      simd: false,
      mode: 'main-thread',
      workers: 1,
      batch: 4,
      fpr: 0.01,
      detectors: ['feature-squeezing:model=m'],
      combined: null,
      models: [],
      calibration: { file: null, reused: true, source: null, n: {}, thresholds: {} },
    },
    shape: [28, 28, 1],
    batch: 4,
    maxInFlight: 2,
    audit: async (rs, signal) => {
      seen.push(...rs.map((r) => r.id));
      if (gate && signal) {
        await Promise.race([gate, new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))]);
      } else await gate;
      return rs.map(
        (r): AuditVerdict => ({
          id: r.id,
          flagged: r.id.startsWith('x'),
          combined: null,
          scores: { 'feature-squeezing': r.id.startsWith('x') ? 1 : 0 },
          flags: { 'feature-squeezing': r.id.startsWith('x') },
          predictions: {},
          evidence: {},
        }),
      );
    },
    close: async () => {},
  };
  return {
    auditor,
    seen,
    hold() {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

export async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${url}/v1/audit`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

export const body = (rs: readonly ImageRecord[], ids?: string[]) => JSON.stringify({ records: rs.map((r, i) => ({ ...jsonRecord(r), ...(ids ? { id: ids[i] } : {}) })) });

