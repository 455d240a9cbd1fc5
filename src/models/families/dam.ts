/**
 * Dense Associative Memory (Krotov & Hopfield 2016, arXiv:1606.01164; adversarial study
 * arXiv:1701.00939): K memories ξ^μ ∈ [-1,1]^794 over 784 visible and 10 label neurons, energy
 * −Σ_μ F_n(ξ^μ·σ) with the rectified polynomial F_n, and the one-step classifier
 *   c_α = tanh(β Σ_μ [F_n(s_μ + 2ξ^μ_α) − F_n(s_μ)]),  s_μ = ξ^μ_v·v − Σ_γ ξ^μ_γ,  β = 1/T^n.
 * β·F_n(x) is computed as relu(x/T)^n, never x^n, so that n = 30 stays inside float32.
 * Trained as the authors' notebook does: loss Σ(c−t)^(2m), momentum on the descent direction, and a
 * per-memory normalised step whose largest component is exactly ε_t, then clipping to [-1,1].
 */
import { tf, type NamedTensorMap, type Tensor, type Tensor1D, type Tensor2D, type Variable } from '../../backend/index.js';
import type { EnergyClassifier, LossName } from '../classifier.js';
import { crossEntropy, dense, freezeDense, intPow, rectPow, type DenseWeights } from '../ops.js';
import { z } from 'zod';
import { Errors } from '../../errors.js';
import { buildConfig, inputShapeSchema, typedConfig, type Family, type FamilyConfig, type Trainer } from '../family.js';
import { toVariables } from '../train-kit.js';

/** Per-n settings from the authors' notebook (n = 20) and its public copies (n = 2, 3); n = 30 is ours. */
const PER_N: Record<number, { m: number; tStart: number; tEnd: number; tRamp: number }> = {
  2: { m: 30, tStart: 540, tEnd: 540, tRamp: 0 },
  3: { m: 10, tStart: 400, tEnd: 100, tRamp: 100 },
  20: { m: 30, tStart: 540, tEnd: 540, tRamp: 0 },
  30: { m: 30, tStart: 560, tEnd: 560, tRamp: 0 },
};

/**
 * A DAM's config. The loss power and the temperature schedule, when absent, are the per-n settings
 * (as `configure` fills them), so that every engine computes one temperature from one config.
 */
export const damConfigSchema = z
  .object({
    inputShape: inputShapeSchema,
    classes: z.number().int().positive(),
    n: z.number().int().positive(),
    K: z.number().int().positive(),
    m: z.number().int().positive().optional(),
    /** Temperature ramps linearly from tStart to tEnd over tRamp epochs, then stays at tEnd. */
    tStart: z.number().positive().optional(),
    tEnd: z.number().positive().optional(),
    tRamp: z.number().int().optional(),
    eps0: z.number().positive().default(0.04),
    epsDecay: z.number().positive().default(0.998),
    momentum: z.number().nonnegative().default(0.6),
    initMean: z.number().default(-0.3),
    initStd: z.number().positive().default(0.3),
  })
  .transform((c) => {
    const per = PER_N[c.n] ?? PER_N[20]!;
    return { ...c, m: c.m ?? per.m, tStart: c.tStart ?? per.tStart, tEnd: c.tEnd ?? per.tEnd, tRamp: c.tRamp ?? per.tRamp };
  });

export type DamConfig = z.output<typeof damConfigSchema>;

function asDam(config: FamilyConfig): DamConfig {
  return typedConfig(damConfigSchema, config, 'dam');
}

/** The temperature at `epoch` (0-based; `Infinity`: after training, the one a trained model scores at). */
export function damTemperature(c: DamConfig, epoch: number): number {
  if (c.tRamp <= 0 || epoch >= c.tRamp) return c.tEnd;
  return c.tStart + ((c.tEnd - c.tStart) * epoch) / c.tRamp;
}

interface DamWeights {
  visible: DenseWeights; // xi_v [784, K]
  label: Tensor2D; // xi_c [10, K]
}

/**
 * Per class α, β Σ_μ F_n(s_μ + 2ξ^μ_α): the (negated, β-scaled) energy with label α on and the other
 * labels off, `gain` `[B, 10]`; and the all-off term β Σ_μ F_n(s_μ), `base` `[B, 1]`.
 */
