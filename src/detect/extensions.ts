/**
 * Optional methods a model family may add to its {@link Classifier} so that the prototype-distance
 * and energy detectors can read what the scores hide. A detector uses them when present and falls
 * back to a score-only proxy otherwise; the variant used is fixed when a plan is bound and recorded in
 * its calibration. Like every Classifier method, each returns new tensors owned by the caller.
 */
import type { Classifier, EnergyClassifier, PrototypeClassifier } from '../models/classifier.js';

/** A Dense Associative Memory that reports its energy (see the dam family). */
export type EnergyModel = EnergyClassifier;

/** A prototype model (Deep Repulsive Prototypes) that exposes its embedding and prototypes. */
export type EmbeddingModel = PrototypeClassifier;

/**
 * Whether a model offers `energy(x)`.
 *
 * @example
 *   hasEnergy(await loadClassifier('zoo:dam-n20')); // true once the dam family implements it
 */
export function hasEnergy(model: Classifier): model is EnergyModel {
  return typeof (model as Partial<EnergyModel>).energy === 'function';
}

/** Whether a model offers `embed(x)` and `prototypes()`. */
export function hasEmbedding(model: Classifier): model is EmbeddingModel {
  const m = model as Partial<EmbeddingModel>;
  return typeof m.embed === 'function' && typeof m.prototypes === 'function';
}
