/** AutoAttack (Croce & Hein, ICML 2020): the standard and randomised versions, and a faster cascade without FAB-T. */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { FixedEpsilonAttack, normsOf, type Attack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { ApgdCe, ApgdDlr, ApgdT } from './apgd.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { FabT } from './fab.js';
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
  version: {
    type: 'enum',
    values: ['fast', 'standard', 'rand'],
    default: 'fast',
    implicit: true,
    doc: 'fast: APGD-CE, APGD-T, Square (no FAB-T); standard: AutoAttack\'s, with FAB-T before Square; rand: APGD-CE and APGD-DLR with EOT, for randomised defences',
  },
  eot: { type: 'int', min: 1, max: 1000, default: 20, implicit: true, doc: 'version=rand: gradient evaluations averaged per APGD step' },
} as const satisfies ParamSchema;

/**
 * AutoAttack as a cascade: each stage runs only on the samples every earlier stage left robust, so
 * each sample gets the pointwise worst case of the stages. Samples misclassified clean are
 * non-robust from the start; robust accuracy = samples never broken / all samples. Croce & Hein,
 * "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
 * attacks", ICML 2020; protocol of `autoattack.py`. Norm L∞ or L2. Versions:
 * - `standard`, AutoAttack's: APGD-CE (1 restart), APGD-T (targeted DLR on the top `targets`
 *   classes, at most C−1; skipped below 4 classes), FAB-T (the same targets, `steps` steps each; a
 *   sample counts as broken when its minimal perturbation is within ε), Square (1 restart,
 *   p_init 0.8).
 * - `fast` (the default, and this attack's only cascade before FAB-T was added, so earlier ids keep
 *   their meaning): the standard cascade without FAB-T. FAB-T costs up to `targets × steps` more
 *   gradients on each sample still robust after APGD-T, and rarely breaks one that APGD-T and
 *   Square leave: a model that only FAB-T breaks somewhere looks slightly more robust here.
 * - `rand`, for randomised models and preprocessors: APGD-CE and APGD-DLR, each averaging `eot`
 *   gradients per step (expectation over transformation; default 20), as AutoAttack's rand version.
 * Defaults: ε = 0.3 (L∞) / 2 (L2), 100 APGD (and FAB-T) steps, 9 targets, 5000 Square queries,
 * eot = 20. The result's `cascade` says which stage broke each sample.
 *
 * @example
 *   new AutoAttack({ eps: 0.3 }).id; // 'autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9'
 *   new AutoAttack({ version: 'standard' }).id; // 'autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9,version=standard'
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
  stages(classes: number): Attack[] {
    const { norm, eps, steps, targets, queries, version, eot } = this.params;
    if (version === 'rand') return [new ApgdCe({ norm, eps, steps, eot }), ...(classes >= 3 ? [new ApgdDlr({ norm, eps, steps, eot })] : [])];
    const targeted = classes >= 4 ? [new ApgdT({ norm, eps, steps, targets })] : [];
    const fab = version === 'standard' ? [new FabT({ norm, eps, steps, targets })] : [];
    return [new ApgdCe({ norm, eps, steps }), ...targeted, ...fab, new SquareAttack({ norm, eps, queries })];
  }

  /**
   * A stage's seed: FAB-T's is its own, every other stage's is its position without FAB-T, so that
   * `standard` runs APGD-CE, APGD-T and Square with the very seeds of `fast`.
   */
  private stageSeed(seed: number, stages: readonly Attack[], s: number): number {
    if (stages[s]!.name === 'fab-t') return deriveSeed(seed, 0x4fab);
    return deriveSeed(seed, stages.slice(0, s).filter((a) => a.name !== 'fab-t').length);
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const stages = this.stages(ctx.model.numClasses);
    const points = Float32Array.from(await ctx.x.data());
    const brokenBy = Int8Array.from(ctx.done, (d) => (d ? 0 : -1));
    let open = openRows(ctx);
    for (let s = 0; s < stages.length && open.length > 0; s++) {
      const rows = open;
      const stage = stages[s]!;
      const index = tf.tensor1d(rows, 'int32');
      const x = tf.gather(ctx.x, index) as Tensor2D;
      const labels = tf.gather(ctx.labels, index) as Tensor1D;
      const targets = ctx.targets ? (tf.gather(ctx.targets, index) as Tensor1D) : undefined;
      index.dispose();
      try {
        const epsilons = Float32Array.from(rows, (r) => ctx.epsilons[r]!);
        const options = { seed: this.stageSeed(ctx.seed, stages, s), ...(targets ? { targets } : {}) };
        const res = stage instanceof FixedEpsilonAttack ? await stage.run(ctx.model, x, labels, { ...options, epsilons }) : await stage.run(ctx.model, x, labels, options);
        // A minimum-norm stage (FAB-T) breaks a sample only within its ε.
        const sizes = stage instanceof FixedEpsilonAttack ? undefined : normsOf(res, this.distance.name);
        rows.forEach((row, i) => {
          ctx.counter.gradients[row]! += res.gradients[i]!;
          ctx.counter.forwards[row]! += res.forwards[i]!;
          if (!res.success[i] || (sizes && !(sizes[i]! <= epsilons[i]!))) return;
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
