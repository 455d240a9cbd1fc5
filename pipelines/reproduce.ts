/**
 * The reproduction dataflow: runs the evaluations the seed-paper experiments need, one after another,
 * each through {@link evaluate} exactly as `advstream eval` would run it, and keeps each finished
 * evaluation in a work folder so that an interrupted reproduction resumes where it stopped (a
 * finished evaluation is never recomputed; an unfinished one resumes from its checkpoint).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { concat, concatMap, defer, EMPTY, from, ignoreElements, map, type Observable, of, takeWhile } from 'rxjs';
import { canonical, EXPERIMENTS, type DocumentRun, type Experiment, type ReproRun, type RunOutcome } from '../src/report/index.js';
import type { EngineChoice } from '../src/engine/build.js';
import { Errors } from '../src/errors.js';
import { loadArtifact } from '../src/models/artifact.js';
import { modelDigest, writeJsonAtomic } from './checkpoint.js';
import { evaluate, type FinalEvent, type StartEvent, type StatsEvent, type StatsEvery } from './evaluate.js';

/** The images every experiment is measured on. */
export const REPRODUCTION_DATA = 'mnist:test';

export interface ReproduceOptions {
  /** Finished evaluations and checkpoints live here, one file each per run and image count. */
  workDir: string;
  /** Images per evaluation (default: all 10,000). */
  limit?: number;
  /** Experiment ids to compute (default: all); the others are still reported where the work folder has them. */
  only?: readonly string[];
  workers?: number;
  backend?: string;
  /**
   * The engine of every evaluation (default `tfjs`: the portable reference, whose WASM results are the
   * same on every host; `auto` and `onnx` agree within the intervals and are faster where native).
   */
  engine?: EngineChoice;
  statsEvery?: StatsEvery;
  /** Aborting finishes the batches in flight, keeps the checkpoint and starts no further run. */
  stop?: AbortSignal;
  provenance?: Record<string, unknown>;
}

export interface PlannedRun {
  experiment: string;
  run: ReproRun;
  /** The `advstream eval` command that computes the same evaluation. */
  command: string;
  /** Whether it will be computed now (false: cached, or not selected by `only`). */
  compute: boolean;
  cached: boolean;
}

export type ReproduceEvent =
  | { type: 'plan'; runs: PlannedRun[] }
  | { type: 'run-start'; id: string; start: StartEvent }
  | { type: 'run-stats'; id: string; stats: StatsEvent }
  | { type: 'run-done'; run: DocumentRun }
  /** The run stopped before its end (`stop` was aborted): its checkpoint is kept, nothing after it runs. */
  | { type: 'stopped'; id: string };

interface CacheFile {
  version: 1;
  key: string;
  command: string;
  outcome: FinalEvent;
}

/** The `advstream eval` command line of a run. */
export function evalCommand(run: ReproRun, limit: number | undefined, engine: EngineChoice): string {
  return [
    'npx advstream eval',
    `--data ${REPRODUCTION_DATA}`,
    ...(limit !== undefined ? [`--limit ${limit}`] : []),
    `--engine ${engine}`,
    ...run.models.map((m) => `--model ${m}`),
    ...run.attacks.map((a) => `--attack ${a}`),
  ].join(' ');
}

/** A run's cache key: what it evaluates (model bytes included), on how many images, with which engine. */
async function runKey(run: ReproRun, limit: number | undefined, engine: EngineChoice): Promise<string> {
  const models: string[] = [];
  for (const ref of run.models) models.push(`${ref}@${modelDigest(await loadArtifact(ref))}`);
  const text = JSON.stringify({ data: REPRODUCTION_DATA, limit: limit ?? null, engine, models, attacks: run.attacks.map(canonical) });
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

async function readCache(file: string, key: string): Promise<CacheFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let cache: Partial<CacheFile>;
  try {
    cache = JSON.parse(text) as Partial<CacheFile>;
  } catch {
    throw Errors.badArgument(`${file} is not a finished reproduction run (invalid JSON); delete it to recompute that run`, { file });
  }
  return cache.version === 1 && cache.key === key && cache.outcome?.type === 'final' ? (cache as CacheFile) : undefined;
}

function fileStem(id: string, limit: number | undefined): string {
  return `${id}-${limit ?? 'all'}`;
}

