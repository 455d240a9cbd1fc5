/**
 * The public surface of advstream's dataflows (`advstream/pipelines`): the streaming evaluation,
 * the small operators it is built from, its sinks and checkpoints, and training.
 */
export {
  DEFAULT_ATTACKS,
  evalCounters,
  evaluate,
  type BatchEvent,
  type CheckpointOptions,
  type EvalCounters,
  type EvalEvent,
  type EvalModelInfo,
  type EvalProgress,
  type EvalSource,
  type EvaluateOptions,
  type FinalEvent,
  type SourceSpec,
  type StartEvent,
  type StatsEvent,
  type StatsEvery,
  type StopReason,
} from './evaluate.js';
export { batchRecords, inIndexOrder, runTasks, type BatchOptions, type RunTasksOptions } from './operators.js';
export {
  imagePixels,
  isWorstCase,
  sampleLine,
  sampleResults,
  worstCase,
  worstCaseGroups,
  worstCaseId,
  WORST_CASE,
  type BatchPixels,
  type ImagePixels,
  type ResultLayout,
  type SampleLine,
  type WorstCaseGroup,
} from './samples.js';
export { readCheckpoint, type CheckpointConfig, type EvalCheckpoint } from './checkpoint.js';
export { SamplesFile, webhookSink, type WebhookOptions, type WebhookReport, type WebhookSink } from './sinks.js';
export { batchSeed, pairSeed, type EvalTestHooks } from '../workers/eval-task.js';
export { train, type DenseData, type TrainEvent, type TrainOptions } from './train.js';
