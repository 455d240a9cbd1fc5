/**
 * `audit-bench`: how well the audit's detectors tell adversarial images from clean ones.
 *
 * Clean records are the held-out part of the data (for the calibration source, its odd positions:
 * the calibration uses only even ones). Each is attacked by every attack on every source model —
 * the detectors' own models (white-box), models no detector uses (a transfer attack from a
 * surrogate), and, for the adaptive attack, the joint classifier of one detector's models
 * (`detectorEnsemble`, combine `agreement`, run targeted: it succeeds only when every model of the
 * detector predicts the target, which is what order disagreement cannot see). Attacks and detector
 * scoring run in the audit pool, one task per (batch, attack, source); the main thread only collects
 * scores.
 *
 * Per attack and source, for every detector and the combined score: ROC AUC with DeLong's 95%
 * interval, TPR at 1% and 5% FPR (thresholds set on the clean scores) with Wilson intervals, the
 * TPR and the clean FPR at the calibrated threshold, and the attack success rate. Positives are the
 * successful adversarials of records the source classified correctly clean (an image the source
 * already got wrong is returned unperturbed, and an attack that failed is no threat).
 *
 * Engines. A source that runs black-box (a user's ONNX model) is attacked by the gradient-free
 * attacks only (Square); its pairs with gradient attacks are skipped, and so is the adaptive attack
 * when one of its detector's models has no tfjs classifier (see `src/detect/adaptive.ts`). Each
 * skipped pair is listed in the result's `skipped`, with the reason, as eval leaves such pairs out.
 */
import { from, lastValueFrom, tap } from 'rxjs';
import { deriveSeed, parseAttackSpec, Rng } from '../src/attacks/index.js';
import { openSource, type ImageRecord } from '../src/data/index.js';
import {
  detectionRate,
  rocAuc,
  rocCurve,
  tprAtFpr,
  verdict,
  type Calibration,
  type DetectorPlan,
  type RocPoint,
} from '../src/detect/index.js';
import { Errors } from '../src/errors.js';
import { Proportion, type ProportionSummary } from '../src/stats/index.js';
import { ADAPTIVE_PREFIX, type AuditTask, type AuditTaskResult } from '../workers/audit-task.js';
import { batchSeed, pairSeed } from '../workers/eval-task.js';
import { openAuditPool, poolRun, type AuditPool, type AuditPoolOptions } from './audit-pool.js';
import { calibrationStage, DEFAULT_CALIBRATION_DATA, resolveCalibration, type CalibrationOptions } from './calibrate.js';
import { runTasks } from './operators.js';
import { isWorkerCrash } from './runner.js';
import { positiveInt } from './options.js';

/** Attacks of a benchmark that names none: each family at several ε, budgets cut for a benchmark. */
export const DEFAULT_BENCH_ATTACKS: readonly string[] = [
  'fgsm:eps=0.1',
  'fgsm:eps=0.2',
  'fgsm:eps=0.3',
  'pgd:eps=0.1,steps=20',
  'pgd:eps=0.2,steps=20',
  'pgd:eps=0.3,steps=20',
  'apgd-ce:eps=0.1,steps=20',
  'apgd-ce:eps=0.3,steps=20',
  'cw:searches=5,steps=100,c=0.1,lr=0.1',
  'square:eps=0.2,queries=300',
  'square:eps=0.3,queries=300',
];
/** White-box sources of a benchmark that names none: the low- and a high-order model of order disagreement. */
export const DEFAULT_BENCH_SOURCES: readonly string[] = ['zoo:mlp-relu', 'zoo:dam-n20'];
/** The transfer source: a model no default detector uses. */
export const DEFAULT_SURROGATE = 'zoo:maxout';
/** The adaptive attack: targeted PGD on the joint classifier of order disagreement's models. */
export const DEFAULT_ADAPTIVE = { attack: 'pgd:eps=0.3,steps=100', detector: 'order-disagreement' } as const;

export type BenchSourceKind = 'white-box' | 'transfer' | 'adaptive';

