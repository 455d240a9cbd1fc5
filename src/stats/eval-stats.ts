import { Errors } from '../errors.js';
import { MinEpsCurve, sameGrid, type CurvePoint, type MinEpsCurveJSON } from './min-eps-curve.js';
import { Proportion, type ProportionJSON } from './proportion.js';
import { Robustness, type RobustnessJSON, type RobustnessSummary } from './robustness.js';
import {
  checkArray,
  checkCount,
  checkId,
  checkNonNegative,
  checkRecord,
  getOrCreate,
  sortedEntries,
} from './shared.js';
import { Throughput, type ThroughputJSON } from './throughput.js';
import { TransferMatrix, type TransferJSON, type TransferSummary } from './transfer.js';

/** One adversarial: crafted by `attack` on the `source` model, for one image. */
export interface AdversarialResult {
  attack: string;
  source: string;
  /** The attack's verdict by its own criterion. */
  success: boolean;
  /** ‖adversarial − clean‖∞ and ‖·‖₂, pixel units. */
  linf: number;
  l2: number;
  /** ‖·‖₁ and ‖·‖₀ (values changed), where the worker measured them. */
  l1?: number;
  l0?: number;
  /** The source model's softmax probability of its predicted class on the adversarial. */
  confidence: number;
  /** Every evaluated model's prediction on this adversarial, by model id; includes `source`. */
  preds: Record<string, number>;
  /**
   * The minimal epsilon at which the attack succeeds on `source` (Infinity: never), for the
   * robust-accuracy curve; the attack must have a grid in {@link EvalStatsOptions.curveGrids}. A
   * sample that `source` already misclassifies counts as 0 whatever this says, by definition.
   * Infinity survives structured cloning (worker threads) but not JSON.
   */
  minEps?: number;
}

/**
 * Everything a worker learned about one image: plain data, safe to post across threads.
 *
 * Every (attack, source) pair under evaluation must have an entry for every image, including images
 * the source misclassifies (a worker that skips attacking those reports the clean image as the
 * adversarial: norms 0, clean predictions): robust accuracy and transfer count the entries, so a
 * missing one shrinks the denominator.
 */
export interface SampleResult {
  /** The true class. */
  label: number;
  /** Each model's prediction on the clean image, by model id. */
  clean: Record<string, number>;
  /** One entry per (attack, source model) pair. */
  adversarials: AdversarialResult[];
}

export interface EvalStatsOptions {
  /** Epsilon grid of the minimal-epsilon curve, by attack id (see {@link MinEpsCurve}). */
  curveGrids?: Readonly<Record<string, readonly number[]>>;
}

export interface EvalStatsJSON {
  version: 1;
  images: number;
  curveGrids: Record<string, number[]>;
  clean: Record<string, ProportionJSON>;
  /** `[model][attackId]`. */
  robustness: Record<string, Record<string, RobustnessJSON>>;
  transfer: TransferJSON;
  /** `[model][attackId]`. */
  curves: Record<string, Record<string, MinEpsCurveJSON>>;
  throughput: ThroughputJSON;
}

export interface CleanSummary {
  /** `null` when n = 0. */
  acc: number | null;
  ci: [number, number];
  n: number;
}

export interface ModelSummary {
  clean: CleanSummary;
  attacks: Record<string, RobustnessSummary>;
}

/** The `{"type":"final"}` record of `advstream eval`, less its `type`; keys sorted. */
export interface EvalSummary {
  images: number;
  models: Record<string, ModelSummary>;
  transfer: TransferSummary;
  /** `[model][attackId]`, present when some attack reported minimal epsilons. */
  curves?: Record<string, Record<string, CurvePoint[]>>;
}

