/**
 * What the audit tests share: the detect tests' small trained models (a 784-64-10 MLP and DAMs of
 * order 20 and 30, cached in test-artifacts/detect/), detector specs naming them by folder, and
 * MNIST test records by position.
 */
import { initBackend } from '../../src/backend/index.js';
import { openSource, type ImageRecord } from '../../src/data/index.js';
import { modelDir } from '../detect/helpers.js';

export interface AuditModels {
  mlp: string;
  dam20: string;
  dam30: string;
}

/** The folders of the three small models (trained on first use, on the wasm backend). */
export async function auditModels(): Promise<AuditModels> {
  await initBackend({ backend: 'wasm' });
  return { mlp: await modelDir('mlp'), dam20: await modelDir('dam-n20'), dam30: await modelDir('dam-n30') };
}

/** The default detectors of the audit, on the small models. */
export function auditDetectors(m: AuditModels, combined = true): string[] {
  return [
    `order-disagreement:low=${m.mlp},high=${m.dam20}+${m.dam30}`,
    `feature-squeezing:model=${m.mlp}`,
    `noise-instability:model=${m.mlp}`,
    ...(combined ? ['combined'] : []),
  ];
}

/** MNIST test records at the positions `keep` accepts, at most `limit` of them. */
export async function mnistRecords(keep: (position: number) => boolean, limit: number): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  let position = 0;
  for await (const record of openSource('mnist:test')) {
    if (keep(position++)) out.push(record);
    if (out.length >= limit) break;
  }
  return out;
}

/** A record as the service and `ndjson:` take it. */
export function jsonRecord(r: ImageRecord): Record<string, unknown> {
  return { id: r.id, ...(r.label !== undefined ? { label: r.label } : {}), pixels: Array.from(r.pixels), shape: r.shape };
}