export interface AuditBenchOptions extends AuditPoolOptions, CalibrationOptions {
  /** Clean records; default the calibration data ({@link DEFAULT_CALIBRATION_DATA}). */
  data?: string;
  /** Clean records measured (after the held-out selection); default 500. */
  limit?: number;
  /** Attack specs; default {@link DEFAULT_BENCH_ATTACKS}. */
  attacks?: readonly string[];
  /** Source model refs; default {@link DEFAULT_BENCH_SOURCES}. */
  sources?: readonly string[];
  /** A transfer source no detector uses; default {@link DEFAULT_SURROGATE}; null for none. */
  surrogate?: string | null;
  /** The adaptive attack; default {@link DEFAULT_ADAPTIVE} (when the plan has that detector); null for none. */
  adaptive?: { attack: string; detector: string } | null;
  /** FPR targets of the TPR table; default [0.01, 0.05]. */
  targets?: readonly number[];
  /** Records per task; default 32. */
  batch?: number;
  maxInFlight?: number;
  retries?: number;
  /** Seeds every attack (per batch, attack and source) and the adaptive targets; default 0. */
  seed?: number;
  /** Points kept per ROC curve in the output (the AUC uses them all); default 101. */
  rocPoints?: number;
  signal?: AbortSignal;
  /** Told after each task. */
  onProgress?: (progress: { done: number; total: number }) => void;
  /** Merged into the result's provenance. */
  provenance?: Record<string, unknown>;
}

export interface BenchDetectorResult {
  auc: number | null;
  auc_ci: [number, number] | null;
  auc_se: number | null;
  /** At each target FPR, thresholds on this benchmark's clean scores. */
  tpr_at_fpr: { target: number; threshold: number; fpr: number; tpr: number; ci: [number, number] }[];
  /** At the calibrated threshold (the audit's own flag). */
  calibrated: { threshold: number; tpr: number | null; ci: [number, number] };
  /** The ROC curve, thinned to at most `rocPoints` points. */
  roc: { fpr: number; tpr: number }[];
}

export interface BenchPairResult {
  /** The canonical attack id. */
  attack: string;
  /** The attack as given (`targeted` appended for the adaptive attack), for tables and charts. */
  label: string;
  source: string;
  kind: BenchSourceKind;
  /** Records attacked. */
  n: number;
  /** Of those the source classified correctly clean, the share the attack broke: the positives. */
  attack_success: ProportionSummary;
  positives: number;
  /** Per plan model: of the records it classified correctly clean, the share whose adversarial it gets wrong (transfer). */
  fooled: Record<string, ProportionSummary>;
  /** Median perturbation norms over the positives; null without positives. */
  median_linf: number | null;
  median_l2: number | null;
  /** By detector name, and `combined`. */
  detectors: Record<string, BenchDetectorResult>;
}

/** A pair the benchmark could not run on these models, and why. */
export interface BenchSkipped {
  attack: string;
  label: string;
  source: string;
  kind: BenchSourceKind;
  reason: string;
}

export interface AuditBenchResult {
  type: 'audit-bench';
  version: 1;
  data: { uri: string; positions: string; n: number };
  fpr_targets: number[];
  detectors: Record<string, string>;
  calibration: { fpr: number; file: string | null; source: string | null; thresholds: Record<string, number> };
  /** The calibrated flag's rate on the clean records: the held-out false-positive rate. */
  clean: { n: number; flag_rate: Record<string, ProportionSummary>; accuracy: Record<string, ProportionSummary> };
  results: BenchPairResult[];
  /** Pairs left out: gradient attacks on black-box sources, an adaptive attack without tfjs members. */
  skipped: BenchSkipped[];
  elapsed_s: number;
  provenance: Record<string, unknown>;
}

/** A `roc` line of the report (docs/report.md). */
export interface RocLine {
  type: 'roc';
  detector: string;
  attack: string;
  points: { fpr: number; tpr: number }[];
  auc: number | null;
}