/**
 * The state of a whole evaluation: clean accuracy per model, robustness per model and attack, the
 * transfer matrix, minimal-epsilon curves and throughput. Every part merges exactly (integer counts,
 * exact sums, fixed-bucket sketches), so the state after feeding a stream is the same, to the bit,
 * for any split of it across workers or hosts and any order or grouping of merges.
 *
 * @example
 * const stats = new EvalStats();
 * stats.add({
 *   label: 7,
 *   clean: { 'zoo:cnn': 7 },
 *   adversarials: [
 *     { attack: 'pgd', source: 'zoo:cnn', success: true, linf: 0.3, l2: 4.2, confidence: 0.8, preds: { 'zoo:cnn': 2 } },
 *   ],
 * });
 * stats.summary().models['zoo:cnn'].attacks.pgd.robust_acc; // 0
 */
export class EvalStats {
  /** Fed by the pipeline once per finished task. */
  readonly throughput = new Throughput();
  private images = 0;
  private readonly curveGrids = new Map<string, readonly number[]>();
  private readonly clean = new Map<string, Proportion>();
  private readonly robustness = new Map<string, Map<string, Robustness>>();
  private readonly transfer = new TransferMatrix();
  private readonly curves = new Map<string, Map<string, MinEpsCurve>>();

  constructor(options: EvalStatsOptions = {}) {
    for (const [attack, grid] of Object.entries(options.curveGrids ?? {})) {
      this.curveGrids.set(checkId(attack, 'attack id'), new MinEpsCurve(grid).grid);
    }
  }

  /** Feeds one evaluated image. The sample is checked whole first; a bad one changes nothing. */
  add(sample: SampleResult): this {
    const { label, clean, adversarials } = checkSample(sample, this.curveGrids);
    this.images += 1;
    for (const [model, pred] of Object.entries(clean)) {
      getOrCreate(this.clean, model, () => new Proportion()).add(pred === label);
    }
    for (const a of adversarials) {
      const cleanPred = clean[a.source]!;
      getOrCreate(getOrCreate(this.robustness, a.source, () => new Map()), a.attack, () => new Robustness()).add({
        label,
        cleanPred,
        advPred: a.preds[a.source]!,
        success: a.success,
        linf: a.linf,
        l2: a.l2,
        ...(a.l1 !== undefined ? { l1: a.l1 } : {}),
        ...(a.l0 !== undefined ? { l0: a.l0 } : {}),
        advConfidence: a.confidence,
      });
      this.transfer.add(a.attack, a.source, label, a.preds);
      if (a.minEps !== undefined) {
        this.curve(a.source, a.attack, this.curveGrids.get(a.attack)!).add(cleanPred === label ? a.minEps : 0);
      }
    }
    return this;
  }

  merge(other: EvalStats): this {
    for (const [attack, grid] of other.curveGrids) {
      const ours = this.curveGrids.get(attack);
      if (ours !== undefined && !sameGrid(ours, grid)) {
        throw Errors.badArgument(`cannot merge evaluations with different epsilon grids for '${attack}'`, { attack });
      }
    }
    for (const [attack, grid] of other.curveGrids) this.curveGrids.set(attack, grid);
    this.images += other.images;
    for (const [model, p] of other.clean) getOrCreate(this.clean, model, () => new Proportion()).merge(p);
    for (const [model, attacks] of other.robustness) {
      const ours = getOrCreate(this.robustness, model, () => new Map<string, Robustness>());
      for (const [attack, r] of attacks) getOrCreate(ours, attack, () => new Robustness()).merge(r);
    }
    this.transfer.merge(other.transfer);
    for (const [model, attacks] of other.curves) {
      for (const [attack, c] of attacks) this.curve(model, attack, c.grid).merge(c);
    }
    this.throughput.merge(other.throughput);
    return this;
  }

  toJSON(): EvalStatsJSON {
    const curveGrids: Record<string, number[]> = {};
    for (const [attack, grid] of sortedEntries(this.curveGrids)) curveGrids[attack] = [...grid];
    const clean: Record<string, ProportionJSON> = {};
    for (const [model, p] of sortedEntries(this.clean)) clean[model] = p.toJSON();
    return {
      version: 1,
      images: this.images,
      curveGrids,
      clean,
      robustness: nested(this.robustness, (r) => r.toJSON()),
      transfer: this.transfer.toJSON(),
      curves: nested(this.curves, (c) => c.toJSON()),
      throughput: this.throughput.toJSON(),
    };
  }

