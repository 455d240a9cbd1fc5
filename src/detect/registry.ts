/**
 * The detector registry: one registration list, keyed by the names that spec strings use
 * (`noise-instability:sigma=0.05,copies=32`), shared by the CLI, the pipelines and the library.
 */
import { Errors } from '../errors.js';
import { combined } from './combined.js';
import type { CombinerEntry, DetectorEntry, ModelDetectorEntry } from './detector.js';
import { energy } from './energy.js';
import { featureSqueezing } from './feature-squeezing.js';
import { noiseInstability } from './noise-instability.js';
import { orderDisagreement } from './order-disagreement.js';
import { prototypeDistance } from './prototype-distance.js';

/** Every detector, registered here and only here. */
export const DETECTORS: readonly DetectorEntry[] = [
  orderDisagreement,
  featureSqueezing,
  noiseInstability,
  prototypeDistance,
  energy,
  combined,
];

const BY_NAME = new Map(DETECTORS.map((e) => [e.name, e]));

/** The registered names, in registration order. */
export function detectorNames(): string[] {
  return DETECTORS.map((e) => e.name);
}

/** A registered detector's entry (roles, parameters with defaults and ranges), for help texts. */
export function getDetectorEntry(name: string): DetectorEntry | undefined {
  return BY_NAME.get(name);
}

export function modelDetectorEntry(name: string): ModelDetectorEntry {
  const e = BY_NAME.get(name);
  if (e?.kind !== 'model') {
    throw Errors.badSpec(name, 'not a model detector', DETECTORS.filter((d) => d.kind === 'model').map((d) => d.name));
  }
  return e;
}

export function combinerEntry(name: string): CombinerEntry {
  const e = BY_NAME.get(name);
  if (e?.kind !== 'combined') {
    throw Errors.badSpec(name, 'not a combined score', DETECTORS.filter((d) => d.kind === 'combined').map((d) => d.name));
  }
  return e;
}
