/**
 * The pieces the gradient-trained families share: a tfjs optimiser over named variables whose
 * state can be checkpointed, a per-step loss, and hooks for schedules and weight constraints.
 */
import { tf, type NamedTensorMap, type Scalar, type Tensor1D, type Tensor2D, type Variable } from '../backend/index.js';
import type { Classifier } from './classifier.js';
import type { StepResult, Trainer } from './family.js';

export function toVariables(weights: NamedTensorMap): Record<string, Variable> {
  const vars: Record<string, Variable> = {};
  for (const [name, t] of Object.entries(weights)) {
    vars[name] = tf.variable(t, true, `v/${name}`);
    t.dispose();
  }
  return vars;
}

export interface OptimizerTrainerOptions {
  model: Classifier;
  variables: Record<string, Variable>;
  optimizer: tf.Optimizer;
  /** The scalar training loss of one batch; `seed` drives dropout and any noise. */
  loss: (x: Tensor2D, labels: Tensor1D, seed: number) => Scalar;
  epochStart?: (epoch: number, optimizer: tf.Optimizer) => void;
  /** Applied after every update, e.g. a max-norm constraint. */
  constrain?: () => void;
}

export function optimizerTrainer(o: OptimizerTrainerOptions): Trainer {
  const varList = Object.values(o.variables);
  return {
    model: o.model,
    variables: o.variables,
    epochStart: (epoch) => o.epochStart?.(epoch, o.optimizer),
    step(x, labels, seed): StepResult {
      const cost = o.optimizer.minimize(() => o.loss(x, labels, seed), true, varList)!;
      const loss = cost.dataSync()[0]!;
      cost.dispose();
      if (o.constrain) tf.tidy(o.constrain);
      return { loss };
    },
    async optimizerState() {
      const named = await o.optimizer.getWeights();
      return Object.fromEntries(named.map((w) => [w.name, w.tensor]));
    },
    async setOptimizerState(state) {
      await o.optimizer.setWeights(Object.entries(state).map(([name, tensor]) => ({ name, tensor })));
    },
    dispose() {
      o.optimizer.dispose();
      for (const v of varList) v.dispose();
    },
  };
}

/** Column-wise max-norm: every unit's incoming weight vector is rescaled to norm ≤ `maxNorm`. */
export function maxColumnNorm(w: Variable, maxNorm: number): void {
  const norms = tf.sqrt(tf.sum(tf.square(w), 0, true));
  const scale = tf.minimum(1, tf.div(maxNorm, tf.maximum(norms, 1e-12)));
  w.assign(tf.mul(w, scale));
}

/** Inverted dropout with a per-step seed: `x / keep` where kept, 0 elsewhere. */
export function dropout(x: Tensor2D, keep: number, seed: number): Tensor2D {
  if (keep >= 1) return x;
  const mask = tf.step(tf.sub(keep, tf.randomUniform(x.shape, 0, 1, 'float32', seed)));
  return tf.mul(x, tf.div(mask, keep));
}