interface Pair {
  attack: string;
  /** The spec as given (the canonical id spells every default). */
  spec: string;
  source: string;
  kind: BenchSourceKind;
}

interface PairScores {
  scores: Record<string, Float64Array>;
  success: Uint8Array;
  sourceClean: Int32Array;
  preds: Int32Array;
  linf: Float32Array;
  l2: Float32Array;
}

/** Keeps at most `max` points of a curve, its ends included. */
function thin(points: RocPoint[], max: number): { fpr: number; tpr: number }[] {
  const step = Math.max(1, (points.length - 1) / (max - 1));
  const out: { fpr: number; tpr: number }[] = [];
  for (let k = 0; k < max && Math.round(k * step) < points.length; k++) {
    const p = points[Math.round(k * step)]!;
    out.push({ fpr: p.fpr, tpr: p.tpr });
  }
  const last = points[points.length - 1]!;
  if (out[out.length - 1]!.fpr !== last.fpr || out[out.length - 1]!.tpr !== last.tpr) out.push({ fpr: last.fpr, tpr: last.tpr });
  return out;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Scores by detector name, plus `combined` (from the calibration) where the plan has one. */
function withCombined(calibration: Calibration, scores: Record<string, Float32Array>): Record<string, ArrayLike<number>> {
  const out: Record<string, ArrayLike<number>> = { ...scores };
  const v = verdict(calibration, scores);
  if (v.combined) out.combined = v.combined;
  return out;
}

async function cleanRecords(uri: string, held: (position: number) => boolean, limit: number, signal?: AbortSignal): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  let position = 0;
  for await (const record of openSource(uri, signal ? { signal } : {})) {
    if (held(position++)) {
      if (record.label === undefined) throw Errors.badRecord({ file: uri, id: record.id }, 'no label: audit-bench needs labelled records');
      out.push(record);
      if (out.length >= limit) break;
    }
  }
  return out;
}

/** Why a pair cannot run on the pool's models (see the module comment), or undefined when it can. */
function skipReason(pair: Pair, pool: AuditPool): string | undefined {
  const info = (id: string) => pool.ready.models.find((m) => m.id === id);
  if (pair.kind === 'adaptive') {
    const detector = pair.source.slice(ADAPTIVE_PREFIX.length);
    const ids = [...new Set(Object.values(pool.plan.detectors.find((d) => d.name === detector)!.models).flat())];
    for (const id of ids) {
      const m = info(id);
      if (m && !m.tfjs) {
        return m.gradientEngine === 'none'
          ? `${id} runs black-box (an ONNX model offers no input gradients); the adaptive ensemble differentiates through every model of ${detector}`
          : `${id} has no tfjs classifier on engine ${m.engine}; the adaptive ensemble differentiates on tfjs (use --engine auto or tfjs)`;
      }
    }
    return undefined;
  }
  const m = info(pair.source);
  if (m?.gradientEngine === 'none' && !parseAttackSpec(pair.attack).gradientFree) {
    return `${pair.source} runs black-box (an ONNX model offers no input gradients); black-box attacks: square`;
  }
  return undefined;
}