function damTerms(w: DamWeights, c: DamConfig, x: Tensor2D, temperature: number): { gain: Tensor2D; base: Tensor2D } {
  const v = tf.sub(tf.mul(x, 2), 1) as Tensor2D; // pixels [0,1] → DAM's [-1,1]
  const s = tf.sub(dense(v, w.visible), tf.sum(w.label, 0)) as Tensor2D; // [B, K]
  const on = tf.add(tf.expandDims(s, 2), tf.mul(2, tf.transpose(w.label))); // [B, K, 10]
  return {
    gain: tf.sum(rectPow(tf.div(on, temperature), c.n), 1) as Tensor2D,
    base: tf.sum(rectPow(tf.div(s, temperature), c.n), 1, true) as Tensor2D,
  };
}

/** The pre-tanh class scores β Σ_μ [F_n(s_μ + 2ξ^μ_α) − F_n(s_μ)], `[B, 10]`. */
function damLogits(w: DamWeights, c: DamConfig, x: Tensor2D, temperature: number): Tensor2D {
  const { gain, base } = damTerms(w, c, x, temperature);
  return tf.sub(gain, base) as Tensor2D;
}

/** Σ_α (c_α − t_α)^(2m) per sample, with t = +1 at the label and −1 elsewhere. */
function damLoss(logits: Tensor2D, labels: Tensor1D, c: DamConfig): Tensor1D {
  const t = tf.sub(tf.mul(tf.oneHot(tf.cast(labels, 'int32'), c.classes), 2), 1);
  return tf.sum(intPow(tf.sub(tf.tanh(logits), t), 2 * c.m), 1) as Tensor1D;
}

function damClassifier(id: string, c: DamConfig, w: DamWeights, temperature: () => number, owned: Tensor[]): EnergyClassifier {
  return {
    id,
    family: 'dam',
    inputShape: c.inputShape,
    numClasses: c.classes,
    scores: (x) => damLogits(w, c, x, temperature()),
    energy: (x) => tf.neg(tf.max(damTerms(w, c, x, temperature()).gain, 1)) as Tensor1D,
    loss(name: LossName, x, labels) {
      const logits = damLogits(w, c, x, temperature());
      return name === 'model' ? damLoss(logits, labels, c) : crossEntropy(logits, labels);
    },
    dispose() {
      w.visible.wT?.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

function damTrainer(c: DamConfig, weights: NamedTensorMap): Trainer {
  const variables = toVariables(weights);
  const xiV = variables.xi_v!;
  const xiC = variables.xi_c!;
  const velocity: Record<string, Variable> = {
    'velocity/xi_v': tf.variable(tf.zerosLike(xiV), false),
    'velocity/xi_c': tf.variable(tf.zerosLike(xiC), false),
  };
  let temperature = damTemperature(c, 0);
  let eps = c.eps0;
  const w: DamWeights = { visible: { w: xiV as Tensor2D }, label: xiC as Tensor2D };
  const model = damClassifier('training', c, w, () => temperature, []);
  return {
    model,
    variables,
    epochStart(epoch) {
      temperature = damTemperature(c, epoch);
      eps = c.eps0 * c.epsDecay ** epoch;
    },
    step(x, labels) {
      const loss = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(damLoss(damLogits(w, c, x, temperature), labels, c)), [xiV, xiC]);
        const vV = velocity['velocity/xi_v']!;
        const vC = velocity['velocity/xi_c']!;
        vV.assign(tf.sub(tf.mul(vV, c.momentum), grads[xiV.name]!));
        vC.assign(tf.sub(tf.mul(vC, c.momentum), grads[xiC.name]!));
        // Per memory μ (a column), the largest component change is exactly ε.
        const rowMax = tf.maximum(tf.maximum(tf.max(tf.abs(vV), 0), tf.max(tf.abs(vC), 0)), 1e-30);
        const scale = tf.div(eps, rowMax);
        xiV.assign(tf.clipByValue(tf.add(xiV, tf.mul(vV, scale)), -1, 1));
        xiC.assign(tf.clipByValue(tf.add(xiC, tf.mul(vC, scale)), -1, 1));
        return value.dataSync()[0]!;
      });
      return { loss: loss / x.shape[0] };
    },
    async optimizerState() {
      return { ...velocity };
    },
    async setOptimizerState(state) {
      for (const [name, v] of Object.entries(velocity)) if (state[name]) v.assign(state[name]!);
    },
    dispose() {
      for (const v of [...Object.values(variables), ...Object.values(velocity)]) v.dispose();
    },
  };
}

