/**
 * Energy, for Dense Associative Memories (Krotov & Hopfield, arXiv:1701.00939): a trained DAM's
 * memories are prototypes of the digits, and its energy is low on images near them and high on
 * images that match none, as adversarial perturbations spread over the background do.
 *
 * Score, per record, by `source`:
 * - `energy` (needs {@link EnergyModel}): β·E at the input's lowest one-hot label state, −max_α Σ_μ
 *   relu((s_μ + 2ξ^μ_α)/T)^n (see the extension). Evidence: `predicted`, `energy`.
 * - `gap` (any model): −max_α s_α(x). For a DAM, s_α = β[E(v, all off) − E(v, e_α)] is the energy
 *   drop from switching class α on, so this is the energy of the best label state measured from the
 *   all-off state; for other models it is the negated largest logit. Evidence: `predicted`, `gap`.
 * - `auto` (default): `energy` when the model has the extension, else `gap`; fixed when the plan is
 *   bound, so that a calibration records which one it measured.
 */
import { tf, type Tensor1D } from '../backend/index.js';
import type { ParamSchema } from '../attacks/params.js';
import { Errors } from '../errors.js';
import { modelDetector, oneModel, type ScoreTensors } from './detector.js';

export const ENERGY_PARAMS = {
  source: {
    type: 'enum',
    values: ['auto', 'energy', 'gap'],
    default: 'auto',
    doc: 'energy (the DAM energy; needs energy(x)), gap (the negated largest energy gap, from the scores), or auto',
  },
} as const satisfies ParamSchema;

export const energy = modelDetector({
  name: 'energy',
  summary: 'Krotov & Hopfield 2018: the DAM energy of the input at its best label state (fallback: negated largest energy gap)',
  params: ENERGY_PARAMS,
  roles: [{ name: 'model', many: false, defaults: ['zoo:dam-n20'], doc: 'the DAM model' }],
  bind(params, models) {
    const model = oneModel(models, 'model');
    if (params.source === 'auto') return { ...params, source: model.energy ? 'energy' : 'gap' };
    if (params.source === 'energy' && !model.energy) {
      throw Errors.badModel(model.id, `energy source=energy needs the model's energy (engine ${model.engine} has none)`);
    }
    return params;
  },
  async score(models, x, params, scope): Promise<ScoreTensors> {
    const model = oneModel(models, 'model');
    const scores = await scope.scores(model, x);
    if (params.source === 'gap') {
      return scope.tidy(() => {
        const gap = tf.max(scores, 1) as Tensor1D;
        return { score: tf.neg(gap) as Tensor1D, evidence: { predicted: tf.argMax(scores, 1), gap } };
      });
    }
    if (!model.energy) throw Errors.badModel(model.id, `energy source=${params.source} needs the model's energy`);
    const e = scope.own(await model.energy(x));
    return scope.tidy(() => ({ score: e, evidence: { predicted: tf.argMax(scores, 1), energy: e } }));
  },
});
