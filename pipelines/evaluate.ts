/**
 * The streaming evaluation: source → batches → pool → accumulate → events.
 *
 * Flow control. The source is pulled, never pushed: each batch slot asks it for `batch` records, and
 * a slot opens only when a batch completes, so at most `maxInFlight` batches (default two per
 * worker) are pulled but not finished, and at most twice that many completed batches wait to be
 * committed in source order. Memory stays flat on an endless source.
 *
 * Commit order. Batches complete in any order; the live statistics take each as it completes, the
 * committed statistics (checkpoints, `batch` events, the final line) take them in source order, so a
 * checkpoint always describes a contiguous prefix of the source.
 *
 * Stopping. `stop` (SIGINT in the CLI) and `untilCi` stop reading: the partly filled batch is
 * dropped, the batches in flight finish, and the final event follows. Unsubscribing instead aborts
 * the tasks in flight and closes the pool, with no final event.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { filter, map, Observable, ReplaySubject, Subject, tap, type Subscription } from 'rxjs';
import { parseAttackSpec } from '../src/attacks/index.js';
import {
  formatShape,
  openSource,
  toObservable,
  type ImageRecord,
  type OnBadRecord,
  type RecordSource,
  type RejectSink,
  type SourceOptions,
} from '../src/data/index.js';
import { Errors } from '../src/errors.js';
import { blackBoxReason, loadArtifact, type ModelArtifact } from '../src/models/artifact.js';
import { parseEngineChoice, type EngineChoice } from '../src/engine/build.js';
import { defaultZooRefs } from '../src/models/zoo.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import {
  EvalStats,
  maxIntervalWidth,
  type EvalSummary,
  type SampleResult,
  type ThroughputSummary,
} from '../src/stats/index.js';
import { batchSeed, type EvalReady, type EvalSetup, type EvalTask, type EvalTaskResult, type EvalTestHooks } from '../workers/eval-task.js';
import { enginesOf } from '../workers/protocol.js';
import {
  configDifferences,
  configHash,
  modelDigest,
  readCheckpoint,
  writeCheckpoint,
  type CheckpointConfig,
  type EvalCheckpoint,
} from './checkpoint.js';
import { batchRecords, inIndexOrder, runTasks } from './operators.js';
import { isWorkerCrash, mainThreadRunner, poolRunner, type BatchRunner } from './runner.js';
import { sampleResults, skippedPairs, worstCaseGroups, type BatchPixels, type ResultLayout } from './samples.js';

/** The attacks of an evaluation that names none. */
export const DEFAULT_ATTACKS: readonly string[] = ['fgsm:eps=0.1', 'pgd:eps=0.3'];

/** A source to open by URI: evaluate opens it itself, so a resumed run can skip by offset (IDX seeks). */
export interface SourceSpec extends SourceOptions {
  uri: string;
}

export type EvalSource = RecordSource | SourceSpec;

/** A stats event every so many seconds, or every so many committed batches. */
export type StatsEvery = { seconds: number } | { batches: number };

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
  /** Test only: see {@link EvalTestHooks}. */
  testHooks?: EvalTestHooks;
}

export interface EvalModelInfo {
  id: string;
  family: string;
  num_classes: number;
  input_shape: [number, number, number];
  /** What scores the model (`onnx-cpu`, `tfjs-wasm`, …); empty before the workers are ready. */
  engine: string;
  /** What computes its input gradients; `none` for a black-box (ONNX) model. */
  gradient_engine: string;
  /** Why it runs black-box (its gradient-attack pairs are skipped): the op without a gradient rule. */
  black_box?: string;
  sha256: string;
  /** From the model's manifest, when it has one. */
  manifest?: { name: string; summary: string; accuracy: { clean: number; testImages: number; source: string }; commit: string };
}

export interface EvalProgress {
  /** Source records consumed by committed batches (after the data offset, resumed runs included). */
  consumed: number;
  /** Records the source holds after offset and limit, when known. */
  total: number | null;
  batches: number;
  in_flight: number;
  retries: number;
  dropped: number;
}

export interface StartEvent {
  type: 'start';
  source: string;
  backend: string;
  /** The engines computing the models, distinct, joined by `+` (`onnx-cpu`, `onnx-cpu+tfjs-wasm`). */
  engine: string;
  simd: boolean;
  mode: 'pool' | 'main-thread';
  workers: number;
  batch: number;
  seed: number;
  models: EvalModelInfo[];
  attacks: string[];
  config_hash: string;
  resumed: { consumed: number; batches: number; images: number } | null;
}

