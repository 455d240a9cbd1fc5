/**
 * What an evaluation is asked to do, checked and resolved before anything starts: every option
 * checked (before a model is read, a pool started), the attack specs parsed once, the models
 * loaded, the (attack, source) pairs that run decided, the checkpoint read and matched, and the
 * source made openable past a resumed prefix.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAttackSpec, type Attack } from '../src/attacks/index.js';
import { openSource, type ImageRecord, type OnBadRecord, type RejectSink } from '../src/data/index.js';
import { parseEngineChoice, type EngineChoice } from '../src/engine/build.js';
import { Errors } from '../src/errors.js';
import { blackBoxReason, loadArtifact, type ModelArtifact } from '../src/models/artifact.js';
import { defaultZooRefs } from '../src/models/zoo.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import type { EvalPair, EvalReady, EvalSetup, EvalTask, EvalTaskResult } from '../workers/eval-task.js';
import { configDifferences, configHash, modelDigest, readCheckpoint, type CheckpointConfig, type EvalCheckpoint } from './checkpoint.js';
import { badRecordPolicy, cadence, isSpec, nonNegativeInt, positiveInt, type Cadence, type EvalSource, type StatsEvery } from './options.js';
import type { TaskKind } from './runner.js';
import { runningPairs, worstCaseGroups, type ResultLayout } from './samples.js';

/** The attacks of an evaluation that names none. */
export const DEFAULT_ATTACKS: readonly string[] = ['fgsm:eps=0.1', 'pgd:eps=0.3'];

export interface CheckpointOptions {
  file: string;
  /** Extra positions to store with each checkpoint, read when it is written (the CLI's samples file size). */
  annotate?: () => Record<string, unknown>;
}

/** Live counters of the dataflow, for monitoring and for tests of its bounds. */
export interface EvalCounters {
  /** Records delivered by the source. */
  pulled: number;
  /** Records skipped as unusable (no label, label out of range) under `onBadRecord: 'skip'`. */
  dropped: number;
  /** Records in completed batches. */
  finished: number;
  /** The most records ever pulled but not finished (pulled − dropped − finished). */
  maxOutstanding: number;
  submitted: number;
  completed: number;
  /** Batches committed in source order, this run. */
  committed: number;
  retried: number;
  /** Tasks aborted in flight by unsubscription. */
  aborted: number;
  inFlight: number;
  maxInFlight: number;
  /** Whether the worker pool is open. */
  poolOpen: boolean;
  /** Live tfjs tensors reported by each thread: after its first task, and after its latest. */
  tensors: Record<string, { first: number; last: number }>;
}

export function evalCounters(): EvalCounters {
  return {
    pulled: 0,
    dropped: 0,
    finished: 0,
    maxOutstanding: 0,
    submitted: 0,
    completed: 0,
    committed: 0,
    retried: 0,
    aborted: 0,
    inFlight: 0,
    maxInFlight: 0,
    poolOpen: false,
    tensors: {},
  };
}