  /** Restores a checkpoint written by {@link EvalStats.toJSON} (after `JSON.parse`). */
  static fromJSON(json: EvalStatsJSON): EvalStats {
    const o = checkRecord(json, 'evaluation');
    if (o.version !== 1) {
      throw Errors.badArgument(`unsupported evaluation checkpoint version ${String(o.version)}`, { version: o.version });
    }
    const grids: Record<string, number[]> = {};
    for (const [attack, grid] of Object.entries(checkRecord(o.curveGrids, 'curveGrids'))) {
      grids[attack] = checkArray(grid, `curveGrids.${attack}`) as number[];
    }
    const s = new EvalStats({ curveGrids: grids });
    s.images = checkCount(o.images, 'images');
    for (const [model, p] of Object.entries(checkRecord(o.clean, 'clean'))) {
      s.clean.set(checkId(model, 'model id'), Proportion.fromJSON(p as ProportionJSON));
    }
    for (const [model, attacks] of Object.entries(checkRecord(o.robustness, 'robustness'))) {
      for (const [attack, r] of Object.entries(checkRecord(attacks, `robustness.${model}`))) {
        getOrCreate(s.robustness, checkId(model, 'model id'), () => new Map()).set(
          checkId(attack, 'attack id'),
          Robustness.fromJSON(r as RobustnessJSON),
        );
      }
    }
    s.transfer.merge(TransferMatrix.fromJSON(o.transfer as TransferJSON));
    for (const [model, attacks] of Object.entries(checkRecord(o.curves, 'curves'))) {
      for (const [attack, c] of Object.entries(checkRecord(attacks, `curves.${model}`))) {
        const curve = MinEpsCurve.fromJSON(c as MinEpsCurveJSON);
        s.curve(checkId(model, 'model id'), checkId(attack, 'attack id'), curve.grid).merge(curve);
      }
    }
    s.throughput.merge(Throughput.fromJSON(o.throughput as ThroughputJSON));
    return s;
  }

  /** The `final` record; proportions carry 95% Wilson intervals. */
  summary(): EvalSummary {
    const models: Record<string, ModelSummary> = {};
    for (const [model, p] of sortedEntries(this.clean)) {
      const c = p.summary();
      const attacks: Record<string, RobustnessSummary> = {};
      for (const [attack, r] of sortedEntries(this.robustness.get(model) ?? new Map<string, Robustness>())) {
        attacks[attack] = r.summary();
      }
      models[model] = { clean: { acc: c.p, ci: c.ci, n: c.n }, attacks };
    }
    const out: EvalSummary = { images: this.images, models, transfer: this.transfer.summary() };
    if (this.curves.size > 0) out.curves = nested(this.curves, (c) => c.curve());
    return out;
  }

  /** The curve of (model, attack), created on the given grid; an existing one must share it. */
  private curve(model: string, attack: string, grid: readonly number[]): MinEpsCurve {
    const curve = getOrCreate(getOrCreate(this.curves, model, () => new Map()), attack, () => new MinEpsCurve(grid));
    if (!sameGrid(curve.grid, grid)) {
      throw Errors.badArgument(`epsilon curve of '${model}' under '${attack}' is on another grid`, { model, attack });
    }
    const declared = this.curveGrids.get(attack);
    if (declared !== undefined && !sameGrid(declared, grid)) {
      throw Errors.badArgument(`epsilon curve of '${model}' under '${attack}' is not on the declared grid`, { model, attack });
    }
    this.curveGrids.set(attack, curve.grid);
    return curve;
  }
}

