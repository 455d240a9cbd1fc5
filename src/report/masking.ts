/**
 * Gradient-masking checks on a finished evaluation: the signs that a white-box figure overstates a
 * model's robustness, after AutoAttack's own flags (Croce & Hein 2020, `autoattack/checks.py`: Square
 * lowering the robust accuracy left by the gradient attacks; zero gradients; a model returning
 * probabilities instead of logits) and Carlini et al.'s checklist ("On Evaluating Adversarial
 * Robustness", 2019: iterative attacks beat single-step ones, transfer and black-box attacks do not
 * beat white-box ones, a growing budget drives accuracy to 0).
 *
 * One rule decides "well above", the one the reproduction's AutoAttack experiment uses: more than
 * {@link MASKING_GAP} higher, with disjoint 95% intervals.
 *
 * @example
 *   const warnings = maskingWarnings(finalRecord);
 *   for (const w of warnings) console.error(`${w.code}: ${w.message}`);
 */
import type { EvalSummary } from '../stats/eval-stats.js';
import { epsFamilies } from './attack-families.js';
import { attackTraits, threatModels, type AttackTraits } from './threat-models.js';

/** A result overstates robustness when it beats another by more than this, with disjoint intervals. */
export const MASKING_GAP = 0.05;
/** Robust accuracy that an L∞ budget of 1 (which reaches any [0,1] image) leaves above this is suspect. */
export const FULL_BUDGET_RESIDUE = 0.01;

export type MaskingCode =
  /** An iterative gradient attack (PGD, BIM, …) is well above an AutoAttack-family attack (APGD, AutoAttack) in the same ball. */
  | 'GRADIENT_ABOVE_AUTOATTACK'
  /** A gradient-free (black-box) attack is well below an iterative white-box one in the same ball. */
  | 'BLACK_BOX_BEATS_WHITE_BOX'
  /** A single-step attack is well below an iterative one in the same ball. */
  | 'SINGLE_STEP_BEATS_ITERATIVE'
  /** Adversarials crafted on another model fool a model more often than its own white-box ones. */
  | 'TRANSFER_BEATS_WHITE_BOX'
  /** A minimal-ε curve does not reach 0 at a budget that reaches every image. */
  | 'CURVE_NOT_TO_ZERO'
  /** Robust accuracy rises with ε within one attack family. */
  | 'ACCURACY_RISES_WITH_EPS'
  /** Input gradients that are all zero or not finite on some images (when the run counts them). */
  | 'ZERO_GRADIENTS'
  | 'NON_FINITE_GRADIENTS'
  /** Clean softmax outputs at 1 on most images: the scores saturate and cross-entropy gradients vanish. */
  | 'SOFTMAX_SATURATED';

export interface MaskingWarning {
  code: MaskingCode;
  model: string;
  /** One sentence for a person, with the figures. */
  message: string;
  /** The attack whose figure is suspect, and the one that shows it. */
  attack?: string;
  reference?: string;
}

/**
 * Per-model gradient health, for runs whose workers count it: images whose input gradient was
 * all zero or had a non-finite entry, and images whose clean top softmax probability rounds to 1.
 */
export interface GradientHealth {
  images: number;
  zero_gradients?: number;
  non_finite_gradients?: number;
  saturated_softmax?: number;
}

export interface MaskingInput extends EvalSummary {
  gradients?: Record<string, GradientHealth>;
}

interface Estimate {
  value: number;
  /** 95% interval; without one, the value stands for both ends. */
  ci?: readonly [number, number];
}

/** `a` above `b` by more than the gap, with `a`'s interval wholly above `b`'s. */
export function wellAbove(a: Estimate, b: Estimate, gap = MASKING_GAP): boolean {
  return a.value - b.value > gap && (a.ci?.[0] ?? a.value) > (b.ci?.[1] ?? b.value);
}

const pct = (p: number) => `${(100 * p).toFixed(1)}%`;
const AUTOATTACK_FAMILY = /^(autoattack|apgd-ce|apgd-t|apgd-dlr)$/;

/**
 * Every masking warning for a summary (the `final` record of `advstream eval`, or its `stats`).
 * Deterministic: models, then checks, in order.
 */
