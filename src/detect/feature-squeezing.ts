/**
 * Feature squeezing: Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep
 * Neural Networks", NDSS 2018. Squeezing removes the fine detail an adversarial perturbation lives
 * in, so an adversarial image's prediction moves much more under it than a clean image's.
 *
 * Score, per record: max over the enabled squeezers q of ‖softmax(s(x)) − softmax(s(q(x)))‖₁, in
 * [0, 2]. Squeezers, the paper's MNIST choice by default: bit-depth reduction to `bits` = 1 bit
 * (round(x·(2^bits−1))/(2^bits−1); `bits=0` turns it off) and 2×2 median smoothing (`median=2x2`,
 * the mean of the middle two of the four window values; `median=none` turns it off). Evidence: the
 * prediction `predicted` and the L1 distance per enabled squeezer `l1`, in that order.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import type { ParamSchema } from '../attacks/params.js';
import { Errors } from '../errors.js';
import { modelDetector, oneModel } from './detector.js';
import { median2x2, reduceBitDepth, softmaxL1 } from './ops.js';

export const FEATURE_SQUEEZING_PARAMS = {
  bits: { type: 'int', min: 0, max: 8, default: 1, doc: 'bit depth of the bit-depth squeezer; 0 turns it off' },
  median: { type: 'enum', values: ['2x2', 'none'], default: '2x2', doc: '2x2 median smoothing, or none' },
} as const satisfies ParamSchema;

export const featureSqueezing = modelDetector({
  name: 'feature-squeezing',
  summary: 'Xu et al. 2018: max L1 distance between the softmax on x and on squeezed x (1-bit depth, 2x2 median)',
  params: FEATURE_SQUEEZING_PARAMS,
  roles: [{ name: 'model', many: false, defaults: ['zoo:mlp-relu'], doc: 'the model whose softmax is compared' }],
  bind(params, models) {
    const model = oneModel(models, 'model');
    if (params.bits === 0 && params.median === 'none') {
      throw Errors.badArgument('feature-squeezing needs a squeezer: bits > 0 or median=2x2', { params });
    }
    const [h, w] = model.inputShape;
    if (params.median === '2x2' && (h < 2 || w < 2)) throw Errors.badModel(model.id, `a ${h}×${w} input has no 2×2 window`);
    return params;
  },
  async score(models, x, params, scope) {
    const model = oneModel(models, 'model');
    const clean = await scope.scores(model, x);
    const squeezed: Tensor2D[] = [];
    if (params.bits > 0) squeezed.push(scope.tidy(() => reduceBitDepth(x, params.bits)));
    if (params.median === '2x2') squeezed.push(scope.tidy(() => median2x2(x, model.inputShape)));
    const onSqueezed: Tensor2D[] = [];
    for (const q of squeezed) onSqueezed.push(await scope.scores(model, q));
    return scope.tidy(() => {
      const l1 = tf.stack(onSqueezed.map((s) => softmaxL1(clean, s)), 1);
      return { score: tf.max(l1, 1) as Tensor1D, evidence: { predicted: tf.argMax(clean, 1), l1 } };
    });
  },
});
