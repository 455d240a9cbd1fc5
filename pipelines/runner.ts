/**
 * Where batches run: a piscina pool of worker threads, or the main thread (tfjs-node, which cannot
 * load in a worker). Both run the same {@link EvalRuntime}; the pipeline sees one interface.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Piscina } from 'piscina';
import { AdvstreamError, Errors } from '../src/errors.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import {
  EvalRuntime,
  type EvalReady,
  type EvalSetup,
  type EvalTask,
  type EvalTaskFailure,
  type EvalTaskResult,
} from '../workers/eval-task.js';
import type { EvalMessage } from '../workers/eval-worker.js';

/**
 * Runs batches somewhere. `run` rejects with a WORKER_FAILED error whose `details.crashed` is true
 * when the thread running the batch died (the batch may be retried elsewhere), with the task's own
 * error when the task failed (retrying would fail again), and with the signal's reason when aborted.
 */
export interface BatchRunner {
  readonly mode: 'pool' | 'main-thread';
  /** Threads that run batches at once. */
  readonly threads: number;
  /** Starts one thread's runtime and describes the backend and models. */
  ready(): Promise<EvalReady>;
  run(task: EvalTask, signal: AbortSignal): Promise<EvalTaskResult>;
  /** Aborts whatever still runs and frees the threads; safe to call twice. */
  close(): Promise<void>;
}

/** The compiled worker file: piscina loads JavaScript, so tests (from source) and dist share it. */
export const EVAL_WORKER_FILE = path.join(PACKAGE_ROOT, 'dist', 'workers', 'eval-worker.js');

/** Rebuilds a task failure as the error it was. */
export function failureError(f: EvalTaskFailure): Error {
  if (f.error.code) return new AdvstreamError(f.error.code, f.error.message, f.error.details ?? {});
  const e = new Error(f.error.message);
  if (f.error.stack) e.stack = f.error.stack;
  return e;
}

function isFailure(value: unknown): value is EvalTaskFailure {
  return typeof value === 'object' && value !== null && (value as { ok?: unknown }).ok === false;
}

/** The crash that lets a batch be retried on another thread. */
export function isWorkerCrash(e: unknown): e is AdvstreamError {
  return e instanceof AdvstreamError && e.code === 'WORKER_FAILED' && e.details.crashed === true;
}

/**
 * A pool of `threads` workers, each set up once from `setup` (carried in `workerData`: the model
 * bytes cross to each thread once, at its start).
 */
export function poolRunner(setup: EvalSetup, threads: number): BatchRunner {
  if (!existsSync(EVAL_WORKER_FILE)) {
    throw Errors.workerFailed(`the worker file ${EVAL_WORKER_FILE} is missing: build advstream first (npx tsc -p .)`);
  }
  const pool = new Piscina<EvalMessage, unknown>({
    filename: EVAL_WORKER_FILE,
    minThreads: threads,
    maxThreads: threads,
    // Threads stay for the whole run: their setup (backend, models) is the expensive part.
    idleTimeout: 2 ** 31 - 1,
    workerData: setup,
  });
  // A worker that fails with no task in hand is replaced by piscina; an unheard 'error' would throw.
  pool.on('error', () => {});
  let closed: Promise<void> | undefined;

  const call = async (message: EvalMessage, signal?: AbortSignal, transferList?: ArrayBuffer[]): Promise<unknown> => {
    let out: unknown;
    try {
      out = await pool.run(message, { ...(signal ? { signal } : {}), ...(transferList ? { transferList } : {}) });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw Errors.workerFailed(`worker thread died: ${(e as Error).message}`, { crashed: true });
    }
    if (isFailure(out)) throw failureError(out);
    return out;
  };

  return {
    mode: 'pool',
    threads,
    ready: async () => (await call({ kind: 'ready' })) as EvalReady,
    async run(task, signal) {
      // Each attempt sends its own copy: a transferred buffer is gone if that attempt's worker dies.
      const pixels = task.pixels.slice();
      const labels = task.labels.slice();
      const sent: EvalTask = { ...task, pixels, labels };
      return (await call({ kind: 'batch', task: sent }, signal, [pixels.buffer, labels.buffer])) as EvalTaskResult;
    },
    close: () => (closed ??= pool.destroy()),
  };
}

/** The main thread, one batch at a time: for tfjs-node, and for debugging. */
export function mainThreadRunner(setup: EvalSetup): BatchRunner {
  let runtime: Promise<EvalRuntime> | undefined;
  const get = () => (runtime ??= EvalRuntime.create(setup, 'main'));
  let queue: Promise<unknown> = Promise.resolve();
  return {
    mode: 'main-thread',
    threads: 1,
    ready: async () => (await get()).ready(),
    run(task, signal) {
      const next = queue.then(async () => {
        signal.throwIfAborted();
        return (await get()).run(task);
      });
      queue = next.catch(() => {});
      return next;
    },
    close: async () => {},
  };
}