/**
 * The widest 95% interval among all proportions a summary reports (clean accuracy, robust accuracy,
 * attack success rate, transfer error): the `--until-ci W` rule stops reading once this is below W.
 * A proportion with no trials spans [0, 1], and a summary with none reports 1, so nothing stops
 * before evidence arrives.
 *
 * @example
 * if (maxIntervalWidth(stats.summary()) < 0.02) stopReading();
 */
export function maxIntervalWidth(summary: EvalSummary): number {
  let widest = 0;
  let seen = false;
  const see = ([lo, hi]: [number, number]): void => {
    seen = true;
    widest = Math.max(widest, hi - lo);
  };
  for (const m of Object.values(summary.models)) {
    see(m.clean.ci);
    for (const a of Object.values(m.attacks)) {
      see(a.ci);
      see(a.asr_ci);
    }
  }
  for (const sources of Object.values(summary.transfer)) {
    for (const targets of Object.values(sources)) for (const cell of Object.values(targets)) see(cell.ci);
  }
  return seen ? widest : 1;
}

/** Checks a whole sample before anything is counted; returns it typed. */
function checkSample(sample: SampleResult, grids: ReadonlyMap<string, readonly number[]>): SampleResult {
  const s = checkRecord(sample, 'sample');
  const label = checkCount(s.label, 'label');
  const clean = checkPreds(s.clean, 'clean');
  const seen = new Set<string>();
  for (const entry of checkArray(s.adversarials, 'adversarials')) {
    const a = checkRecord(entry, 'adversarial');
    const attack = checkId(a.attack, 'attack id');
    const source = checkId(a.source, 'source id');
    const where = `adversarial (${attack}, ${source})`;
    const pair = JSON.stringify([attack, source]);
    if (seen.has(pair)) throw Errors.badArgument(`${where} appears twice in one sample`, { attack, source });
    seen.add(pair);
    if (!Object.hasOwn(clean, source)) {
      throw Errors.badArgument(`${where}: no clean prediction for the source`, { attack, source });
    }
    if (typeof a.success !== 'boolean') {
      throw Errors.badArgument(`${where}: success must be a boolean`, { attack, source });
    }
    checkNonNegative(a.linf, `${where} linf`);
    checkNonNegative(a.l2, `${where} l2`);
    if (a.l1 !== undefined) checkNonNegative(a.l1, `${where} l1`);
    if (a.l0 !== undefined) checkNonNegative(a.l0, `${where} l0`);
    if (typeof a.confidence !== 'number' || !(a.confidence >= 0 && a.confidence <= 1)) {
      throw Errors.badArgument(`${where}: confidence must be in [0, 1], got ${String(a.confidence)}`, { attack, source });
    }
    const preds = checkPreds(a.preds, `${where} preds`);
    if (!Object.hasOwn(preds, source)) {
      throw Errors.badArgument(`${where}: no prediction of the source on its adversarial`, { attack, source });
    }
    if (a.minEps !== undefined) {
      if (typeof a.minEps !== 'number' || !(a.minEps >= 0)) {
        throw Errors.badArgument(`${where}: minEps must be >= 0 or Infinity, got ${String(a.minEps)}`, { attack, source });
      }
      if (!grids.has(attack)) {
        throw Errors.badArgument(`${where}: minEps given but no epsilon grid for '${attack}'`, { attack });
      }
    }
  }
  return { label, clean, adversarials: sample.adversarials };
}

function checkPreds(value: unknown, what: string): Record<string, number> {
  const preds = checkRecord(value, what);
  for (const [model, pred] of Object.entries(preds)) {
    checkId(model, `${what} model id`);
    checkCount(pred, `${what} prediction of ${model}`);
  }
  return preds as Record<string, number>;
}

function nested<V, T>(map: ReadonlyMap<string, ReadonlyMap<string, V>>, f: (v: V) => T): Record<string, Record<string, T>> {
  const out: Record<string, Record<string, T>> = {};
  for (const [outer, inner] of sortedEntries(map)) {
    const row: Record<string, T> = (out[outer] = {});
    for (const [key, v] of sortedEntries(inner)) row[key] = f(v);
  }
  return out;
}
