/**
 * From a worker's compact arrays to the per-image {@link SampleResult}s that `EvalStats` counts,
 * and the per-image lines of `--samples`.
 */
import { FixedEpsilonAttack, type Attack } from '../src/attacks/index.js';
import { encodePixels } from '../src/report/index.js';
import type { AdversarialResult, SampleResult } from '../src/stats/index.js';
import type { EvalPair, EvalTaskResult } from '../workers/eval-task.js';

/**
 * The pointwise worst case over attacks that share a threat model (norm and ε), per source model:
 * AutoAttack's robust accuracy, where an image counts as robust only if every attack failed on it
 * inside the same ball. Its id is `worst-case:eps=E,norm=N`.
 */
export const WORST_CASE = 'worst-case';

export function worstCaseId(norm: string, eps: number): string {
  return `${WORST_CASE}:eps=${eps},norm=${norm}`;
}

export function isWorstCase(attackId: string): boolean {
  return attackId.startsWith(`${WORST_CASE}:`);
}

/** Attacks (by index into the layout's attacks) whose worst case is reported under `id`. */
export interface WorstCaseGroup {
  id: string;
  attacks: readonly number[];
}

/**
 * The groups of fixed-ε attacks (two or more) that share a norm and an ε, in order of first
 * appearance.
 *
 * @example
 * worstCaseGroups(['fgsm:eps=0.3', 'pgd:eps=0.3'].map(parseAttackSpec)); // [{ id: 'worst-case:eps=0.3,norm=linf', attacks: [0, 1] }]
 */
export function worstCaseGroups(attacks: readonly Attack[]): WorstCaseGroup[] {
  const groups = new Map<string, number[]>();
  attacks.forEach((attack, i) => {
    if (!(attack instanceof FixedEpsilonAttack)) return;
    const id = worstCaseId(attack.distance.name, attack.epsilon);
    groups.set(id, [...(groups.get(id) ?? []), i]);
  });
  return [...groups].filter(([, members]) => members.length > 1).map(([id, members]) => ({ id, attacks: members }));
}

/** Which model and attack each slot of a result stands for, in evaluation order. */
export interface ResultLayout {
  models: readonly string[];
  attacks: readonly string[];
  /** Worst-case entries to add per source model. */
  worstCase: readonly WorstCaseGroup[];
  /**
   * The (attack, source) pairs that ran, in the order of the result's slots: a pair left out (a
   * gradient attack on a black-box ONNX model) has no entries and no pixels; its source is still
   * scored on every other source's adversarials (a transfer target).
   */
  pairs: readonly EvalPair[];
}

/**
 * The pairs that run, attack-major: every (attack, source) but gradient attacks on black-box sources.
 *
 * @example
 *   runningPairs([fgsm, square], [false, true]); // [{attack:0,source:0}, {attack:1,source:0}, {attack:1,source:1}]
 */
export function runningPairs(attacks: readonly Pick<Attack, 'gradientFree'>[], blackBox: readonly boolean[]): EvalPair[] {
  return attacks.flatMap((a, attack) => blackBox.flatMap((b, source) => (b && !a.gradientFree ? [] : [{ attack, source }])));
}

/**
 * The worst case over `entries` (same source, same image, one per attack of a group): the first
 * adversarial that the source misclassifies, else the first successful one, else the first. Its
 * success is whether any attack succeeded.
 */
export function worstCase(id: string, entries: readonly AdversarialResult[], label: number): AdversarialResult {
  const source = entries[0]!.source;
  const chosen = entries.find((e) => e.preds[source] !== label) ?? entries.find((e) => e.success) ?? entries[0]!;
  const { minEps: _minEps, ...rest } = chosen;
  return { ...rest, attack: id, success: entries.some((e) => e.success) };
}

/**
 * One {@link SampleResult} per image of the batch. Every pair that ran has an entry for every
 * image, images the source misclassifies clean included (the attack returns them unchanged).
 */
