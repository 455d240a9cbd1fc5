/**
 * What every piscina task file shares: the two messages a pool sends (start up and describe
 * yourself, or run one task), a failed task as plain data, and the per-thread plumbing that turns a
 * runtime into a task file's default export. A task kind (evaluation, audit) only supplies its
 * runtime and the buffers its results transfer.
 */
import { threadId, workerData } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { isAdvstreamError, type ErrorCode } from '../src/errors.js';
import type { BackendInfo } from '../src/backend/index.js';
import { watchStopFlag, type ModelRunner } from '../src/models/runner.js';

/**
 * What a pool hands each of its threads: the task kind's setup, and the flag the pool raises when it
 * closes (a `SharedArrayBuffer` of one Int32; see `watchStopFlag`).
 */
export interface PoolData<Setup> {
  setup: Setup;
  stop: SharedArrayBuffer;
}

/** A message to a worker: start up and describe yourself, or run one task. */
export type WorkerMessage<Task> = { kind: 'ready' } | { kind: 'batch'; task: Task };

/** A task that threw: plain data, because an error's `code` does not survive a thread crossing. */
export interface TaskFailure {
  ok: false;
  error: { code?: ErrorCode; message: string; details?: Record<string, unknown>; stack?: string };
}

/** A thrown value as plain data. */
export function describeFailure(e: unknown): TaskFailure {
  if (isAdvstreamError(e)) return { ok: false, error: { code: e.code, message: e.message, details: e.details } };
  const err = e instanceof Error ? e : new Error(String(e));
  return { ok: false, error: { message: err.message, ...(err.stack ? { stack: err.stack } : {}) } };
}

/** One thread's state for a task kind: set up once, then one task at a time, then closed. */
export interface TaskRuntime<Task, Result, Ready> {
  ready(): Promise<Ready>;
  /** Runs a task; throws its error. Once `signal` aborts, the task stops at its next model call. */
  run(task: Task, signal: AbortSignal): Promise<Result>;
  /** Frees the models (tensors, ONNX Runtime sessions). */
  close(): void;
}

/** How often a worker looks at its pool's stop flag while a task runs. */
const STOP_POLL_MS = 10;

/**
 * An AbortSignal that aborts once the pool raises `flag` (an Int32 in a `SharedArrayBuffer`): the
 * pool cannot signal a thread busy in a task, so the thread looks between its model calls.
 */
function flagSignal(flag: Int32Array): AbortSignal {
  const controller = new AbortController();
  const timer = setInterval(() => {
    if (Atomics.load(flag, 0) === 0) return;
    controller.abort();
    clearInterval(timer);
  }, STOP_POLL_MS);
  timer.unref();
  return controller.signal;
}

/**
 * The default export of a task file: the runtime is created from the pool's `workerData` on the
 * first message and kept for the thread's life; a task's error comes back as a {@link TaskFailure}
 * (a crash is the pool's to report); a result's buffers are transferred, not copied.
 *
 * @example
 *   export default taskWorker((setup: EvalSetup, id) => EvalRuntime.create(setup, id), resultBuffers);
 */
export function taskWorker<Setup, Task, Result extends object, Ready>(
  create: (setup: Setup, workerId: string) => Promise<TaskRuntime<Task, Result, Ready>>,
  buffers: (result: Result) => ArrayBuffer[],
): (message: WorkerMessage<Task>) => Promise<unknown> {
  let runtime: Promise<TaskRuntime<Task, Result, Ready>> | undefined;
  let stop: AbortSignal | undefined;
  return async (message) => {
    if (!runtime) {
      const data = workerData as PoolData<Setup>;
      const flag = new Int32Array(data.stop);
      // The engine's own sessions look at the flag directly (see `watchStopFlag`).
      watchStopFlag(flag);
      stop = flagSignal(flag);
      runtime = create(data.setup, `w${threadId}`);
    }
    try {
      const rt = await runtime;
      if (message.kind === 'ready') return await rt.ready();
      const result = await rt.run(message.task, stop!);
      return move({ [transferableSymbol]: buffers(result), [valueSymbol]: result });
    } catch (e) {
      return describeFailure(e);
    }
  };
}

/** The total of a per-sample count (an attack's gradient or forward evaluations). */
export function sum(counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  return total;
}

/** One model as a started runtime describes it. */
export interface ReadyModel {
  id: string;
  family: string;
  inputShape: [number, number, number];
  numClasses: number;
  /** What scores the model (`onnx-cpu`, `tfjs-wasm`, …) and what computes its input gradients (`none`: black-box). */
  engine: string;
  gradientEngine: string;
}

/** What a started runtime says of itself: its thread, its backend, and each model it built. */
export interface RuntimeReady {
  workerId: string;
  backend: Pick<BackendInfo, 'backend' | 'simd' | 'threads' | 'native'>;
  models: ReadyModel[];
}

/** A runtime's description of itself, from its backend and its models. */
export function describeRuntime(workerId: string, info: BackendInfo, models: readonly ModelRunner[]): RuntimeReady {
  const { backend, simd, threads, native } = info;
  return {
    workerId,
    backend: { backend, simd, threads, ...(native ? { native } : {}) },
    models: models.map((m) => ({
      id: m.id,
      family: m.family,
      inputShape: [...m.inputShape],
      numClasses: m.numClasses,
      engine: m.engine,
      gradientEngine: m.gradientEngine,
    })),
  };
}

/** The distinct engines of a runtime's models, `+`-joined (`onnx-cpu`, `onnx-cpu+tfjs-wasm`), as records name them. */
export function enginesOf(models: readonly Pick<ReadyModel, 'engine'>[]): string {
  return [...new Set(models.map((m) => m.engine))].join('+');
}

/** What every finished task reports beside its own results. */
export interface TaskResultHeader {
  ok: true;
  index: number;
  count: number;
  /** `w<threadId>` in a worker, `main` in the main thread. */
  workerId: string;
  startMs: number;
  endMs: number;
}
