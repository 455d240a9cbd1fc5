/**
 * The piscina task file of `evaluate`: per-thread setup from the pool's `workerData` (model bytes,
 * attack specs, backend), started on the first message; then one batch per task. Results travel
 * back transferred, not copied.
 */
import { EvalRuntime, resultBuffers, type EvalSetup, type EvalTask } from './eval-task.js';
import { taskWorker, type WorkerMessage } from './protocol.js';

/** A message to the worker: start up and describe yourself, or evaluate a batch. */
export type EvalMessage = WorkerMessage<EvalTask>;

export default taskWorker((setup: EvalSetup, workerId) => EvalRuntime.create(setup, workerId), resultBuffers);
