/**
 * Optional methods a model family may add to its {@link Classifier} so that the prototype-distance
 * and energy detectors can read what the scores hide. A detector uses them when present and falls
 * back to a score-only proxy otherwise; the variant used is fixed when a plan is bound and recorded in
 * its calibration. Like every Classifier method, each returns new tensors owned by the caller.
 *
 * They are tfjs methods: a detector finds them on the tfjs classifier behind a {@link ModelRunner}
 * (`runner.classifier`), which a zoo model has on the tfjs engine and under `--engine auto`; a
 * user's ONNX model and a zoo model under `--engine onnx` have none, and get the score-only proxy.
 */
import type { Classifier, EnergyClassifier, PrototypeClassifier } from '../models/classifier.js';
import type { ModelRunner } from '../models/runner.js';

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

/** The tfjs classifier behind a runner when it offers `energy(x)`. */
export function energyOf(model: ModelRunner): EnergyModel | undefined {
  return model.classifier && hasEnergy(model.classifier) ? model.classifier : undefined;
}

/** The tfjs classifier behind a runner when it offers `embed(x)` and `prototypes()`. */
export function embeddingOf(model: ModelRunner): EmbeddingModel | undefined {
  return model.classifier && hasEmbedding(model.classifier) ? model.classifier : undefined;
}
