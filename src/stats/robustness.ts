import { Errors } from '../errors.js';
import { checkCount, checkNonNegative, checkRecord } from './shared.js';
import { Moments, type MomentsJSON } from './moments.js';
import { Proportion, type ProportionJSON } from './proportion.js';

/** One image attacked on one model, as the robustness accumulator consumes it. */
export interface RobustnessSample {
  label: number;
  /** The model's prediction on the clean image. */
  cleanPred: number;
  /** The same model's prediction on the adversarial. */
  advPred: number;
  /** The attack's own verdict (its criterion: untargeted, targeted, …). */
  success: boolean;
  /** ‖adversarial − clean‖∞ and ‖·‖₂ in pixel units. */
  linf: number;
  l2: number;
  /** ‖·‖₁ and ‖·‖₀ (values changed), where the producer measures them; summarised only then. */
  l1?: number;
  l0?: number;
  /** Softmax probability of `advPred` on the adversarial. */
  advConfidence: number;
}

export interface RobustnessJSON {
  robust: ProportionJSON;
  success: ProportionJSON;
  linf: MomentsJSON;
  l2: MomentsJSON;
  l1?: MomentsJSON;
  l0?: MomentsJSON;
  confMisclassified: MomentsJSON;
}

/** One `attacks.<id>` entry of the `final` record; proportions and means are `null` with no data. */
export interface RobustnessSummary {
  robust_acc: number | null;
  ci: [number, number];
  asr: number | null;
  asr_ci: [number, number];
  mean_linf: number | null;
  median_linf: number | null;
  mean_l2: number | null;
  median_l2: number | null;
  /** Present once a sample carried L1 and L0 norms (attacks report them; older producers may not). */
  mean_l1?: number | null;
  median_l1?: number | null;
  mean_l0?: number | null;
  median_l0?: number | null;
  mean_conf_misclassified: number | null;
  /** Samples seen: the robust-accuracy denominator. */
  n: number;
}

/**
 * Robustness of one model against one attack, fed one sample at a time. Definitions:
 * - robust accuracy: over ALL samples, a sample is robust iff the clean prediction AND the
 *   adversarial prediction are correct (AutoAttack's convention). It judges by predictions, not by
 *   the attack's `success`, so a targeted attack that misses its target still lowers it.
 * - attack success rate: `success` over the samples whose clean prediction is correct.
 * - L∞ / L2 (and L1 / L0 where samples carry them) (mean, median): over successful adversarials of clean-correct samples, i.e. the
 *   perturbations counted in the ASR numerator. Clean-wrong samples need no perturbation and would
 *   pull the norms toward 0.
 * - mean confidence on misclassified adversarials (Goodfellow et al. 2015, FGSM): the mean of
 *   `advConfidence` over every sample whose adversarial is misclassified (`advPred ≠ label`),
 *   clean-wrong ones included, as the paper averages over all misclassified adversarial examples.
 * Medians carry the {@link QuantileSketch} error (0.5% relative by default).
 *
 * @example
 * const r = new Robustness();
 * r.add({ label: 3, cleanPred: 3, advPred: 5, success: true, linf: 0.3, l2: 2.1, advConfidence: 0.9 });
 * r.summary().robust_acc; // 0
 */
export class Robustness {
  private readonly robust = new Proportion();
  private readonly success = new Proportion();
  private readonly linf = new Moments();
  private readonly l2 = new Moments();
  /** Created by the first sample that carries the norm: summaries gain its fields only then. */
  private l1: Moments | undefined;
  private l0: Moments | undefined;
  private readonly confMisclassified = new Moments();

  add(s: RobustnessSample): this {
    checkCount(s.label, 'label');
    checkCount(s.cleanPred, 'cleanPred');
    checkCount(s.advPred, 'advPred');
    checkNonNegative(s.linf, 'linf');
    checkNonNegative(s.l2, 'l2');
    if (s.l1 !== undefined) checkNonNegative(s.l1, 'l1');
    if (s.l0 !== undefined) checkNonNegative(s.l0, 'l0');
    if (!(s.advConfidence >= 0 && s.advConfidence <= 1)) {
      throw Errors.badArgument(`advConfidence must be in [0, 1], got ${s.advConfidence}`, { advConfidence: s.advConfidence });
    }
    const cleanCorrect = s.cleanPred === s.label;
    const advCorrect = s.advPred === s.label;
    this.robust.add(cleanCorrect && advCorrect);
    if (s.l1 !== undefined) this.l1 ??= new Moments();
    if (s.l0 !== undefined) this.l0 ??= new Moments();
    if (cleanCorrect) {
      this.success.add(s.success);
      if (s.success) {
        this.linf.add(s.linf);
        this.l2.add(s.l2);
        if (s.l1 !== undefined) this.l1?.add(s.l1);
        if (s.l0 !== undefined) this.l0?.add(s.l0);
      }
    }
    if (!advCorrect) this.confMisclassified.add(s.advConfidence);
    return this;
  }

  merge(other: Robustness): this {
    this.robust.merge(other.robust);
    this.success.merge(other.success);
    this.linf.merge(other.linf);
    this.l2.merge(other.l2);
    if (other.l1) (this.l1 ??= new Moments()).merge(other.l1);
    if (other.l0) (this.l0 ??= new Moments()).merge(other.l0);
    this.confMisclassified.merge(other.confMisclassified);
    return this;
  }

  toJSON(): RobustnessJSON {
    return {
      robust: this.robust.toJSON(),
      success: this.success.toJSON(),
      linf: this.linf.toJSON(),
      l2: this.l2.toJSON(),
      ...(this.l1 ? { l1: this.l1.toJSON() } : {}),
      ...(this.l0 ? { l0: this.l0.toJSON() } : {}),
      confMisclassified: this.confMisclassified.toJSON(),
    };
  }

  static fromJSON(json: RobustnessJSON): Robustness {
    const o = checkRecord(json, 'robustness');
    const r = new Robustness();
    r.robust.merge(Proportion.fromJSON(o.robust as ProportionJSON));
    r.success.merge(Proportion.fromJSON(o.success as ProportionJSON));
    r.linf.merge(Moments.fromJSON(o.linf as MomentsJSON));
    r.l2.merge(Moments.fromJSON(o.l2 as MomentsJSON));
    if (o.l1 !== undefined) r.l1 = Moments.fromJSON(o.l1 as MomentsJSON);
    if (o.l0 !== undefined) r.l0 = Moments.fromJSON(o.l0 as MomentsJSON);
    r.confMisclassified.merge(Moments.fromJSON(o.confMisclassified as MomentsJSON));
    return r;
  }

  summary(): RobustnessSummary {
    const robust = this.robust.summary();
    const asr = this.success.summary();
    const linf = this.linf.summary();
    const l2 = this.l2.summary();
    const l1 = this.l1?.summary();
    const l0 = this.l0?.summary();
    return {
      robust_acc: robust.p,
      ci: robust.ci,
      asr: asr.p,
      asr_ci: asr.ci,
      mean_linf: linf.mean,
      median_linf: linf.median,
      mean_l2: l2.mean,
      median_l2: l2.median,
      ...(l1 ? { mean_l1: l1.mean, median_l1: l1.median } : {}),
      ...(l0 ? { mean_l0: l0.mean, median_l0: l0.median } : {}),
      mean_conf_misclassified: this.confMisclassified.summary().mean,
      n: robust.n,
    };
  }
}
