/**
 * Prototype distance, for Deep Repulsive Prototypes (Serban, Poll & Visser, arXiv:2105.12427): the
 * backbone is trained to put each image on its class prototype, so an image whose embedding is far
 * from every prototype is off the data the model learnt.
 *
 * Score, per record, by `source`:
 * - `embedding` (needs {@link EmbeddingModel}): min_c ‖f(x) − p_c‖ in `norm` (L∞ by default, the
 *   norm of DRP's prototype loss; or L2). Evidence: `nearest` (the class of the nearest prototype),
 *   `distance`, `predicted`.
 * - `margin` (any model): −(s_(1) − s_(2)), the top-two score gap negated: a DRP's scores are the
 *   inner products ⟨f(x), p_c⟩, and without ‖f(x)‖ the gap between the best two is what is left of
 *   the geometry. Evidence: `predicted`, `margin`.
 * - `auto` (default): `embedding` when the model has the extension, else `margin`; fixed when the
 *   plan is bound, so that a calibration records which one it measured.
 */
import { tf, type Tensor1D } from '../backend/index.js';
import type { ParamSchema } from '../attacks/params.js';
import { Errors } from '../errors.js';
import { modelDetector, oneModel, type ScoreTensors } from './detector.js';
import { topTwoGap } from './ops.js';

export const PROTOTYPE_DISTANCE_PARAMS = {
  source: {
    type: 'enum',
    values: ['auto', 'embedding', 'margin'],
    default: 'auto',
    doc: 'embedding (distance to the nearest prototype; needs embed/prototypes), margin (top-two score gap), or auto',
  },
  norm: { type: 'enum', values: ['linf', 'l2'], default: 'linf', doc: 'norm of the embedding distance' },
} as const satisfies ParamSchema;

export const prototypeDistance = modelDetector({
  name: 'prototype-distance',
  summary: 'DRP (Serban et al. 2021): distance of the embedding to its nearest prototype (fallback: negated top-two score gap)',
  params: PROTOTYPE_DISTANCE_PARAMS,
  roles: [{ name: 'model', many: false, defaults: ['zoo:drp'], doc: 'the prototype model (DRP)' }],
  bind(params, models) {
    const model = oneModel(models, 'model');
    if (model.numClasses < 2) throw Errors.badModel(model.id, 'a score gap needs at least two classes');
    if (params.source === 'auto') return { ...params, source: model.embedding ? 'embedding' : 'margin' };
    if (params.source === 'embedding' && !model.embedding) {
      throw Errors.badModel(model.id, `prototype-distance source=embedding needs the model's embedding and prototypes (engine ${model.engine} has none)`);
    }
    return params;
  },
  async score(models, x, params, scope): Promise<ScoreTensors> {
    const model = oneModel(models, 'model');
    const scores = await scope.scores(model, x);
    if (params.source === 'margin') {
      return scope.tidy(() => {
        const margin = topTwoGap(scores);
        return { score: tf.neg(margin) as Tensor1D, evidence: { predicted: tf.argMax(scores, 1), margin } };
      });
    }
    if (!model.embedding) throw Errors.badModel(model.id, `prototype-distance source=${params.source} needs the model's embedding and prototypes`);
    const embedded = scope.own(await model.embedding.embed(x));
    const prototypes = scope.own(await model.embedding.prototypes());
    return scope.tidy(() => {
      const diff = tf.sub(tf.expandDims(embedded, 1), tf.expandDims(prototypes, 0)); // [B, C, d]
      const dist = params.norm === 'l2' ? tf.sqrt(tf.sum(tf.square(diff), 2)) : tf.max(tf.abs(diff), 2);
      const distance = tf.min(dist, 1) as Tensor1D;
      return { score: distance, evidence: { nearest: tf.argMin(dist, 1), distance, predicted: tf.argMax(scores, 1) } };
    });
  },
});