export const damFamily: Family = {
  name: 'dam',
  summary: 'Dense Associative Memory: rectified-polynomial energy of power n over K memories, one-step classifier',
  options: [
    { name: 'n', type: 'int', default: 20, help: 'interaction power n of F_n(x) = relu(x)^n' },
    { name: 'K', type: 'int', default: 100, help: 'number of memories' },
    { name: 'm', type: 'int', default: 0, help: 'loss power: sum (c-t)^(2m) (0: per-n default)' },
    { name: 't-start', type: 'float', default: 0, help: 'initial temperature T (0: per-n default)' },
    { name: 't-end', type: 'float', default: 0, help: 'final temperature T (0: per-n default)' },
    { name: 't-ramp', type: 'int', default: -1, help: 'epochs of the linear temperature ramp (-1: per-n default)' },
    { name: 'eps0', type: 'float', default: 0.04, help: 'initial step ε0 (largest change per memory)' },
    { name: 'eps-decay', type: 'float', default: 0.998, help: 'ε_t = ε0 · f^t' },
    { name: 'momentum', type: 'float', default: 0.6, help: 'momentum p' },
  ],
  training: { epochs: 300, batch: 1000 },
  schema: damConfigSchema,
  configure(o) {
    const n = Number(o.n ?? 20);
    if (!Number.isInteger(n) || n < 1) throw Errors.badArgument(`n must be a positive integer, not ${o.n}`);
    const per = PER_N[n] ?? PER_N[20]!;
    const pick = (key: string, fallback: number, unset: number) => {
      const v = o[key];
      return v === undefined || Number(v) === unset ? fallback : Number(v);
    };
    return {
      inputShape: [28, 28, 1],
      classes: 10,
      n,
      K: Number(o.K ?? 100),
      m: pick('m', per.m!, 0),
      tStart: pick('t-start', per.tStart!, 0),
      tEnd: pick('t-end', per.tEnd!, 0),
      tRamp: pick('t-ramp', per.tRamp!, -1),
      eps0: Number(o.eps0 ?? 0.04),
      epsDecay: Number(o['eps-decay'] ?? 0.998),
      momentum: Number(o.momentum ?? 0.6),
      initMean: -0.3,
      initStd: 0.3,
    } satisfies DamConfig;
  },
  init(config, seed) {
    const c = asDam(config);
    const [h, w, ch] = c.inputShape;
    return tf.tidy(() => ({
      xi_v: tf.clipByValue(tf.randomNormal([h * w * ch, c.K], c.initMean, c.initStd, 'float32', seed), -1, 1),
      xi_c: tf.clipByValue(tf.randomNormal([c.classes, c.K], c.initMean, c.initStd, 'float32', seed + 1), -1, 1),
    }));
  },
  build(id, config, weights) {
    const c = buildConfig(damConfigSchema, config, id, weights);
    const w: DamWeights = { visible: freezeDense({ w: weights.xi_v as Tensor2D }), label: weights.xi_c as Tensor2D };
    const temperature = damTemperature(c, Number.POSITIVE_INFINITY);
    return damClassifier(id, c, w, () => temperature, Object.values(weights));
  },
  trainer: (config, weights) => damTrainer(asDam(config), weights),
  notes(config) {
    const c = asDam(config);
    const source = c.n === 20 ? "Krotov's notebook" : c.n === 2 || c.n === 3 ? 'third-party copies of the notebook' : 'our choice (spec gap)';
    return [
      `n=${c.n}, K=${c.K}, m=${c.m}, T ${c.tStart}→${c.tEnd} over ${c.tRamp} epochs: settings from ${source}; the adversarial paper's own K, T, m are a spec gap`,
      'scores are the pre-tanh energy gaps β Σ_μ[F_n(s+2ξ_α) − F_n(s)]; loss=ce is cross-entropy over them, loss=model is Σ(c−t)^(2m)',
      'init ξ ~ N(−0.3, 0.3) clipped to [−1,1]; batch 1000; ε_t = ε0·f^t; momentum 0.6; per-memory normalised step',
    ];
  },
};
