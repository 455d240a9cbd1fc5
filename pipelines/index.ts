/**
 * The public surface of advstream's dataflows (`advstream/pipelines`): the streaming evaluation and
 * the streaming audit, the small operators and the task runner they are built from, their sinks and
 * checkpoints, the audit service and benchmark, and training.
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
export { admitRecords, admissionFailure, type AdmitOptions } from './admit.js';
export {
  batchRecords,
  inIndexOrder,
  pooledBatches,
  runTasks,
  withRetries,
  type BatchOptions,
  type PooledBatch,
  type PooledBatchesOptions,
  type RunTasksOptions,
} from './operators.js';
export {
  EVAL_TASKS,
  isWorkerCrash,
  mainThread,
  workerPool,
  type BatchRunner,
  type RunPlace,
  type TaskKind,
  type TaskRunner,
} from './runner.js';
export {
  audit,
  auditAdversarial,
  AuditStats,
  createAuditStream,
  type AuditEvent,
  type AuditOperatorOptions,
  type AuditOptions,
  type AuditStartEvent,
  type AuditStopReason,
  type AuditStreamOptions,
  type AuditSummary,
  type AuditSummaryEvent,
  type AuditVerdictEvent,
} from './audit.js';
export {
  AlarmMonitor,
  alarmsOf,
  calibratedUpperRate,
  cleanFlagRate,
  createAlarmStream,
  defaultMargin,
  DEFAULT_ALARM_FALSE_RATE,
  DEFAULT_MAX_GROUPS,
  MAX_GROUP_KEY,
  withAlarms,
  type AlarmOptions,
  type AuditAlarmEvent,
} from './alarms.js';
export { openAuditor, type AuditInfo, type Auditor, type AuditorOptions, type AuditVerdict } from './auditor.js';
export { AUDIT_TASKS, DEFAULT_DETECTORS, type AuditPoolOptions } from './audit-pool.js';
export {
  calibrationStage,
  DEFAULT_CALIBRATION_DATA,
  DEFAULT_FPR,
  type CalibrationData,
  type CalibrationOptions,
  type CalibrationProgress,
} from './calibrate.js';
export { evalCommand, reproduce, REPRODUCTION_DATA, type PlannedRun, type ReproduceEvent, type ReproduceOptions } from './reproduce.js';
export {
  runningPairs,
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
export {
  auditBench,
  DEFAULT_ADAPTIVE,
  DEFAULT_BENCH_ATTACKS,
  DEFAULT_BENCH_SOURCES,
  DEFAULT_SURROGATE,
  rocLines,
  type AuditBenchOptions,
  type AuditBenchResult,
  type BenchDetectorResult,
  type BenchPairResult,
  type BenchSourceKind,
  type RocLine,
} from './audit-bench.js';
export { createAuditServer, type AuditServer, type AuditServerOptions } from './serve.js';
export { CheckpointWriter, readCheckpoint, type CheckpointConfig, type EvalCheckpoint } from './checkpoint.js';
export { SamplesFile, webhookSink, type WebhookOptions, type WebhookReport, type WebhookSink } from './sinks.js';
export { batchSeed, pairSeed, type EvalPair } from '../workers/eval-task.js';
export { train, type DenseData, type TrainEvent, type TrainOptions } from './train.js';
