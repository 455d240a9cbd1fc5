/**
 * Optional methods a model family may add to its {@link Classifier} so that the prototype-distance
 * and energy detectors can read what the scores hide. A runner offers them as capabilities
 * (`runner.energy`, `runner.embedding`: see `models/runner.ts`), computed natively or by the tfjs
 * runner behind a native one; a detector asks the runner, never its classifier, and falls back to a
 * score-only proxy when the runner has none. The variant used is fixed when a plan is bound and
 * recorded in its calibration.
 */
import type { EnergyClassifier, PrototypeClassifier } from '../models/classifier.js';

export { hasEmbedding, hasEnergy } from '../models/runner.js';

/** A Dense Associative Memory that reports its energy (see the dam family). */
export type EnergyModel = EnergyClassifier;

/** A prototype model (Deep Repulsive Prototypes) that exposes its embedding and prototypes. */
export type EmbeddingModel = PrototypeClassifier;