export function maskingWarnings(summary: MaskingInput, traits: (id: string) => AttackTraits | undefined = attackTraits): MaskingWarning[] {
  const warnings: MaskingWarning[] = [];
  const known = new Map<string, AttackTraits | undefined>();
  const trait = (id: string) => {
    if (!known.has(id)) known.set(id, traits(id));
    return known.get(id);
  };

  for (const ball of threatModels(summary, trait)) {
    const fixed = ball.entries.filter((e) => e.from === 'attack' && !trait(e.attack)?.worstCase);
    for (const a of fixed) {
      const ta = trait(a.attack)!;
      for (const b of fixed) {
        if (a === b) continue;
        const tb = trait(b.attack)!;
        const est = (e: typeof a) => ({ value: e.robust_acc, ci: e.ci });
        if (!wellAbove(est(a), est(b))) continue;
        const figures = `${pct(a.robust_acc)} under ${a.attack} against ${pct(b.robust_acc)} under ${b.attack} (${ball.label})`;
        if (!ta.gradientFree && !ta.singleStep && tb.gradientFree) {
          warnings.push({
            code: 'BLACK_BOX_BEATS_WHITE_BOX',
            model: ball.model,
            attack: a.attack,
            reference: b.attack,
            message: `${ball.model}: the black-box ${tb.name} finds more adversarials than the white-box ${ta.name}: ${figures}; its gradients mislead gradient attacks (gradient masking)`,
          });
        } else if (!ta.gradientFree && !ta.singleStep && !AUTOATTACK_FAMILY.test(ta.name) && AUTOATTACK_FAMILY.test(tb.name)) {
          warnings.push({
            code: 'GRADIENT_ABOVE_AUTOATTACK',
            model: ball.model,
            attack: a.attack,
            reference: b.attack,
            message: `${ball.model}: ${ta.name} overstates robustness: ${figures}; trust ${tb.name}`,
          });
        } else if (!ta.singleStep && !ta.gradientFree && tb.singleStep) {
          warnings.push({
            code: 'SINGLE_STEP_BEATS_ITERATIVE',
            model: ball.model,
            attack: a.attack,
            reference: b.attack,
            message: `${ball.model}: the single-step ${tb.name} beats the iterative ${ta.name}: ${figures}; the iterative attack is stuck (gradient masking or a bad step size)`,
          });
        }
      }
    }
  }

  for (const [attack, sources] of Object.entries(summary.transfer)) {
    for (const [target] of Object.entries(summary.models)) {
      const own = sources[target]?.[target];
      if (!own || own.err === null) continue;
      for (const [source, cells] of Object.entries(sources)) {
        const cell = cells[target];
        if (source === target || !cell || cell.err === null) continue;
        if (!wellAbove({ value: cell.err, ci: cell.ci }, { value: own.err, ci: own.ci })) continue;
        warnings.push({
          code: 'TRANSFER_BEATS_WHITE_BOX',
          model: target,
          attack,
          reference: source,
          message: `${target}: ${attack} crafted on ${source} fools it more often (${pct(cell.err)}) than crafted on ${target} itself (${pct(own.err)}); its own gradients mislead the attack (gradient masking)`,
        });
      }
    }
  }

  for (const [model, curves] of Object.entries(summary.curves ?? {})) {
    for (const [attack, points] of Object.entries(curves)) {
      const t = trait(attack);
      const last = points.filter((p) => p.robust_acc !== null).at(-1);
      // An L∞ budget of 1 reaches every image in [0,1]; other norms have no such budget in general.
      if (!t || t.norm !== 'linf' || !last || last.robust_acc === null || last.eps < 1 || last.robust_acc <= FULL_BUDGET_RESIDUE) continue;
      warnings.push({
        code: 'CURVE_NOT_TO_ZERO',
        model,
        attack,
        message: `${model}: ${pct(last.robust_acc)} of the images survive ${attack} at ε = ${last.eps}, a budget that reaches any image; the attack fails where adversarials must exist (gradient masking)`,
      });
    }
  }

  for (const [model, m] of Object.entries(summary.models)) {
    const fixedIds = Object.keys(m.attacks).filter((a) => {
      const t = trait(a);
      return t !== undefined && t.eps !== undefined && !t.worstCase && !summary.curves?.[model]?.[a];
    });
    for (const members of epsFamilies(fixedIds).values()) {
      const results = members.flatMap(({ attack, eps }) => {
        const r = m.attacks[attack]!;
        return r.robust_acc === null ? [] : [{ attack, eps, value: r.robust_acc, ci: r.ci }];
      });
      for (const [i, small] of results.entries()) {
        for (const large of results.slice(i + 1)) {
          if (large.eps <= small.eps || !wellAbove(large, small)) continue;
          warnings.push({
            code: 'ACCURACY_RISES_WITH_EPS',
            model,
            attack: large.attack,
            reference: small.attack,
            message: `${model}: robust accuracy rises with ε: ${pct(large.value)} at ε = ${large.eps} against ${pct(small.value)} at ε = ${small.eps}; a larger ball contains the smaller one, so the attack is failing (gradient masking)`,
          });
        }
      }
    }
  }

  for (const [model, g] of Object.entries(summary.gradients ?? {})) {
    if (g.images <= 0) continue;
    const share = (k: number | undefined) => (k ?? 0) / g.images;
    if ((g.zero_gradients ?? 0) > 0) {
      warnings.push({ code: 'ZERO_GRADIENTS', model, message: `${model}: ${g.zero_gradients} of ${g.images} images (${pct(share(g.zero_gradients))}) have an all-zero input gradient; gradient attacks cannot move them` });
    }
    if ((g.non_finite_gradients ?? 0) > 0) {
      warnings.push({ code: 'NON_FINITE_GRADIENTS', model, message: `${model}: ${g.non_finite_gradients} of ${g.images} images have a non-finite input gradient (NaN or ±Infinity)` });
    }
    if (share(g.saturated_softmax) > 0.5) {
      warnings.push({ code: 'SOFTMAX_SATURATED', model, message: `${model}: the clean softmax is saturated (top probability 1 in float32) on ${pct(share(g.saturated_softmax))} of the images; cross-entropy gradients vanish there (does the model return probabilities instead of logits?)` });
    }
  }
  return warnings;
}
