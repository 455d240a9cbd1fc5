/**
 * Where batches run: a piscina pool of worker threads, or the main thread (tfjs-node, which cannot
 * load in a worker). Both run the same runtime of a {@link TaskKind}; the pipeline sees one
 * interface. The evaluation and the audit are two task kinds on this one runner.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Piscina } from 'piscina';
import { AdvstreamError, Errors } from '../src/errors.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { EvalRuntime, type EvalReady, type EvalSetup, type EvalTask, type EvalTaskFailure, type EvalTaskResult } from '../workers/eval-task.js';
import type { PoolData, TaskFailure, TaskRuntime, WorkerMessage } from '../workers/protocol.js';

/**
 * Runs tasks somewhere. `run` rejects with a WORKER_FAILED error whose `details.crashed` is true
 * when the thread running the task died (the task may be retried elsewhere); `details.stopped` when
 * the runner closed under it, `details.refused` when the pool would not take it (neither is retried);
 * with the task's own error when the task failed (retrying would fail again), and with the signal's
 * reason when aborted.
 */
export interface TaskRunner<Task, Result, Ready> {
  readonly mode: 'pool' | 'main-thread';
  /** Threads that run tasks at once. */
  readonly threads: number;
  /** Starts one thread's runtime and describes it. */
  ready(): Promise<Ready>;
  run(task: Task, signal: AbortSignal): Promise<Result>;
  /** Aborts whatever still runs and frees the threads; safe to call twice. */
  close(): Promise<void>;
}

/**
 * A kind of task: its compiled task file (for pools), how one attempt sends a task (a copy whose
 * buffers it may transfer, so that a retry can send the original again), and its runtime (for the
 * main thread).
 */
export interface TaskKind<Setup, Task, Result, Ready> {
  /** Names the kind in errors. */
  readonly name: string;
  /** The compiled task file: piscina loads JavaScript, so tests (from source) and dist share it. */
  readonly file: string;
  send(task: Task): { task: Task; transfer: ArrayBuffer[] };
  create(setup: Setup, workerId: string): Promise<TaskRuntime<Task, Result, Ready>>;
}

/** Where a run computes, as every start and final record states it. */
export interface RunPlace {
  backend: string;
  /** The engines computing the models, distinct, `+`-joined (`onnx-cpu`, `onnx-cpu+tfjs-wasm`). */
  engine: string;
  simd: boolean;
  mode: 'pool' | 'main-thread';
  workers: number;
}

/** The runner of `evaluate`. */
export type BatchRunner = TaskRunner<EvalTask, EvalTaskResult, EvalReady>;

/** The compiled worker file of the evaluation. */
export const EVAL_WORKER_FILE = path.join(PACKAGE_ROOT, 'dist', 'workers', 'eval-worker.js');

/** The evaluation as a task kind. */
export const EVAL_TASKS: TaskKind<EvalSetup, EvalTask, EvalTaskResult, EvalReady> = {
  name: 'evaluation',
  file: EVAL_WORKER_FILE,
  send(task) {
    const pixels = task.pixels.slice();
    const labels = task.labels.slice();
    return { task: { ...task, pixels, labels }, transfer: [pixels.buffer, labels.buffer] };
  },
  create: (setup, workerId) => EvalRuntime.create(setup, workerId),
};

/** Rebuilds a task failure as the error it was. */
export function failureError(f: EvalTaskFailure | TaskFailure): Error {
  if (f.error.code) return new AdvstreamError(f.error.code, f.error.message, f.error.details ?? {});
  const e = new Error(f.error.message);
  if (f.error.stack) e.stack = f.error.stack;
  return e;
}

function isFailure(value: unknown): value is TaskFailure {
  return typeof value === 'object' && value !== null && (value as { ok?: unknown }).ok === false;
}

/** The crash that lets a batch be retried on another thread. */
export function isWorkerCrash(e: unknown): e is AdvstreamError {
  return e instanceof AdvstreamError && e.code === 'WORKER_FAILED' && e.details.crashed === true;
}

export interface WorkerPoolOptions {
  /** How long `close` waits for running tasks to stop before terminating the threads; default 30 s. */
  graceMs?: number;
}

/**
 * piscina's own refusals and its termination of a running task: not a thread that died, so never
 * retried as a crash (piscina gives them no codes; these are its messages, `piscina/dist/errors.js`).
 */
const PISCINA_REFUSALS = ['Terminating worker thread', 'Task queue is at limit', 'No task queue available', 'Close operation timed out'];

/**
 * A pool of `threads` workers running `kind`'s task file, each set up once from `setup` (carried in
 * `workerData`: model bytes cross to each thread once, at its start).
 *
 * @example
 *   const runner = workerPool(EVAL_TASKS, { models, attacks: ['fgsm:eps=0.1'], pairs }, 4);
 *   try { const result = await runner.run(task, signal); } finally { await runner.close(); }
 */