function pairsOf(o: AuditBenchOptions, plan: DetectorPlan, planIds: readonly string[]): Pair[] {
  const specs = (o.attacks ?? DEFAULT_BENCH_ATTACKS).map((s) => s.trim());
  const attacks = specs.map((s) => parseAttackSpec(s).id);
  if (new Set(attacks).size !== attacks.length) throw Errors.badArgument(`an attack is named twice: ${attacks.join(', ')}`);
  const sources = [...(o.sources ?? DEFAULT_BENCH_SOURCES)];
  const surrogate = o.surrogate === undefined ? DEFAULT_SURROGATE : o.surrogate;
  if (surrogate !== null && !sources.includes(surrogate)) sources.push(surrogate);
  const pairs: Pair[] = [];
  attacks.forEach((attack, a) => {
    for (const source of sources) pairs.push({ attack, spec: specs[a]!, source, kind: planIds.includes(source) ? 'white-box' : 'transfer' });
  });
  const adaptive = o.adaptive === undefined ? (plan.detectors.some((d) => d.name === DEFAULT_ADAPTIVE.detector) ? DEFAULT_ADAPTIVE : null) : o.adaptive;
  if (adaptive) {
    if (!plan.detectors.some((d) => d.name === adaptive.detector)) {
      throw Errors.badArgument(`the adaptive attack targets '${adaptive.detector}', which is not a detector of the plan`);
    }
    const spec = `${adaptive.attack.trim()} targeted`;
    pairs.push({ attack: parseAttackSpec(adaptive.attack).id, spec, source: `${ADAPTIVE_PREFIX}${adaptive.detector}`, kind: 'adaptive' });
  }
  if (pairs.length === 0) throw Errors.badArgument('nothing to attack: no attack, or no source');
  return pairs;
}

function detectorResult(
  clean: ArrayLike<number>,
  positives: number[],
  threshold: number,
  targets: readonly number[],
  rocPoints: number,
): BenchDetectorResult {
  const calibratedRate = detectionRate(positives, threshold);
  const calibrated = { threshold, tpr: positives.length ? calibratedRate.rate : null, ci: calibratedRate.ci };
  if (positives.length === 0) return { auc: null, auc_ci: null, auc_se: null, tpr_at_fpr: [], calibrated, roc: [] };
  const auc = rocAuc(clean, positives);
  return {
    auc: auc.auc,
    auc_ci: auc.ci,
    auc_se: Number.isNaN(auc.se) ? null : auc.se,
    tpr_at_fpr: tprAtFpr(clean, positives, targets).map((t) => ({ target: t.target, threshold: t.threshold, fpr: t.fpr, tpr: t.tpr, ci: t.ci })),
    calibrated,
    roc: thin(rocCurve(clean, positives), rocPoints),
  };
}

/**
 * Runs the benchmark on an open pool (whose models include every source) with its calibration.
 */
