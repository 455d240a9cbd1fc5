/**
 * The piscina task file of `evaluate`: per-thread setup from the pool's `workerData` (model bytes,
 * attack specs, backend), started on the first message; then one batch per task. Results travel
 * back transferred, not copied.
 */
import { threadId, workerData } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { EvalRuntime, describeFailure, resultBuffers, type EvalReady, type EvalSetup, type EvalTask, type EvalTaskFailure } from './eval-task.js';

/** A message to the worker: start up and describe yourself, or evaluate a batch. */
export type EvalMessage = { kind: 'ready' } | { kind: 'batch'; task: EvalTask };

let runtime: Promise<EvalRuntime> | undefined;

export default async function evalWorker(message: EvalMessage): Promise<unknown> {
  runtime ??= EvalRuntime.create(workerData as EvalSetup, `w${threadId}`);
  let rt: EvalRuntime;
  try {
    rt = await runtime;
  } catch (e) {
    return describeFailure(e);
  }
  if (message.kind === 'ready') {
    try {
      return (await rt.ready()) satisfies EvalReady;
    } catch (e) {
      return describeFailure(e) satisfies EvalTaskFailure;
    }
  }
  const result = await rt.runSafely(message.task);
  if (!result.ok) return result;
  return move({ [transferableSymbol]: resultBuffers(result), [valueSymbol]: result });
}
