/** AutoAttack's standard cascade (Croce & Hein, ICML 2020), without FAB-T. */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { ApgdCe, ApgdT } from './apgd.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { configure, epsilonParam, NORM_PARAM, type ParamSchema, type ParamValues } from './params.js';
import { deriveSeed } from './rng.js';
import { openRows } from './runs.js';
import { SquareAttack } from './square.js';

export const AUTOATTACK_PARAMS = {
  norm: NORM_PARAM,
  eps: epsilonParam(),
  steps: { type: 'int', min: 1, max: 100_000, default: 100, doc: 'APGD iterations (APGD-CE, and APGD-T per target)' },
  targets: { type: 'int', min: 1, max: 999, default: 9, doc: 'APGD-T target classes' },
  queries: { type: 'int', min: 1, max: 1_000_000, default: 5000, doc: 'Square queries' },
} as const satisfies ParamSchema;

/**
 * AutoAttack, version "standard", as a cascade: APGD-CE (1 restart), then APGD-T (targeted DLR on
 * the top `targets` classes, at most C−1; skipped for models with fewer than 4 classes), then
 * Square (1 restart, p_init 0.8), each run only on the samples every earlier stage left robust, so
 * each sample gets the pointwise worst case of the stages. Samples misclassified clean are
 * non-robust from the start. Robust accuracy = samples never broken / all samples. FAB-T, the third
 * stage of the original, is omitted, so a model that only FAB-T breaks somewhere would look slightly
 * more robust here than under AutoAttack. Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
 * of diverse parameter-free attacks", ICML 2020; protocol of `autoattack.py`. Norm L∞ or L2.
 * Defaults: ε = 0.3 (L∞) / 2 (L2), 100 APGD steps, 9 targets, 5000 Square queries. The result's
 * `cascade` says which stage broke each sample.
 *
 * @example
 *   new AutoAttack({ eps: 0.3 }).id; // 'autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9'
 */
export class AutoAttack extends FixedEpsilonAttack {
  readonly name = 'autoattack';
  readonly id: string;
  readonly params: ParamValues<typeof AUTOATTACK_PARAMS>;
  readonly epsilon: number;
  readonly distance: NormDistance;

  constructor(options: Partial<ParamValues<typeof AUTOATTACK_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, AUTOATTACK_PARAMS, options));
    this.epsilon = this.params.eps;
    this.distance = this.params.norm === 'l2' ? L2 : Linf;
  }

  /** The stages for a model with `classes` classes. */
  stages(classes: number): FixedEpsilonAttack[] {
    const { norm, eps, steps, targets, queries } = this.params;
    return [
      new ApgdCe({ norm, eps, steps }),
      ...(classes >= 4 ? [new ApgdT({ norm, eps, steps, targets })] : []),
      new SquareAttack({ norm, eps, queries }),
    ];
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const stages = this.stages(ctx.model.numClasses);
    const points = Float32Array.from(await ctx.x.data());
    const brokenBy = Int8Array.from(ctx.done, (d) => (d ? 0 : -1));
    let open = openRows(ctx);
    for (let s = 0; s < stages.length && open.length > 0; s++) {
      const rows = open;
      const index = tf.tensor1d(rows, 'int32');
      const x = tf.gather(ctx.x, index) as Tensor2D;
      const labels = tf.gather(ctx.labels, index) as Tensor1D;
      const targets = ctx.targets ? (tf.gather(ctx.targets, index) as Tensor1D) : undefined;
      index.dispose();
      try {
        const res = await stages[s]!.run(ctx.model, x, labels, {
          seed: deriveSeed(ctx.seed, s),
          epsilons: Float32Array.from(rows, (r) => ctx.epsilons[r]!),
          ...(targets ? { targets } : {}),
        });
        rows.forEach((row, i) => {
          ctx.counter.gradients[row]! += res.gradients[i]!;
          ctx.counter.forwards[row]! += res.forwards[i]!;
          if (!res.success[i]) return;
          brokenBy[row] = s + 1;
          points.set(res.adversarial.subarray(i * dim, (i + 1) * dim), row * dim);
        });
      } finally {
        tf.dispose([x, labels, ...(targets ? [targets] : [])]);
      }
      open = Int32Array.from([...rows].filter((row) => brokenBy[row] === -1));
    }
    return {
      adversarial: tf.tensor2d(points, [count, dim]),
      cascade: { stages: ['clean', ...stages.map((a) => a.id)], brokenBy },
    };
  }
}