async function benchOnPool(pool: AuditPool, calibration: Calibration, calibrationFile: string | null, o: AuditBenchOptions): Promise<AuditBenchResult> {
  const t0 = performance.now();
  const batch = positiveInt('batch', o.batch, 32);
  const maxInFlight = positiveInt('maxInFlight', o.maxInFlight, 2 * pool.runner.threads);
  const limit = positiveInt('limit', o.limit, 500);
  const retries = o.retries ?? 2;
  const seed = o.seed ?? 0;
  const rocPoints = Math.max(2, positiveInt('rocPoints', o.rocPoints, 101));
  const targets = [...(o.targets ?? [0.01, 0.05])];
  const plan = pool.plan;
  const skipped: BenchSkipped[] = [];
  const pairs = pairsOf(o, plan, pool.planIds).filter((pair) => {
    const reason = skipReason(pair, pool);
    if (reason !== undefined) skipped.push({ attack: pair.attack, label: pair.spec, source: pair.source, kind: pair.kind, reason });
    return reason === undefined;
  });
  const uri = o.data ?? DEFAULT_CALIBRATION_DATA;
  const calibrationUri = o.calibrationData ?? DEFAULT_CALIBRATION_DATA;
  // On the calibration source, only the positions calibration never used.
  const heldOut = uri === calibrationUri;
  const held = (position: number) => !heldOut || calibrationStage(position, false) === null;
  const records = await cleanRecords(uri, held, limit, o.signal);
  const n = records.length;
  if (n === 0) throw Errors.badSource({ file: uri }, 'no clean records to measure on');
  const names = [...plan.detectors.map((d) => d.name), ...(plan.combined ? ['combined'] : [])];
  const M = pool.planIds.length;
  const classes = pool.classes;

  const cleanScores: Record<string, Float64Array> = Object.fromEntries(names.map((k) => [k, new Float64Array(n)]));
  const cleanPreds = new Int32Array(M * n);
  const perPair: PairScores[] = pairs.map(() => ({
    scores: Object.fromEntries(names.map((k) => [k, new Float64Array(n)])),
    success: new Uint8Array(n),
    sourceClean: new Int32Array(n),
    preds: new Int32Array(M * n),
    linf: new Float32Array(n),
    l2: new Float32Array(n),
  }));

  interface Job {
    index: number;
    from: number;
    count: number;
    /** -1 for the clean batch. */
    pair: number;
  }
  const jobs: Job[] = [];
  for (let from = 0, b = 0; from < n; from += batch, b++) {
    const count = Math.min(batch, n - from);
    for (let p = -1; p < pairs.length; p++) jobs.push({ index: jobs.length, from, count, pair: p });
  }
  const labelsOf = (from: number, count: number) => Int32Array.from(records.slice(from, from + count), (r) => r.label!);
  const taskOf = (job: Job, attempt: number): AuditTask => {
    const { from, count } = job;
    const pixels = new Float32Array(count * pool.dim);
    for (let i = 0; i < count; i++) pixels.set(records[from + i]!.pixels, i * pool.dim);
    const base = { index: job.index, attempt, count, dim: pool.dim, pixels };
    if (job.pair < 0) return { kind: 'score', ...base, evidence: false };
    const pair = pairs[job.pair]!;
    const labels = labelsOf(from, count);
    const bs = batchSeed(seed, from);
    const task: AuditTask = { kind: 'attack', ...base, labels, attack: pair.attack, source: pair.source, seed: pairSeed(bs, pair.attack, pair.source) };
    if (pair.kind === 'adaptive') {
      const rng = new Rng(deriveSeed(bs, 0x7a));
      task.targets = labels.map((y) => (y + 1 + rng.int(0, classes - 2)) % classes);
    }
    return task;
  };

  let done = 0;
  const total = jobs.length;
  o.onProgress?.({ done, total });
  const store = (job: Job, r: AuditTaskResult) => {
    const scores = withCombined(calibration, r.scores);
    const { from, count } = job;
    const target = job.pair < 0 ? { scores: cleanScores, preds: cleanPreds } : perPair[job.pair]!;
    for (const k of names) {
      const s = scores[k]!;
      for (let i = 0; i < count; i++) target.scores[k]![from + i] = s[i]!;
    }
    for (let m = 0; m < M; m++) for (let i = 0; i < count; i++) target.preds[m * n + from + i] = r.preds[m * count + i]!;
    if (job.pair >= 0) {
      const p = perPair[job.pair]!;
      const a = r.attack!;
      p.success.set(a.success, from);
      p.sourceClean.set(a.sourceClean, from);
      p.linf.set(a.linf, from);
      p.l2.set(a.l2, from);
    }
  };

  const controller = new AbortController();
  const onAbort = () => controller.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await lastValueFrom(
      from(jobs).pipe(
        runTasks(async (job: Job, attempt, signal) => ({ job, result: await pool.runner.run(taskOf(job, attempt), signal) }), {
          concurrency: maxInFlight,
          retries,
          retryable: isWorkerCrash,
          describe: (job) => `task ${job.index}`,
        }),
        tap(({ job, result }) => {
          store(job, result);
          o.onProgress?.({ done: ++done, total });
        }),
      ),
      { defaultValue: undefined },
    );
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }

  const thresholds: Record<string, number> = Object.fromEntries(Object.entries(calibration.detectors).map(([k, c]) => [k, c.threshold]));
  if (calibration.combined) thresholds.combined = calibration.combined.threshold;
  const labels = labelsOf(0, n);
  const rate = (flags: (i: number) => boolean, count: number): ProportionSummary => {
    const prop = new Proportion();
    for (let i = 0; i < count; i++) prop.add(flags(i));
    return prop.summary();
  };

  const results: BenchPairResult[] = pairs.map((pair, p) => {
    const s = perPair[p]!;
    const positives: number[] = [];
    const attempted = new Proportion();
    for (let i = 0; i < n; i++) {
      if (s.sourceClean[i] !== labels[i]) continue;
      const hit = s.success[i] === 1;
      attempted.add(hit);
      if (hit) positives.push(i);
    }
    const fooled: Record<string, ProportionSummary> = {};
    pool.planIds.forEach((id, m) => {
      const prop = new Proportion();
      for (let i = 0; i < n; i++) if (cleanPreds[m * n + i] === labels[i]) prop.add(s.preds[m * n + i] !== labels[i]);
      fooled[id] = prop.summary();
    });
    return {
      attack: pair.attack,
      label: pair.spec,
      source: pair.source,
      kind: pair.kind,
      n,
      attack_success: attempted.summary(),
      positives: positives.length,
      fooled,
      median_linf: median(positives.map((i) => s.linf[i]!)),
      median_l2: median(positives.map((i) => s.l2[i]!)),
      detectors: Object.fromEntries(
        names.map((k) => [k, detectorResult(cleanScores[k]!, positives.map((i) => s.scores[k]![i]!), thresholds[k]!, targets, rocPoints)]),
      ),
    };
  });

  return {
    type: 'audit-bench',
    version: 1,
    data: { uri, positions: heldOut ? 'position % 2 == 1 (held out from calibration)' : 'all', n },
    fpr_targets: targets,
    detectors: Object.fromEntries([...plan.detectors.map((d) => [d.name, d.id] as const), ...(plan.combined ? [['combined', plan.combined.id] as const] : [])]),
    calibration: { fpr: calibration.fpr, file: calibrationFile, source: calibration.source ?? null, thresholds },
    clean: {
      n,
      flag_rate: Object.fromEntries(names.map((k) => [k, rate((i) => cleanScores[k]![i]! > thresholds[k]!, n)])),
      accuracy: Object.fromEntries(pool.planIds.map((id, m) => [id, rate((i) => cleanPreds[m * n + i] === labels[i], n)])),
    },
    results,
    skipped,
    elapsed_s: (performance.now() - t0) / 1000,
    provenance: {
      ...o.provenance,
      ...poolRun(pool),
      batch,
      seed,
      models: pool.digests,
    },
  };
}