export function sampleResults(layout: ResultLayout, labels: Int32Array, r: EvalTaskResult): SampleResult[] {
  const n = r.count;
  const M = layout.models.length;
  const out: SampleResult[] = [];
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    const clean: Record<string, number> = {};
    layout.models.forEach((model, m) => (clean[model] = r.clean[m * n + i]!));
    const adversarials = layout.pairs.map(({ attack, source }, q): AdversarialResult => {
      const preds: Record<string, number> = {};
      layout.models.forEach((model, t) => (preds[model] = r.preds[(q * M + t) * n + i]!));
      const minEps = r.minEps[q * n + i]!;
      return {
        attack: layout.attacks[attack]!,
        source: layout.models[source]!,
        success: r.success[q * n + i] === 1,
        linf: r.linf[q * n + i]!,
        l2: r.l2[q * n + i]!,
        l1: r.l1[q * n + i]!,
        l0: r.l0[q * n + i]!,
        confidence: r.confidence[q * n + i]!,
        preds,
        ...(Number.isNaN(minEps) ? {} : { minEps }),
      };
    });
    const ran = adversarials.length;
    for (const group of layout.worstCase) {
      for (let s = 0; s < M; s++) {
        const members = adversarials.slice(0, ran).filter((_, q) => layout.pairs[q]!.source === s && group.attacks.includes(layout.pairs[q]!.attack));
        if (members.length > 0) adversarials.push(worstCase(group.id, members, label));
      }
    }
    out.push({ label, clean, adversarials });
  }
  return out;
}

/**
 * The pixels of a batch's first `count` images, for image grids: the clean images, and the
 * adversarial of every pair that ran, in the layout's order (`ResultLayout.pairs`).
 */
export interface BatchPixels {
  count: number;
  /** `[height, width, channels]` of every image. */
  shape: [number, number, number];
  /** `count × dim` values in [0, 1], row-major HWC. */
  clean: Float32Array;
  /** `Q × count × dim` for the Q pairs that ran: image i under pair q starts at `(q·count + i)·dim`. */
  adversarial: Float32Array;
}

/** One image's pixels: the clean image and its adversarial under each pair, in layout order. */
export interface ImagePixels {
  shape: [number, number, number];
  clean: Float32Array;
  adversarials: Float32Array[];
}

/** Image `i` of a batch, or `undefined` when the batch carries no pixels for it. */
export function imagePixels(pixels: BatchPixels | undefined, i: number): ImagePixels | undefined {
  if (!pixels || i >= pixels.count) return undefined;
  const dim = pixels.shape[0] * pixels.shape[1] * pixels.shape[2];
  const pairs = pixels.adversarial.length / (pixels.count * dim);
  return {
    shape: pixels.shape,
    clean: pixels.clean.subarray(i * dim, (i + 1) * dim),
    adversarials: Array.from({ length: pairs }, (_, p) => {
      const at = (p * pixels.count + i) * dim;
      return pixels.adversarial.subarray(at, at + dim);
    }),
  };
}

/**
 * One `--samples` line (without the newline): id, label, clean predictions, one entry per attack and
 * source. Lines of images evaluated with pixels also carry them, in the report's format
 * (`src/report/pixels.ts`): `shape` and `pixels` on the line, `adversarial` on each entry.
 */
export interface SampleLine {
  id: string;
  label: number;
  clean: Record<string, number>;
  shape?: [number, number, number];
  /** The clean image, `"u8:<base64>"`. */
  pixels?: string;
  adversarials: (Omit<AdversarialResult, 'minEps'> & {
    /** Minimal-ε attacks only; `null` where the attack never succeeded. */
    min_eps?: number | null;
    /** The adversarial image, `"u8:<base64>"`. */
    adversarial?: string;
  })[];
}

/**
 * The `--samples` line of one image; the derived worst-case entries are left out. With `pixels`
 * (from {@link imagePixels}), the images are written as u8.
 *
 * @example
 * batch.samples.map((s, i) => sampleLine(batch.ids[i], s, imagePixels(batch.pixels, i)));
 */
export function sampleLine(id: string, sample: SampleResult, pixels?: ImagePixels): SampleLine {
  const entries = sample.adversarials
    .filter((a) => !isWorstCase(a.attack))
    .map(({ minEps, ...a }, p) => ({
      ...a,
      ...(minEps === undefined ? {} : { min_eps: Number.isFinite(minEps) ? minEps : null }),
      ...(pixels ? { adversarial: encodePixels(pixels.adversarials[p]!, 'u8') } : {}),
    }));
  return {
    id,
    label: sample.label,
    clean: sample.clean,
    ...(pixels ? { shape: pixels.shape, pixels: encodePixels(pixels.clean, 'u8') } : {}),
    adversarials: entries,
  };
}
