/**
 * Order disagreement: the audit proposed by Krotov & Hopfield, "Dense Associative Memory is Robust
 * to Adversarial Inputs" (arXiv:1701.00939; seeds-spec §1.7). Adversarial images made against
 * low-order models (a ReLU network, DAM n = 2, 3) mostly do not fool high-order DAMs (n = 20, 30), so
 * on such an image the two orders disagree, where on a clean image they agree.
 *
 * Score, per record: max over the high models h of D(q_low, q_h), where
 * - q_m = softmax(κ·(s_m − mean s_m)/sd s_m) with `normalize=zscore` (default, κ = `sharpness` = 4):
 *   each model's scores standardised across the classes, because the orders' scores live on unrelated
 *   scales (a DAM's pre-tanh energy gaps span about ±0.5, so its raw softmax is nearly flat and any
 *   divergence from it would measure the scale, not the disagreement); κ = 4 puts a clear winner's
 *   logit ~12 above the rest;
 * - q_m = softmax(s_m) with `normalize=none` (for models whose softmaxes are calibrated confidences);
 * - D is the Jensen–Shannon divergence in nats (`divergence=js`, default; in [0, ln 2]) or the
 *   symmetric KL (`divergence=skl`).
 * Evidence: the low model's prediction `low`, each high model's `high`, the divergence to each
 * `divergence`, and `disagree` (some high prediction differs from the low one).
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import type { ParamSchema } from '../attacks/params.js';
import { Errors } from '../errors.js';
import { modelDetector, oneModel, roleModelsOf } from './detector.js';
import { softmaxDivergence, standardizeRows } from './ops.js';

export const ORDER_DISAGREEMENT_PARAMS = {
  divergence: {
    type: 'enum',
    values: ['js', 'skl'],
    default: 'js',
    doc: 'js (Jensen–Shannon, bounded by ln 2) or skl (symmetric KL) between the two softmaxes',
  },
  normalize: {
    type: 'enum',
    values: ['zscore', 'none'],
    default: 'zscore',
    doc: 'zscore: standardise each model\'s scores across classes (times sharpness) before the softmax; none: raw softmax',
  },
  sharpness: { type: 'number', min: 0, max: 100, exclusiveMin: true, default: 4, doc: 'κ, the scale of standardised scores (normalize=zscore)' },
} as const satisfies ParamSchema;

export const orderDisagreement = modelDetector({
  name: 'order-disagreement',
  summary:
    'Krotov & Hopfield 2018: max over high-order models of the JS divergence between the low- and high-order softmaxes of standardised scores',
  params: ORDER_DISAGREEMENT_PARAMS,
  roles: [
    { name: 'low', many: false, defaults: ['zoo:mlp-relu'], doc: 'the low-order model (ReLU MLP or DAM n=2)' },
    { name: 'high', many: true, defaults: ['zoo:dam-n20', 'zoo:dam-n30'], doc: 'high-order DAM models (n=20, n=30)' },
  ],
  bind(params, models) {
    const low = oneModel(models, 'low');
    for (const h of roleModelsOf(models, 'high')) {
      if (h.numClasses !== low.numClasses) {
        throw Errors.badModel(h.id, `has ${h.numClasses} classes where the low-order model ${low.id} has ${low.numClasses}`);
      }
    }
    return params;
  },
  async score(models, x, params, scope) {
    const logits = (s: Tensor2D) => (params.normalize === 'zscore' ? standardizeRows(s, params.sharpness) : s);
    const sLow = await scope.scores(oneModel(models, 'low'), x);
    const highs: Tensor2D[] = [];
    for (const h of roleModelsOf(models, 'high')) highs.push(await scope.scores(h, x));
    return scope.tidy(() => {
      const divergence = tf.stack(highs.map((s) => softmaxDivergence(logits(sLow), logits(s), params.divergence)), 1);
      const lowPred = tf.argMax(sLow, 1);
      const highPred = tf.stack(highs.map((s) => tf.argMax(s, 1)), 1);
      const disagree = tf.any(tf.notEqual(highPred, tf.expandDims(lowPred, 1)), 1);
      return {
        score: tf.max(divergence, 1) as Tensor1D,
        evidence: { low: lowPred, high: highPred, divergence, disagree },
      };
    });
  },
});
