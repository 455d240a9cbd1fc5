/** DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep neural networks", CVPR 2016). */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { MinimizationAttack, type SearchContext, type SearchOutput } from './base.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { misclassification, targetedMisclassification } from './criteria.js';
import { Evaluator } from './losses.js';
import { configure, type ParamSchema, type ParamValues } from './params.js';
import { openRows, rowsWhere, scatterRows, subset } from './runs.js';

export const DEEPFOOL_PARAMS = {
  norm: { type: 'enum', values: ['l2', 'linf'], default: 'l2', doc: 'norm of the perturbation it minimises' },
  steps: { type: 'int', min: 1, max: 10_000, default: 50, doc: 'iterations' },
  overshoot: { type: 'number', min: 0, max: 10, default: 0.02, doc: 'the perturbation is scaled by 1 + overshoot' },
  candidates: { type: 'int', min: 2, max: 10_000, default: 10, doc: 'classes considered: the label and the highest-scoring others' },
} as const satisfies ParamSchema;

/**
 * DeepFool: linearise the scores around the current point and step to the nearest linearised
 * class boundary among the candidates, `x = x₀ + (1 + overshoot)·Σ steps`, until the prediction
 * changes. Moosavi-Dezfooli et al., CVPR 2016 (L2; L∞ as in their L_p extension and Foolbox).
 * Defaults: norm L2, 50 steps, overshoot 0.02, 10 candidate classes (the clean prediction and the 9
 * highest-scoring others). Each step costs a forward pass and one input gradient per candidate
 * beyond the first. Targeted runs use the clean prediction and the target as the only candidates.
 * A sample that never crosses returns its last iterate.
 *
 * @example
 *   new DeepFool({ norm: 'linf' }).id; // 'deepfool:candidates=10,norm=linf,overshoot=0.02,steps=50'
 */
export class DeepFool extends MinimizationAttack {
  readonly name = 'deepfool';
  readonly id: string;
  readonly params: ParamValues<typeof DEEPFOOL_PARAMS>;
  readonly distance: NormDistance;

  constructor(options: Partial<ParamValues<typeof DEEPFOOL_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, DEEPFOOL_PARAMS, options));
    this.distance = this.params.norm === 'linf' ? Linf : L2;
  }

  protected async search(ctx: SearchContext): Promise<SearchOutput> {
    const { steps, overshoot } = this.params;
    const linf = this.params.norm === 'linf';
    const rows = openRows(ctx);
    const sub = subset(ctx, rows);
    const m = rows.length;
    const classes = ctx.model.numClasses;
    const k = sub.targets ? 2 : Math.min(this.params.candidates, classes);
    // Per row: the clean prediction first, then the other candidates; as one-hot masks [m, C].
    const cleanScores = await ctx.model.scores(sub.x);
    const masks = tf.tidy(() => {
      const order = tf.topk(cleanScores, classes).indices;
      const firsts = [tf.oneHot(order.slice([0, 0], [m, 1]).reshape([-1]) as Tensor1D, classes)];
      if (sub.targets) firsts.push(tf.oneHot(sub.targets, classes));
      else for (let j = 1; j < k; j++) firsts.push(tf.oneHot(order.slice([0, j], [m, 1]).reshape([-1]) as Tensor1D, classes));
      return firsts.map((t) => t.cast('float32') as Tensor2D);
    });
    cleanScores.dispose();
    let x = tf.clone(sub.x);
    let total = tf.zerosLike(sub.x) as Tensor2D;
    try {
      let active = Int32Array.from(rows.keys());
      for (let step = 0; step < steps; step++) {
        // A forward pass on the rows still moving: those already across stop here.
        ctx.counter.add('forwards', Int32Array.from(active, (i) => rows[i]!));
        const probe = tf.tidy(() => tf.gather(x, tf.tensor1d(active, 'int32')) as Tensor2D);
        const probeScores = await ctx.model.scores(probe);
        const hit = tf.tidy(() => {
          const index = tf.tensor1d(active, 'int32');
          const labels = tf.gather(sub.labels, index) as Tensor1D;
          const criterion =
            sub.targets && sub.criterion.kind === 'targeted'
              ? targetedMisclassification(tf.gather(sub.targets, index) as Tensor1D)
              : misclassification(labels);
          return criterion.isAdversarial(probeScores);
        });
        tf.dispose([probe, probeScores]);
        const still = rowsWhere(Uint8Array.from(await hit.data()), 0);
        hit.dispose();
        active = Int32Array.from(still, (i) => active[i]!);
        if (active.length === 0) break;
        const global = Int32Array.from(active, (i) => rows[i]!);
        const index = tf.tensor1d(active, 'int32');
        const xa = tf.gather(x, index) as Tensor2D;
        const base = tf.gather(masks[0]!, index) as Tensor2D;
        const evaluated: { diff: Tensor2D; value: Tensor1D; grad: Tensor2D; scores: Tensor2D }[] = [];
        try {
          for (const mask of masks.slice(1)) {
            const diff = tf.tidy(() => tf.sub(tf.gather(mask, index), base) as Tensor2D);
            const ev = new Evaluator(ctx.model, { kind: 'scores', fn: (s) => tf.sum(tf.mul(s, diff), 1) as Tensor1D }, ctx.counter, global);
            evaluated.push({ diff, ...(await ev.withGrad(xa)) });
          }
        } catch (e) {
          tf.dispose([index, xa, base, ...evaluated.flatMap((o) => [o.diff, o.value, o.grad, o.scores])]);
          throw e;
        }
        const next = tf.tidy(() => {
          const options = evaluated.map(({ value, grad }) => {
            const size = linf ? tf.sum(tf.abs(grad), 1) : tf.norm(grad, 'euclidean', 1);
            return { value, grad, size, distance: tf.div(tf.abs(value), tf.add(size, 1e-8)) };
          });
          // The nearest linearised boundary per row, as a one-hot choice over the candidates.
          const choice = tf.oneHot(tf.argMin(tf.stack(options.map((o) => o.distance)), 0), options.length).cast('float32');
          const pick = (j: number): Tensor2D => choice.slice([0, j], [-1, 1]) as Tensor2D;
          let stepTotal = tf.zerosLike(xa) as Tensor2D;
          options.forEach((o, j) => {
            const scale = tf.div(tf.add(tf.abs(o.value), 1e-4), tf.add(o.size, 1e-8)).reshape([-1, 1]);
            const direction = linf ? Linf.direction(o.grad) : tf.div(o.grad, tf.add(o.size.reshape([-1, 1]), 1e-8));
            stepTotal = tf.add(stepTotal, tf.mul(pick(j), tf.mul(scale, direction))) as Tensor2D;
          });
          const moved = tf.add(tf.gather(total, index), stepTotal) as Tensor2D;
          const totalNext = scatterRows(total, active, moved);
          const xNext = tf.clipByValue(tf.add(sub.x, tf.mul(totalNext, 1 + overshoot)), 0, 1) as Tensor2D;
          return { x: xNext, total: totalNext };
        });
        tf.dispose([index, xa, base, ...evaluated.flatMap((o) => [o.diff, o.value, o.grad, o.scores])]);
        tf.dispose([x, total]);
        ({ x, total } = next);
      }
      return { adversarial: scatterRows(ctx.x, rows, x) };
    } finally {
      tf.dispose([x, total, ...masks]);
      sub.dispose();
    }
  }
}