export interface EvaluateOptions {
  /** Model refs (folder, `zoo:NAME`, URL), loaded in the main thread, or artifacts; default `defaultZooRefs()`. */
  models?: readonly (string | ModelArtifact)[];
  /** Attack specs; default {@link DEFAULT_ATTACKS}. */
  attacks?: readonly string[];
  /** Worker threads; default `os.availableParallelism()`. */
  workers?: number;
  /** Records per batch; default 32. */
  batch?: number;
  /** Seeds every attack (per batch, from the batch's first record position); default 0. */
  seed?: number;
  /** Force a backend. `tensorflow` (tfjs-node) runs in the main thread, without a pool. */
  backend?: string;
  /**
   * Which engine computes the models: `auto` (default: ONNX Runtime for ONNX models and the
   * families it has programs for, tfjs otherwise), `tfjs` or `onnx`.
   */
  engine?: EngineChoice;
  /** Run batches in the main thread even without tfjs-node. */
  mainThread?: boolean;
  /** Batches pulled but not finished, at most; default two per worker. */
  maxInFlight?: number;
  /** Retries of a batch whose worker died; default 2. */
  retries?: number;
  /** Default every 2 seconds. */
  statsEvery?: StatsEvery;
  /** Stop reading once every reported 95% interval is narrower than this. */
  untilCi?: number;
  /** Stop reading when aborted; the batches in flight finish and the final event follows. */
  stop?: AbortSignal;
  checkpoint?: CheckpointOptions;
  /** Records an evaluation cannot use (no label, a label the models lack): `fail` (default) or `skip`. */
  onBadRecord?: OnBadRecord;
  rejects?: RejectSink;
  /** Epsilon grids of minimal-ε curves by attack id; `mineps` attacks get 41 points on [0, max]. */
  curveGrids?: Record<string, number[]>;
  /**
   * Report the pointwise worst case per model over attacks that share a norm and ε (AutoAttack's
   * robust accuracy), as attack `worst-case:eps=E,norm=N`; default true (only groups of two or more).
   */
  worstCase?: boolean;
  /**
   * Carry the pixels of the first N images evaluated (in source order), clean and under every
   * attack and source model, in their `batch` events (`pixels`), for image grids; default 0. Only
   * those N images' adversarials come back from the workers, so memory stays bounded.
   */
  samplePixels?: number;
  /** Merged into the final event's provenance (the CLI adds the command line and commit). */
  provenance?: Record<string, unknown>;
  /** Filled live; see {@link EvalCounters}. */
  counters?: EvalCounters;
  /** The task kind the batches run as; default `EVAL_TASKS` (a test runs a task file that fails on purpose). */
  tasks?: TaskKind<EvalSetup, EvalTask, EvalTaskResult, EvalReady>;
}

/** An evaluation, resolved. */
export interface EvalPlan {
  artifacts: ModelArtifact[];
  engine: EngineChoice;
  models: string[];
  /** Canonical attack ids, and the attacks they parse to, in evaluation order. */
  attacks: string[];
  parsed: Attack[];
  /** The (attack, source) pairs that run, in layout order. */
  pairs: EvalPair[];
  batch: number;
  seed: number;
  workers: number;
  mainThread: boolean;
  /** Threads that run batches at once: the workers, or 1 in the main thread. */
  threads: number;
  maxInFlight: number;
  retries: number;
  samplePixels: number;
  untilCi: number | undefined;
  policy: OnBadRecord;
  cadence: Cadence;
  grids: Record<string, number[]>;
  layout: ResultLayout;
  config: CheckpointConfig;
  hash: string;
  /** The checkpoint resumed from, matched against this configuration. */
  checkpoint: EvalCheckpoint | undefined;
  /** Opens the source past the first `consumed` records. */
  open(consumed: number): { records: AsyncIterable<ImageRecord>; describe: () => { count?: number } };
  uri: string;
  offset: number;
  limit: number | undefined;
  version: string;
}

async function* skipRecords(records: AsyncIterable<ImageRecord>, n: number): AsyncGenerator<ImageRecord, void, undefined> {
  let skipped = 0;
  for await (const record of records) {
    if (skipped < n) skipped++;
    else yield record;
  }
}

function defaultGrid(attack: Attack): number[] | undefined {
  if (attack.name !== 'mineps') return undefined;
  const max = Number(attack.params.max);
  return Array.from({ length: 41 }, (_, i) => (i * max) / 40);
}

