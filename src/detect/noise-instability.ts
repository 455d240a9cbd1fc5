/**
 * Noise instability. Adversarial images tend to sit just past a decision boundary that the attack
 * found, so small random noise moves the model's output much more than on clean images, which sit
 * deep inside their class (the observation behind Hu et al. 2019 and Roth et al. 2019's
 * noise-based statistics).
 *
 * Score, per record: the mean over K noisy copies x_k = clip(x + η_k, 0, 1), η_k uniform in
 * [−σ, σ]^D, of the total-variation distance ½‖softmax(s(x_k)) − softmax(s(x))‖₁, in [0, 1].
 * Defaults: σ = `sigma` = 0.1 (pixels in [0, 1]), K = `copies` = 16. The K noise vectors are drawn
 * once per call from `seed` and shared by every record of the batch, so that a record's score
 * depends only on the record and the seed, never on its batch or its position in it. Evidence: the
 * prediction `predicted` and `flips`, the fraction of copies whose prediction differs from it.
 */
import { tf, type Tensor, type Tensor1D, type Tensor2D } from '../backend/index.js';
import type { ParamSchema } from '../attacks/params.js';
import { deriveSeed, Rng } from '../attacks/rng.js';
import { inputSize } from '../models/classifier.js';
import { modelDetector, oneModel } from './detector.js';

export const NOISE_INSTABILITY_PARAMS = {
  sigma: { type: 'number', min: 0, max: 1, exclusiveMin: true, default: 0.1, doc: 'noise half-width σ: uniform in [−σ, σ] per pixel' },
  copies: { type: 'int', min: 1, max: 256, default: 16, doc: 'noisy copies K per record' },
  seed: { type: 'int', min: 0, max: 2 ** 31 - 1, default: 0, doc: 'seed of the noise' },
} as const satisfies ParamSchema;

export const noiseInstability = modelDetector({
  name: 'noise-instability',
  summary: 'mean total-variation change of the softmax over K uniform ±σ noisy copies (σ=0.1, K=16)',
  params: NOISE_INSTABILITY_PARAMS,
  roles: [{ name: 'model', many: false, defaults: ['zoo:mlp-relu'], doc: 'the model whose stability is measured' }],
  async score(models, x, params, scope) {
    const model = oneModel(models, 'model');
    const dim = inputSize(model);
    const noise = new Rng(deriveSeed(params.seed, 1)).uniforms(params.copies * dim, -params.sigma, params.sigma);
    const clean = await scope.scores(model, x);
    const { p0, pred0 } = scope.tidy(() => ({ p0: tf.softmax(clean), pred0: tf.argMax(clean, 1) }));
    let tv: Tensor = scope.tidy(() => tf.zeros([x.shape[0]]));
    let flips: Tensor = scope.tidy(() => tf.zeros([x.shape[0]]));
    for (let k = 0; k < params.copies; k++) {
      // One copy at a time, each step's tensors dropped as the next is made: memory stays at one batch, whatever K is.
      const noisy = scope.tidy(() => tf.clipByValue(tf.add(x, tf.tensor2d(noise.subarray(k * dim, (k + 1) * dim), [1, dim])), 0, 1) as Tensor2D);
      const s = await scope.scores(model, noisy);
      const [tvPrev, flipsPrev] = [tv, flips];
      ({ tv, flips } = scope.tidy(() => ({
        tv: tf.add(tvPrev, tf.mul(0.5, tf.sum(tf.abs(tf.sub(tf.softmax(s), p0)), 1))),
        flips: tf.add(flipsPrev, tf.cast(tf.notEqual(tf.argMax(s, 1), pred0), 'float32')),
      })));
      scope.drop(noisy, s, tvPrev, flipsPrev);
    }
    const [tvSum, flipSum] = [tv, flips];
    return scope.tidy(() => ({
      score: tf.div(tvSum, params.copies) as Tensor1D,
      evidence: { predicted: pred0, flips: tf.div(flipSum, params.copies) },
    }));
  },
});