export function workerPool<Setup, Task, Result, Ready>(
  kind: TaskKind<Setup, Task, Result, Ready>,
  setup: Setup,
  threads: number,
  options: WorkerPoolOptions = {},
): TaskRunner<Task, Result, Ready> {
  const graceMs = options.graceMs ?? STOP_GRACE_MS;
  if (!existsSync(kind.file)) {
    throw Errors.workerFailed(`the ${kind.name} worker file ${kind.file} is missing: build advstream first (npx tsc -p .)`);
  }
  const stop = new SharedArrayBuffer(4);
  const data: PoolData<Setup> = { setup, stop };
  const pool = new Piscina<WorkerMessage<Task>, unknown>({
    filename: kind.file,
    minThreads: threads,
    maxThreads: threads,
    // Threads stay for the whole run: their setup (backend, models) is the expensive part.
    idleTimeout: 2 ** 31 - 1,
    workerData: data,
  });
  // A worker that fails with no task in hand is replaced by piscina; an unheard 'error' would throw.
  pool.on('error', () => {});
  let closed: Promise<void> | undefined;
  const inFlight = new Set<Promise<unknown>>();

  const call = async (message: WorkerMessage<Task>, signal?: AbortSignal, transferList?: ArrayBuffer[]): Promise<unknown> => {
    signal?.throwIfAborted();
    // No signal goes to piscina: it would terminate a running thread, and onnxruntime-node aborts
    // the process when a thread dies inside a run. An aborted task is abandoned here instead, and
    // `close` stops it cooperatively.
    const running = pool.run(message, transferList ? { transferList } : {});
    inFlight.add(running);
    void running.then(
      () => inFlight.delete(running),
      () => inFlight.delete(running),
    );
    let out: unknown;
    try {
      out = await (signal ? abandonOnAbort(running, signal) : running);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      const message = (e as Error).message;
      if (closed) throw Errors.workerFailed(`the pool closed while the task ran: ${message}`, { stopped: true });
      if (PISCINA_REFUSALS.some((m) => message.startsWith(m))) throw Errors.workerFailed(`the pool refused the task: ${message}`, { refused: true });
      throw Errors.workerFailed(`worker thread died: ${message}`, { crashed: true });
    }
    if (isFailure(out)) throw failureError(out);
    return out;
  };

  const shutdown = async (): Promise<void> => {
    Atomics.store(new Int32Array(stop), 0, 1);
    // Each task stops at its next model call; a thread stuck elsewhere is terminated after a while.
    await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, graceMs).unref())]);
    await pool.destroy();
  };

  return {
    mode: 'pool',
    threads,
    ready: async () => (await call({ kind: 'ready' })) as Ready,
    async run(task, signal) {
      // Each attempt sends its own copy: a transferred buffer is gone if that attempt's worker dies.
      const sent = kind.send(task);
      return (await call({ kind: 'batch', task: sent.task }, signal, sent.transfer)) as Result;
    },
    close: () => (closed ??= shutdown()),
  };
}

/** How long a closing pool waits for its tasks to stop before terminating the threads. */
const STOP_GRACE_MS = 30_000;

/** `running`, or the signal's reason as soon as it aborts (the task itself runs on). */
function abandonOnAbort<T>(running: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    running.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * The main thread, one task at a time: for tfjs-node, and for debugging. A task's signal, or
 * closing the runner, stops the running task at its next model call; closing frees the models.
 */
export function mainThread<Setup, Task, Result, Ready>(kind: TaskKind<Setup, Task, Result, Ready>, setup: Setup): TaskRunner<Task, Result, Ready> {
  let runtime: Promise<TaskRuntime<Task, Result, Ready>> | undefined;
  const closing = new AbortController();
  const get = () => {
    if (closing.signal.aborted) throw Errors.workerFailed('the runner is closed', { stopped: true });
    return (runtime ??= kind.create(setup, 'main'));
  };
  let queue: Promise<unknown> = Promise.resolve();
  let closed: Promise<void> | undefined;
  const close = async () => {
    closing.abort();
    await queue;
    if (runtime) (await runtime.catch(() => undefined))?.close();
  };
  return {
    mode: 'main-thread',
    threads: 1,
    ready: async () => (await get()).ready(),
    run(task, signal) {
      const next = queue.then(async () => {
        signal.throwIfAborted();
        return (await get()).run(task, AbortSignal.any([signal, closing.signal]));
      });
      queue = next.catch(() => {});
      return next;
    },
    close: () => (closed ??= close()),
  };
}