let version: string | undefined;
function advstreamVersion(): string {
  version ??= (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

/** A model without input gradients: an ONNX graph holding an op without a gradient rule. */
export function isBlackBox(artifact: ModelArtifact): boolean {
  return blackBoxReason(artifact) !== undefined;
}

/** Resolves `source` and `o` into a plan; every option is checked before a model is read. */
export async function planEvaluation(source: EvalSource, o: EvaluateOptions): Promise<EvalPlan> {
  const batch = positiveInt('batch', o.batch, 32);
  const workers = positiveInt('workers', o.workers, os.availableParallelism());
  const mainThread = o.mainThread ?? o.backend === 'tensorflow';
  const threads = mainThread ? 1 : workers;
  const maxInFlight = positiveInt('maxInFlight', o.maxInFlight, 2 * threads);
  const retries = nonNegativeInt('retries', o.retries, 2);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw Errors.badArgument(`seed must be an integer, got ${seed}`);
  if (o.untilCi !== undefined && !(o.untilCi > 0 && o.untilCi <= 1)) {
    throw Errors.badArgument(`the interval width to stop at must be in (0, 1], got ${o.untilCi}`);
  }
  const samplePixels = nonNegativeInt('samplePixels', o.samplePixels, 0);
  const policy = badRecordPolicy(o.onBadRecord, 'fail');
  const every = cadence(o.statsEvery);
  // Specs are checked before any model is read, so a typo fails at once.
  const parsed = (o.attacks ?? DEFAULT_ATTACKS).map((spec) => parseAttackSpec(spec));
  const attacks = parsed.map((a) => a.id);
  if (attacks.length === 0) throw Errors.badArgument('no attack to evaluate');
  if (new Set(attacks).size !== attacks.length) throw Errors.badArgument(`an attack is named twice: ${attacks.join(', ')}`);
  const engine = parseEngineChoice(o.engine ?? 'auto');
  const refs = o.models ?? (await defaultZooRefs());
  if (refs.length === 0) throw Errors.badArgument('no model to evaluate');
  const artifacts: ModelArtifact[] = [];
  for (const ref of refs) artifacts.push(typeof ref === 'string' ? await loadArtifact(ref) : ref);
  const models = artifacts.map((a) => a.id);
  if (new Set(models).size !== models.length) throw Errors.badArgument(`a model is named twice: ${models.join(', ')}`);

  const grids: Record<string, number[]> = {};
  parsed.forEach((attack) => {
    const grid = o.curveGrids?.[attack.id] ?? defaultGrid(attack);
    if (grid) grids[attack.id] = [...grid];
  });
  const worstCase = o.worstCase === false ? [] : worstCaseGroups(parsed);
  const pairs = runningPairs(parsed, artifacts.map(isBlackBox));

  let uri: string;
  let offset = 0;
  let limit: number | undefined;
  let open: EvalPlan['open'];
  if (isSpec(source)) {
    const { uri: u, ...rest } = source;
    uri = u;
    offset = rest.offset ?? 0;
    limit = rest.limit;
    open = (consumed) => {
      const s = openSource(uri, {
        ...rest,
        offset: offset + consumed,
        ...(limit !== undefined ? { limit: Math.max(0, limit - consumed) } : {}),
      });
      return { records: s, describe: () => s.describe() };
    };
  } else {
    uri = source.uri;
    open = (consumed) => ({ records: consumed ? skipRecords(source, consumed) : source, describe: () => source.describe() });
  }

  const config: CheckpointConfig = {
    data: { uri, offset, limit: limit ?? null, on_bad_record: policy },
    models: artifacts.map((a) => ({ id: a.id, sha256: modelDigest(a) })),
    attacks,
    seed,
    batch,
    backend: o.backend ?? 'auto',
    engine,
    worst_case: worstCase.map((g) => g.id),
    curve_grids: grids,
  };
  const hash = configHash(config);
  let checkpoint: EvalCheckpoint | undefined;
  if (o.checkpoint) {
    checkpoint = await readCheckpoint(o.checkpoint.file);
    if (checkpoint && checkpoint.config_hash !== hash) {
      throw Errors.checkpointMismatch(o.checkpoint.file, configDifferences(config, checkpoint.config));
    }
  }
  return {
    artifacts,
    models,
    attacks,
    parsed,
    pairs,
    engine,
    batch,
    seed,
    workers,
    mainThread,
    threads,
    maxInFlight,
    retries,
    samplePixels,
    untilCi: o.untilCi,
    policy,
    cadence: every,
    grids,
    layout: { models, attacks, worstCase, pairs },
    config,
    hash,
    checkpoint,
    open,
    uri,
    offset,
    limit,
    version: advstreamVersion(),
  };
}