/** The per-image results of one batch, in source order. */
export interface BatchEvent {
  type: 'batch';
  index: number;
  /** Source position of the batch's first record (its seed derives from it). */
  first: number;
  ids: string[];
  samples: SampleResult[];
  worker: string;
  /** With `samplePixels`: the pixels of the batch's first `pixels.count` images, when any is among the first N. */
  pixels?: BatchPixels;
}

export interface StatsEvent extends EvalSummary {
  type: 'stats';
  elapsed_s: number;
  max_ci_width: number;
  throughput: ThroughputSummary;
  progress: EvalProgress;
}

export type StopReason = 'end' | 'until-ci' | 'stopped';

export interface FinalEvent extends EvalSummary {
  type: 'final';
  stop_reason: StopReason;
  backend: string;
  /** As in {@link StartEvent.engine}. */
  engine: string;
  simd: boolean;
  mode: 'pool' | 'main-thread';
  workers: number;
  max_ci_width: number;
  throughput: ThroughputSummary & { elapsed_s: number };
  progress: EvalProgress;
  provenance: Record<string, unknown>;
}

export type EvalEvent = StartEvent | BatchEvent | StatsEvent | FinalEvent;

interface Plan {
  artifacts: ModelArtifact[];
  engine: EngineChoice;
  models: string[];
  attacks: string[];
  batch: number;
  seed: number;
  workers: number;
  mainThread: boolean;
  retries: number;
  grids: Record<string, number[]>;
  layout: ResultLayout;
  config: CheckpointConfig;
  hash: string;
  checkpoint: EvalCheckpoint | undefined;
  /** Opens the source past the first `consumed` records. */
  open(consumed: number): { records: AsyncIterable<ImageRecord>; describe: () => { count?: number } };
  uri: string;
  offset: number;
  limit: number | undefined;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(Number.isSafeInteger(v) && v > 0)) throw Errors.badArgument(`${name} must be a positive integer, got ${String(value)}`);
  return v;
}

function isSpec(source: EvalSource): source is SourceSpec {
  return typeof (source as SourceSpec).uri === 'string' && !(Symbol.asyncIterator in source);
}

async function* skipRecords(records: AsyncIterable<ImageRecord>, n: number): AsyncGenerator<ImageRecord, void, undefined> {
  let skipped = 0;
  for await (const record of records) {
    if (skipped < n) skipped++;
    else yield record;
  }
}

function defaultGrid(attackId: string): number[] | undefined {
  const attack = parseAttackSpec(attackId);
  if (attack.name !== 'mineps') return undefined;
  const max = Number(attack.params.max);
  return Array.from({ length: 41 }, (_, i) => (i * max) / 40);
}

