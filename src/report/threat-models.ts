/**
 * Results grouped by threat model: a norm and a budget ε. A model's robustness at (L∞, 0.3) is the
 * lowest robust accuracy that any attack of the run reached inside that ball, whichever attack it
 * was: fixed-ε attacks at that ε, the pointwise worst case over them, and minimal-ε curves read at
 * that ε. Summaries name it per threat model, never per attack id.
 */
import { parseAttackSpec, type DistanceName } from '../attacks/index.js';
import type { EvalSummary } from '../stats/eval-stats.js';
import { wilson } from '../stats/proportion.js';

export type Norm = DistanceName;

/** What the registry says about an attack id, as far as judging results goes. */
export interface AttackTraits {
  name: string;
  norm: Norm;
  /** The budget of a fixed-ε attack; undefined for minimization attacks (their budget is unbounded). */
  eps: number | undefined;
  /** Needs scores only (Square, or a wrapper around it). */
  gradientFree: boolean;
  /** One gradient step (FGSM, FGM): expected to be weaker than iterative attacks. */
  singleStep: boolean;
  /** Whether the id is the derived pointwise worst case of a group (`worst-case:eps=E,norm=N`). */
  worstCase: boolean;
}

const WORST_CASE = /^worst-case:eps=([^,]+),norm=(linf|l2|l0)$/;

/**
 * The traits of an attack id: parsed by the attack registry, or, for the derived `worst-case:…` ids,
 * read from the id. Undefined for an id the registry does not know (a run written by another version).
 *
 * @example
 *   attackTraits('pgd:eps=0.3,steps=40'); // { name: 'pgd', norm: 'linf', eps: 0.3, gradientFree: false, singleStep: false, worstCase: false }
 */
export function attackTraits(id: string): AttackTraits | undefined {
  const worst = WORST_CASE.exec(id);
  if (worst) return { name: 'worst-case', norm: worst[2] as Norm, eps: Number(worst[1]), gradientFree: false, singleStep: false, worstCase: true };
  try {
    const attack = parseAttackSpec(id);
    const eps = attack.kind === 'fixed-epsilon' && typeof attack.params.eps === 'number' ? attack.params.eps : undefined;
    return {
      name: attack.name,
      norm: attack.distance.name,
      eps,
      gradientFree: attack.gradientFree,
      singleStep: attack.kind === 'fixed-epsilon' && !attack.gradientFree && !('steps' in attack.params),
      worstCase: false,
    };
  } catch {
    return undefined;
  }
}

/** `L∞ ε = 0.3`. */
export function threatModelLabel(norm: Norm, eps: number): string {
  return `${norm === 'linf' ? 'L∞' : norm === 'l2' ? 'L2' : 'L0'} ε = ${eps}`;
}

/** One attack's robust accuracy inside a threat model's ball. */
export interface ThreatModelEntry {
  attack: string;
  robust_acc: number;
  ci: [number, number];
  /** `curve`: a minimal-ε curve read at the largest grid point ≤ ε (an upper bound at ε itself). */
  from: 'attack' | 'curve';
  /** For `curve` entries, the grid point read. */
  at?: number;
}

export interface ThreatModelResult {
  model: string;
  norm: Norm;
  eps: number;
  label: string;
  /** The lowest robust accuracy in this ball: the attacks that reach it (ties share it). */
  lowest: ThreatModelEntry;
  /** Every attack id whose robust accuracy equals the lowest. */
  lowestBy: string[];
  entries: ThreatModelEntry[];
}

const same = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

/**
 * Per model, per threat model (norm, ε) of the run's fixed-ε attacks: every result inside that ball
 * and the lowest. Models in the summary's order; threat models by norm, then ε.
 */
export function threatModels(summary: EvalSummary, traits: (id: string) => AttackTraits | undefined = attackTraits): ThreatModelResult[] {
  const out: ThreatModelResult[] = [];
  for (const [model, m] of Object.entries(summary.models)) {
    const curves = summary.curves?.[model] ?? {};
    const balls = new Map<string, { norm: Norm; eps: number; entries: ThreatModelEntry[] }>();
    for (const [attack, r] of Object.entries(m.attacks)) {
      const t = traits(attack);
      if (!t || t.eps === undefined || attack in curves || r.robust_acc === null) continue;
      const key = `${t.norm}:${t.eps}`;
      const ball = balls.get(key) ?? { norm: t.norm, eps: t.eps, entries: [] };
      ball.entries.push({ attack, robust_acc: r.robust_acc, ci: r.ci, from: 'attack' });
      balls.set(key, ball);
    }
    for (const ball of balls.values()) {
      for (const [attack, points] of Object.entries(curves)) {
        const t = traits(attack);
        const n = m.attacks[attack]?.n;
        if (!t || t.norm !== ball.norm || n === undefined || n === 0) continue;
        const point = points.filter((p) => p.robust_acc !== null && (p.eps < ball.eps || same(p.eps, ball.eps))).at(-1);
        if (!point || point.robust_acc === null) continue;
        const { lo, hi } = wilson(Math.round(point.robust_acc * n), n);
        ball.entries.push({ attack, robust_acc: point.robust_acc, ci: [lo, hi], from: 'curve', at: point.eps });
      }
      const lowest = ball.entries.reduce((a, b) => (b.robust_acc < a.robust_acc ? b : a));
      out.push({
        model,
        norm: ball.norm,
        eps: ball.eps,
        label: threatModelLabel(ball.norm, ball.eps),
        lowest,
        lowestBy: ball.entries.filter((e) => same(e.robust_acc, lowest.robust_acc)).map((e) => e.attack),
        entries: ball.entries,
      });
    }
  }
  const normOrder: Norm[] = ['linf', 'l2', 'l0'];
  const models = Object.keys(summary.models);
  return out.sort((a, b) => models.indexOf(a.model) - models.indexOf(b.model) || normOrder.indexOf(a.norm) - normOrder.indexOf(b.norm) || a.eps - b.eps);
}
