/**
 * Mergeable accumulators for streamed evaluation. Every accumulator has `add`, an exactly
 * associative and commutative `merge`, plain-data `toJSON`/`fromJSON` (checkpoints, thread
 * transfer) and `summary()`.
 */
export { EvalStats, maxIntervalWidth } from './eval-stats.js';
export type {
  AdversarialResult,
  CleanSummary,
  EvalStatsJSON,
  EvalStatsOptions,
  EvalSummary,
  ModelSummary,
  SampleResult,
} from './eval-stats.js';
export { ExactSum } from './exact-sum.js';
export { MinEpsCurve } from './min-eps-curve.js';
export type { CurvePoint, MinEpsCurveJSON } from './min-eps-curve.js';
export { Moments } from './moments.js';
export type { MomentsJSON, MomentsSummary } from './moments.js';
export { Proportion, wilson, Z95 } from './proportion.js';
export type { Interval, ProportionJSON, ProportionSummary } from './proportion.js';
export { QuantileSketch } from './quantile-sketch.js';
export type { QuantileSketchJSON, QuantileSketchOptions } from './quantile-sketch.js';
export { Robustness } from './robustness.js';
export type { RobustnessJSON, RobustnessSample, RobustnessSummary } from './robustness.js';
export { Throughput } from './throughput.js';
export type { ThroughputJSON, ThroughputSummary, ThroughputTask } from './throughput.js';
export { TransferMatrix } from './transfer.js';
export type { TransferCell, TransferJSON, TransferSummary } from './transfer.js';
export { BernoulliCusum } from './sequential.js';
export type { BernoulliCusumJSON, CusumAlarm, CusumOptions, FlagWindow } from './sequential.js';