let version: string | undefined;
function advstreamVersion(): string {
  version ??= (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

async function plan(source: EvalSource, o: EvaluateOptions): Promise<Plan> {
  const batch = positiveInt('batch', o.batch, 32);
  const workers = positiveInt('workers', o.workers, os.availableParallelism());
  const retries = o.retries ?? 2;
  if (!(Number.isSafeInteger(retries) && retries >= 0)) throw Errors.badArgument(`retries must be a non-negative integer, got ${retries}`);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw Errors.badArgument(`seed must be an integer, got ${seed}`);
  if (o.untilCi !== undefined && !(o.untilCi > 0 && o.untilCi <= 1)) {
    throw Errors.badArgument(`the interval width to stop at must be in (0, 1], got ${o.untilCi}`);
  }
  if (o.samplePixels !== undefined && !(Number.isSafeInteger(o.samplePixels) && o.samplePixels >= 0)) {
    throw Errors.badArgument(`samplePixels must be a non-negative integer, got ${o.samplePixels}`);
  }
  if (o.onBadRecord !== undefined && o.onBadRecord !== 'fail' && o.onBadRecord !== 'skip') {
    throw Errors.badArgument(`onBadRecord must be 'fail' or 'skip', got '${String(o.onBadRecord)}'`);
  }
  // Specs are checked before any model is read, so a typo fails at once.
  const attacks = (o.attacks ?? DEFAULT_ATTACKS).map((spec) => parseAttackSpec(spec).id);
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
  for (const id of attacks) {
    const grid = o.curveGrids?.[id] ?? defaultGrid(id);
    if (grid) grids[id] = [...grid];
  }
  const worstCase = o.worstCase === false ? [] : worstCaseGroups(attacks.map((id) => parseAttackSpec(id)));

  let uri: string;
  let offset = 0;
  let limit: number | undefined;
  let open: Plan['open'];
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
    data: { uri, offset, limit: limit ?? null, on_bad_record: o.onBadRecord ?? 'fail' },
    models: artifacts.map((a) => ({ id: a.id, sha256: modelDigest(a) })),
    attacks,
    seed,
    batch,
    backend: o.backend ?? 'auto',
    engine: engine,
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
    engine,
    batch,
    seed,
    workers,
    mainThread: o.mainThread ?? o.backend === 'tensorflow',
    retries,
    grids,
    layout: {
      models,
      attacks,
      worstCase,
      skipped: skippedPairs(
        attacks.map((id) => parseAttackSpec(id)),
        artifacts.map((a) => blackBoxReason(a) !== undefined),
      ),
    },
    config,
    hash,
    checkpoint,
    open,
    uri,
    offset,
    limit,
  };
}

/** The distinct engines of the models; empty before the workers are ready (a resumed, finished run). */
function engineOf(ready: EvalReady | undefined): string {
  return enginesOf(ready?.models ?? []);
}

function modelInfo(p: Plan, ready: EvalReady | undefined): EvalModelInfo[] {
  return p.artifacts.map((a, i) => {
    const m = ready?.models[i];
    const info: EvalModelInfo = {
      id: a.id,
      family: m?.family ?? a.manifest?.family ?? ('family' in a.modelJson ? a.modelJson.family : a.modelJson.format === 'onnx' ? 'onnx' : 'user'),
      num_classes: m?.numClasses ?? 0,
      input_shape: m?.inputShape ?? [0, 0, 0],
      engine: m?.engine ?? '',
      gradient_engine: m?.gradientEngine ?? '',
      sha256: p.config.models[i]!.sha256,
    };
    const blackBox = blackBoxReason(a);
    if (blackBox !== undefined) info.black_box = blackBox;
    if (a.manifest) {
      const { name, summary, accuracy, commit } = a.manifest;
      info.manifest = { name, summary, accuracy, commit };
    }
    return info;
  });
}

/** One batch between the pool and the accumulator; its pixels stay behind, but for the first `samplePixels` images. */
interface Done {
  index: number;
  first: number;
  /** Source position after the batch's last record, counted from the data offset. */
  end: number;
  ids: string[];
  samples: SampleResult[];
  result: EvalTaskResult;
  pixels?: BatchPixels;
}

/**
 * Evaluates models against attacks on a stream of records: an Observable of `start`, then `batch`
 * (per-image results, in source order) and periodic `stats` events, then one `final` event. Cold:
 * each subscription runs its own evaluation; unsubscribing aborts it.
 *
 * @example
 * evaluate({ uri: 'mnist:test', limit: 1000 }, { models: ['zoo:mlp-relu'], attacks: ['fgsm:eps=0.1'], workers: 2 })
 *   .pipe(filter((e): e is FinalEvent => e.type === 'final'))
 *   .subscribe((e) => console.log(e.models['zoo:mlp-relu'].attacks));
 */
export function evaluate(source: EvalSource, options: EvaluateOptions = {}): Observable<EvalEvent> {
  return new Observable<EvalEvent>((subscriber) => {
    const t0 = performance.now();
    const counters = options.counters ?? evalCounters();
    const gone = new AbortController();
    let runner: BatchRunner | undefined;
    let flow: Subscription | undefined;
    let timer: NodeJS.Timeout | undefined;
    let onStop: (() => void) | undefined;

    const closeRunner = async () => {
      if (!runner) return;
      await runner.close();
      counters.poolOpen = false;
    };

    const main = async () => {
      const p = await plan(source, options);
      if (gone.signal.aborted) return;
      const resumed = p.checkpoint;
      const elapsed = () => (performance.now() - t0) / 1000;
      const stats = () => (resumed ? EvalStats.fromJSON(resumed.stats) : new EvalStats({ curveGrids: p.grids }));
      const live = stats();
      const committed = stats();
      const base = { consumed: resumed?.consumed ?? 0, batches: resumed?.batches ?? 0 };
      let consumed = base.consumed;
      let stopReason: StopReason | undefined;
      let opened: ReturnType<Plan['open']> | undefined;

      const total = (): number | null => {
        const declared = opened?.describe().count;
        const bound = Math.min(p.limit ?? Infinity, declared === undefined ? Infinity : Math.max(0, declared - p.offset));
        return Number.isFinite(bound) ? bound : null;
      };
      const progress = (): EvalProgress => ({
        consumed,
        total: total(),
        batches: base.batches + counters.committed,
        in_flight: counters.inFlight,
        retries: counters.retried,
        dropped: counters.dropped,
      });
      const provenance = (ready: EvalReady | undefined): Record<string, unknown> => ({
        ...options.provenance,
        version: advstreamVersion(),
        seed: p.seed,
        batch: p.batch,
        data: { uri: p.uri, offset: p.offset, limit: p.limit ?? null },
        models: modelInfo(p, ready),
        attacks: p.attacks,
        config_hash: p.hash,
        resumed_from: resumed ? { consumed: resumed.consumed, batches: resumed.batches, images: resumed.stats.images } : null,
      });
      const final = (
        s: EvalStats,
        reason: StopReason,
        backend: { backend: string; simd: boolean },
        mode: FinalEvent['mode'],
        workers: number,
        ready: EvalReady | undefined,
      ): FinalEvent => {
        const summary = s.summary();
        return {
          type: 'final',
          stop_reason: reason,
          ...summary,
          backend: backend.backend,
          engine: engineOf(ready),
          simd: backend.simd,
          mode,
          workers,
          max_ci_width: maxIntervalWidth(summary),
          throughput: { ...s.throughput.summary(), elapsed_s: elapsed() },
          progress: progress(),
          provenance: provenance(ready),
        };
      };
      const startEvent = (backend: { backend: string; simd: boolean }, mode: StartEvent['mode'], workers: number, ready?: EvalReady): StartEvent => ({
        type: 'start',
        source: p.uri,
        backend: backend.backend,
        engine: engineOf(ready),
        simd: backend.simd,
        mode,
        workers,
        batch: p.batch,
        seed: p.seed,
        models: modelInfo(p, ready),
        attacks: p.attacks,
        config_hash: p.hash,
        resumed: resumed ? { consumed: resumed.consumed, batches: resumed.batches, images: resumed.stats.images } : null,
      });

      // A finished run: its checkpoint already holds the answer.
      if (resumed?.complete) {
        const mode = p.mainThread ? 'main-thread' : 'pool';
        subscriber.next(startEvent(resumed.backend, mode, 0));
        subscriber.next(final(committed, 'end', resumed.backend, mode, 0, undefined));
        subscriber.complete();
        return;
      }

      const setup: EvalSetup = {
        models: p.artifacts,
        attacks: p.attacks,
        engine: p.engine,
        ...(options.backend !== undefined ? { backend: options.backend } : {}),
        ...(options.testHooks ? { hooks: options.testHooks } : {}),
      };
      runner = p.mainThread ? mainThreadRunner(setup) : poolRunner(setup, p.workers);
      counters.poolOpen = runner.mode === 'pool';
      const ready = await runner.ready();
      if (gone.signal.aborted) return;
      const backend = { backend: ready.backend.backend, simd: ready.backend.simd };
      if (resumed && resumed.backend.backend !== backend.backend) {
        throw Errors.checkpointMismatch(options.checkpoint!.file, [`backend: checkpoint has ${resumed.backend.backend}, this run ${backend.backend}`]);
      }
      const shape = ready.models[0]!.inputShape;
      for (const m of ready.models) {
        if (formatShape(m.inputShape) !== formatShape(shape)) {
          throw Errors.badArgument(`the models take different inputs: ${ready.models.map((x) => `${x.id} ${formatShape(x.inputShape)}`).join(', ')}`);
        }
      }
      const dim = shape[0] * shape[1] * shape[2];
      const classes = Math.min(...ready.models.map((m) => m.numClasses));
      const maxInFlight = positiveInt('maxInFlight', options.maxInFlight, 2 * runner.threads);
      const mode = runner.mode;
      const run = runner;
      subscriber.next(startEvent(backend, mode, runner.threads, ready));

      let writes: Promise<void> = Promise.resolve();
      let writeError: unknown;
      const saveCheckpoint = (complete: boolean): Promise<void> => {
        const ck = options.checkpoint;
        if (!ck) return writes;
        const snapshot: EvalCheckpoint = {
          version: 1,
          config_hash: p.hash,
          config: p.config,
          consumed,
          batches: base.batches + counters.committed,
          complete,
          backend,
          stats: committed.toJSON(),
          annotations: ck.annotate?.() ?? {},
          saved_at: new Date().toISOString(),
        };
        writes = writes.then(() => writeCheckpoint(ck.file, snapshot)).catch((e: unknown) => {
          writeError ??= e;
        });
        return writes;
      };
      const statsEvent = (): StatsEvent => {
        const summary = live.summary();
        return {
          type: 'stats',
          ...summary,
          elapsed_s: elapsed(),
          max_ci_width: maxIntervalWidth(summary),
          throughput: live.throughput.summary(),
          progress: progress(),
        };
      };
      const emitStats = () => {
        subscriber.next(statsEvent());
        void saveCheckpoint(false);
      };

      const demand$ = new Subject<number>();
      const stop$ = new ReplaySubject<void>(1);
      const requestStop = (reason: StopReason) => {
        if (stopReason) return;
        stopReason = reason;
        stop$.next();
        stop$.complete();
      };
      // Batch slots: one opens per completed batch, never more than maxInFlight running, and
      // never more than 2·maxInFlight ahead of the commit frontier (the reorder buffer's bound).
      let slots = 0;
      const topUp = () => {
        while (
          !stopReason &&
          slots - counters.completed < maxInFlight &&
          slots < counters.committed + 2 * maxInFlight
        ) {
          slots++;
          demand$.next(p.batch);
        }
      };

      const policy = options.onBadRecord ?? 'fail';
      const unusable = (record: ImageRecord): string | undefined => {
        if (record.label === undefined) return 'no label: an evaluation needs labelled records';
        if (record.label >= classes) return `label ${record.label} is not a class of the models (${classes} classes)`;
        return undefined;
      };
      const reject = (record: ImageRecord, reason: string) => {
        const error = Errors.badRecord({ file: p.uri, id: record.id }, reason);
        if (options.rejects) {
          Promise.resolve(options.rejects.write({ file: p.uri, id: record.id, code: error.code, reason })).catch((e: unknown) =>
            subscriber.error(e),
          );
        }
        if (policy === 'fail') throw error;
        counters.dropped++;
        demand$.next(1);
      };

      opened = p.open(base.consumed);
      let position = base.consumed;
      // The images evaluated before this one, resumed ones included: the first `samplePixels` carry pixels.
      let ordinal = resumed?.stats.images ?? 0;
      const samplePixels = options.samplePixels ?? 0;
      let nextIndex = 0;
      const records$ = toObservable(opened.records, { demand$ }).pipe(
        map((record) => {
          counters.pulled++;
          if (formatShape(record.shape) !== formatShape(shape)) {
            throw Errors.badArgument(`${p.uri} holds ${formatShape(record.shape)} images but the models take ${formatShape(shape)}`);
          }
          return { record, position: position++ };
        }),
        filter(({ record }) => {
          const why = unusable(record);
          if (why !== undefined) reject(record, why);
          return why === undefined;
        }),
        map((item) => ({ ...item, ordinal: ordinal++ })),
        tap(() => {
          counters.maxOutstanding = Math.max(counters.maxOutstanding, counters.pulled - counters.dropped - counters.finished);
        }),
      );

      const done$ = records$.pipe(
        batchRecords(p.batch, { until$: stop$ }),
        map((items) => {
          const n = items.length;
          const pixels = new Float32Array(n * dim);
          const labels = new Int32Array(n);
          items.forEach(({ record }, i) => {
            pixels.set(record.pixels, i * dim);
            labels[i] = record.label!;
          });
          const first = p.offset + items[0]!.position;
          const task: EvalTask = {
            index: nextIndex++,
            attempt: 0,
            seed: batchSeed(p.seed, first),
            ids: items.map(({ record }) => record.id),
            count: n,
            dim,
            pixels,
            labels,
            pixelCount: Math.min(n, Math.max(0, samplePixels - items[0]!.ordinal)),
          };
          return { task, first, end: items[n - 1]!.position + 1 };
        }),
        tap(() => {
          counters.submitted++;
          counters.inFlight++;
          counters.maxInFlight = Math.max(counters.maxInFlight, counters.inFlight);
        }),
        runTasks(
          async ({ task, first, end }, attempt, signal): Promise<Done> => {
            const result = await run.run({ ...task, attempt }, signal);
            const done: Done = { index: task.index, first, end, ids: task.ids, samples: sampleResults(p.layout, task.labels, result), result };
            if (result.pixelCount > 0) {
              const count = result.pixelCount;
              done.pixels = { count, shape, clean: task.pixels.slice(0, count * dim), adversarial: result.adversarial };
            }
            return done;
          },
          {
            concurrency: maxInFlight,
            retries: p.retries,
            retryable: isWorkerCrash,
            onRetry: () => counters.retried++,
            onAbort: () => {
              counters.aborted++;
              counters.inFlight--;
            },
            describe: ({ task, first }) => `batch ${task.index} (records from position ${first})`,
          },
        ),
        tap((d) => {
          counters.inFlight--;
          counters.completed++;
          counters.finished += d.ids.length;
          for (const sample of d.samples) live.add(sample);
          live.throughput.add(throughputTask(d.result));
          const seen = counters.tensors[d.result.workerId];
          counters.tensors[d.result.workerId] = { first: seen?.first ?? d.result.tensors, last: d.result.tensors };
          if (options.untilCi !== undefined && maxIntervalWidth(live.summary()) < options.untilCi) requestStop('until-ci');
          topUp();
        }),
        inIndexOrder((d) => d.index),
      );

      const everyBatches = options.statsEvery && 'batches' in options.statsEvery ? options.statsEvery.batches : undefined;
      const everySeconds = options.statsEvery && 'seconds' in options.statsEvery ? options.statsEvery.seconds : everyBatches ? undefined : 2;
      if (everyBatches !== undefined && !(Number.isSafeInteger(everyBatches) && everyBatches > 0)) {
        throw Errors.badArgument(`stats every N batches needs a positive integer N, got ${everyBatches}`);
      }
      if (everySeconds !== undefined && !(everySeconds > 0)) throw Errors.badArgument(`stats every S seconds needs S > 0, got ${everySeconds}`);

      await new Promise<void>((resolve, reject) => {
        flow = done$.subscribe({
          next: (d) => {
            for (const sample of d.samples) committed.add(sample);
            committed.throughput.add(throughputTask(d.result));
            counters.committed++;
            consumed = d.end;
            subscriber.next({
              type: 'batch',
              index: base.batches + d.index,
              first: d.first,
              ids: d.ids,
              samples: d.samples,
              worker: d.result.workerId,
              ...(d.pixels ? { pixels: d.pixels } : {}),
            });
            // The subscriber may have left inside that call (take(n)): then nothing more is due.
            if (gone.signal.aborted) return;
            topUp();
            if (everyBatches !== undefined && counters.committed % everyBatches === 0) emitStats();
          },
          error: reject,
          complete: resolve,
        });
        if (everySeconds !== undefined) timer = setInterval(emitStats, everySeconds * 1000);
        if (options.stop) {
          const signal = options.stop;
          onStop = () => requestStop('stopped');
          if (signal.aborted) onStop();
          else signal.addEventListener('abort', onStop, { once: true });
        }
        topUp();
      }).catch(async (e: unknown) => {
        // The committed prefix is still sound: keep it, so that a rerun resumes rather than restarts.
        await saveCheckpoint(false);
        throw e;
      });
      clearInterval(timer);
      const reason = stopReason ?? 'end';
      subscriber.next(final(committed, reason, backend, mode, run.threads, ready));
      await saveCheckpoint(reason === 'end');
      if (writeError) throw writeError;
      await closeRunner();
      subscriber.complete();
    };

    main().catch(async (e: unknown) => {
      clearInterval(timer);
      await closeRunner().catch(() => {});
      subscriber.error(e);
    });

    return () => {
      gone.abort();
      clearInterval(timer);
      if (onStop) options.stop?.removeEventListener('abort', onStop);
      flow?.unsubscribe();
      void closeRunner().catch(() => {});
    };
  });
}

function throughputTask(r: EvalTaskResult) {
  return { workerId: r.workerId, images: r.count, gradEvals: r.gradEvals, forwardEvals: r.forwardEvals, startMs: r.startMs, endMs: r.endMs };
}