/**
 * Runs the reproduction's evaluations in order and emits a `run-done` for each available one,
 * computed now or read from the work folder.
 *
 * @example
 *   reproduce({ workDir: '.cache/reproduce', limit: 100, only: ['fgsm'] })
 *     .subscribe((e) => { if (e.type === 'run-done') console.log(e.run.run.id, e.run.outcome.images); });
 */
export function reproduce(o: ReproduceOptions, experiments: readonly Experiment[] = EXPERIMENTS): Observable<ReproduceEvent> {
  const engine = o.engine ?? 'tfjs';
  const known = new Set(experiments.map((e) => e.id));
  for (const id of o.only ?? []) {
    if (!known.has(id)) throw Errors.badArgument(`unknown experiment '${id}'; the experiments are ${[...known].join(', ')}`, { experiment: id });
  }
  return defer(async () => {
    await mkdir(o.workDir, { recursive: true });
    const planned: { plan: PlannedRun; file: string; key: string; cache: CacheFile | undefined }[] = [];
    for (const e of experiments) {
      for (const run of e.runs) {
        const key = await runKey(run, o.limit, engine);
        const file = path.join(o.workDir, `${fileStem(run.id, o.limit)}.json`);
        const cache = await readCache(file, key);
        const selected = o.only === undefined || o.only.includes(e.id);
        planned.push({ plan: { experiment: e.id, run, command: evalCommand(run, o.limit, engine), compute: selected && !cache, cached: cache !== undefined }, file, key, cache });
      }
    }
    return planned;
  }).pipe(
    concatMap((planned) =>
      concat(
        of<ReproduceEvent>({ type: 'plan', runs: planned.map((p) => p.plan) }),
        from(planned).pipe(
          concatMap((p): Observable<ReproduceEvent> => {
            if (p.cache) return of({ type: 'run-done', run: { experiment: p.plan.experiment, run: p.plan.run, command: p.cache.command, outcome: p.cache.outcome, fresh: false } });
            if (!p.plan.compute) return EMPTY;
            if (o.stop?.aborted) return of({ type: 'stopped', id: p.plan.run.id });
            return runOne(p.plan, p.file, p.key, { ...o, engine });
          }),
          takeWhile((e) => e.type !== 'stopped', true),
        ),
      ),
    ),
  );
}

function runOne(plan: PlannedRun, file: string, key: string, o: ReproduceOptions): Observable<ReproduceEvent> {
  const { run } = plan;
  const checkpoint = file.replace(/\.json$/, '.checkpoint.json');
  let finished = false;
  const events = evaluate(
    { uri: REPRODUCTION_DATA, ...(o.limit !== undefined && { limit: o.limit }) },
    {
      models: run.models,
      attacks: run.attacks,
      ...(o.workers !== undefined && { workers: o.workers }),
      ...(o.backend !== undefined && { backend: o.backend }),
      ...(o.engine !== undefined && { engine: o.engine }),
      ...(o.statsEvery && { statsEvery: o.statsEvery }),
      ...(o.stop && { stop: o.stop }),
      checkpoint: { file: checkpoint },
      provenance: { ...o.provenance, command: plan.command, reproduction_run: run.id },
    },
  ).pipe(
    concatMap((e): Observable<ReproduceEvent> => {
      switch (e.type) {
        case 'start':
          return of({ type: 'run-start', id: run.id, start: e });
        case 'stats':
          return of({ type: 'run-stats', id: run.id, stats: e });
        case 'batch':
          return EMPTY;
        case 'final':
          if (e.stop_reason !== 'end') return of({ type: 'stopped', id: run.id });
          finished = true;
          return from(writeJsonAtomic(file, { version: 1, key, command: plan.command, outcome: e } satisfies CacheFile)).pipe(
            map((): ReproduceEvent => ({ type: 'run-done', run: { experiment: plan.experiment, run, command: plan.command, outcome: e as RunOutcome & FinalEvent, fresh: true } })),
          );
      }
    }),
  );
  // The evaluation saves its last checkpoint after its final event; only once it has completed is the
  // checkpoint of a finished run safe to remove.
  return concat(events, defer(() => (finished ? from(rm(checkpoint, { force: true })) : EMPTY)).pipe(ignoreElements()));
}
