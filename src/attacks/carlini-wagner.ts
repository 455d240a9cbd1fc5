/** Carlini–Wagner L2 (Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", S&P 2017). */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { MinimizationAttack, type SearchContext, type SearchOutput } from './base.js';
import { L2 } from './distances.js';
import { Evaluator } from './losses.js';
import { configure, type ParamSchema, type ParamValues } from './params.js';
import { openRows, scatterRows, subset, whereRows } from './runs.js';

export const CW_PARAMS = {
  searches: { type: 'int', min: 1, max: 100, default: 9, doc: 'binary-search steps over the constant c' },
  steps: { type: 'int', min: 1, max: 100_000, default: 1000, doc: 'Adam steps per binary-search step' },
  c: { type: 'number', min: 0, max: 1e10, exclusiveMin: true, default: 1e-3, doc: 'initial constant c' },
  lr: { type: 'number', min: 0, max: 10, exclusiveMin: true, default: 0.01, doc: 'Adam learning rate' },
  kappa: { type: 'number', min: 0, max: 1e6, default: 0, doc: 'confidence κ: required margin in the scores' },
  abort: { type: 'bool', default: true, doc: 'stop a binary-search step when the loss stalls (checked every steps/10)' },
} as const satisfies ParamSchema;

/** c beyond which the search only grows c (Carlini & Wagner's sentinel). */
const NO_UPPER = 1e10;

/**
 * Carlini–Wagner L2: minimise `‖x' − x‖₂² + c·max(margin(x'), −κ)` over `x' = (tanh(w) + 1)/2` with
 * Adam, and binary-search c per sample (×10 until a first success). The margin is
 * `z_y − max_{i≠y} z_i` (targeted: `max_{i≠t} z_i − z_t`) over the model's scores. Carlini & Wagner,
 * S&P 2017. Norm L2. Defaults: 9 binary-search steps, 1000 Adam steps, lr 0.01, c₀ = 1e-3, κ = 0,
 * early abort. Returns per sample the smallest adversarial found; the clean input where none was.
 *
 * @example
 *   new L2CarliniWagner({ steps: 100 }).id; // 'cw:abort=true,c=0.001,kappa=0,lr=0.01,searches=9,steps=100'
 */
export class L2CarliniWagner extends MinimizationAttack {
  readonly name = 'cw';
  readonly distance = L2;
  readonly id: string;
  readonly params: ParamValues<typeof CW_PARAMS>;

  constructor(options: Partial<ParamValues<typeof CW_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, CW_PARAMS, options));
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const { searches, steps, lr, kappa, abort } = this.params;
    const rows = openRows(ctx);
    const sub = subset(ctx, rows);
    const m = rows.length;
    const constants = new Float32Array(m).fill(this.params.c);
    const lower = new Float32Array(m);
    const upper = new Float32Array(m).fill(NO_UPPER);
    const w0 = tf.tidy(() => tf.atanh(tf.mul(tf.sub(tf.mul(sub.x, 2), 1), 1 - 1e-6)) as Tensor2D);
    let bestL2 = tf.fill([m], Infinity) as Tensor1D;
    let bestAdv = tf.clone(sub.x);
    try {
      for (let s = 0; s < searches && m > 0; s++) {
        const c = tf.tensor1d(constants);
        const ev = new Evaluator(
          ctx.model,
          { kind: 'scores', fn: (scores) => tf.mul(c, tf.maximum(sub.criterion.margin(scores), -kappa)) as Tensor1D },
          ctx.counter,
          rows,
        );
        let modifier = tf.zerosLike(sub.x) as Tensor2D;
        let first = tf.zerosLike(sub.x) as Tensor2D;
        let second = tf.zerosLike(sub.x) as Tensor2D;
        let succeeded = tf.zeros([m], 'bool') as Tensor1D;
        let previous = Infinity;
        const checkEvery = Math.max(1, Math.ceil(steps / 10));
        for (let t = 1; t <= steps; t++) {
          const squashed = tf.tidy(() => tf.tanh(tf.add(w0, modifier)));
          const xAdv = tf.tidy(() => tf.div(tf.add(squashed, 1), 2) as Tensor2D);
          const e = await ev.withGrad(xAdv);
          const next = tf.tidy(() => {
            const diff = tf.sub(xAdv, sub.x);
            const l2sq = tf.sum(tf.square(diff), 1);
            const l2 = tf.sqrt(l2sq) as Tensor1D;
            // Gradient of the objective in x', then through x' = (tanh(w + modifier) + 1)/2.
            const gradX = tf.add(tf.mul(diff, 2), e.grad);
            const grad = tf.mul(gradX, tf.div(tf.sub(1, tf.square(squashed)), 2));
            const m1 = tf.add(tf.mul(first, 0.9), tf.mul(grad, 0.1)) as Tensor2D;
            const m2 = tf.add(tf.mul(second, 0.999), tf.mul(tf.square(grad), 0.001)) as Tensor2D;
            const update = tf.div(tf.div(m1, 1 - 0.9 ** t), tf.add(tf.sqrt(tf.div(m2, 1 - 0.999 ** t)), 1e-8));
            const hit = tf.logicalAnd(
              sub.criterion.isAdversarial(e.scores),
              tf.lessEqual(sub.criterion.margin(e.scores), -kappa),
            );
            const better = tf.logicalAnd(hit, tf.less(l2, bestL2));
            return {
              modifier: tf.sub(modifier, tf.mul(update, lr)) as Tensor2D,
              first: m1,
              second: m2,
              succeeded: tf.logicalOr(succeeded, hit) as Tensor1D,
              bestL2: tf.where(better, l2, bestL2) as Tensor1D,
              bestAdv: whereRows(better, xAdv, bestAdv),
              total: tf.sum(tf.add(l2sq, e.value)),
            };
          });
          tf.dispose([modifier, first, second, succeeded, bestL2, bestAdv, squashed, xAdv, e.value, e.grad, e.scores]);
          ({ modifier, first, second, succeeded, bestL2, bestAdv } = next);
          const check = abort && t % checkEvery === 0;
          const total = check ? (await next.total.data())[0]! : 0;
          next.total.dispose();
          if (check) {
            if (total > previous * 0.9999) break;
            previous = total;
          }
        }
        const hits = await succeeded.data();
        tf.dispose([c, modifier, first, second, succeeded]);
        for (let i = 0; i < m; i++) {
          if (hits[i]) {
            upper[i] = Math.min(upper[i]!, constants[i]!);
            constants[i] = (lower[i]! + upper[i]!) / 2;
          } else {
            lower[i] = Math.max(lower[i]!, constants[i]!);
            constants[i] = upper[i]! < NO_UPPER ? (lower[i]! + upper[i]!) / 2 : constants[i]! * 10;
          }
        }
      }
      return { adversarial: scatterRows(ctx.x, rows, bestAdv) };
    } finally {
      tf.dispose([w0, bestL2, bestAdv]);
      sub.dispose();
    }
  }
}