/**
 * Runs the benchmark: opens the pool with the detectors' models and every source, reuses or makes
 * the calibration, attacks and scores in the pool, measures in the main thread.
 *
 * @example
 *   const result = await auditBench({ limit: 200, attacks: ['fgsm:eps=0.2'] });
 *   result.results[0].detectors.combined.auc;
 */
export async function auditBench(options: AuditBenchOptions = {}): Promise<AuditBenchResult> {
  const sources = [...(options.sources ?? DEFAULT_BENCH_SOURCES)];
  const surrogate = options.surrogate === undefined ? DEFAULT_SURROGATE : options.surrogate;
  if (surrogate !== null) sources.push(surrogate);
  // Checked before any model is read, so that a typo fails at once.
  for (const spec of [...(options.attacks ?? DEFAULT_BENCH_ATTACKS), ...(options.adaptive ? [options.adaptive.attack] : [])]) parseAttackSpec(spec);
  const pool = await openAuditPool(options, sources);
  try {
    const batch = positiveInt('batch', options.batch, 32);
    const { calibration, file } = await resolveCalibration(pool, {
      ...options,
      batch,
      maxInFlight: positiveInt('maxInFlight', options.maxInFlight, 2 * pool.runner.threads),
      retries: options.retries ?? 2,
    });
    return await benchOnPool(pool, calibration, file, options);
  } finally {
    await pool.close();
  }
}

/** The `roc` lines of a result, for `advstream report` (one per attack, source and detector). */
export function rocLines(result: AuditBenchResult): RocLine[] {
  return result.results.flatMap((r) =>
    Object.entries(r.detectors)
      .filter(([, d]) => d.roc.length > 0)
      .map(([detector, d]): RocLine => ({ type: 'roc', detector, attack: `${r.label} @ ${r.source}`, points: d.roc, auc: d.auc })),
  );
}
