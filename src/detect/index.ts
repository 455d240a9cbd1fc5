/**
 * The audit detectors' public surface: the registry, plans and their runner, calibration and its
 * files, the measurement core of `audit-bench`, the adaptive-attack ensemble, and the optional model
 * extensions the prototype and energy detectors read.
 *
 * @example
 *   const plan = bindPlan(planDetectors(['order-disagreement', 'feature-squeezing', 'combined']), models);
 *   const batch = await runDetectors(plan, models, x);
 *   verdict(calibration, batch.scores).flagged;
 */
export {
  combiner,
  modelDetector,
  type CombinerEntry,
  type DetectorEntry,
  type ModelDetectorEntry,
  type RoleModels,
  type RoleSpec,
  type ScoreTensors,
} from './detector.js';
export { hasEmbedding, hasEnergy, type EmbeddingModel, type EnergyModel } from './extensions.js';
export { TensorScope } from './scope.js';
export { DETECTORS, detectorNames, getDetectorEntry } from './registry.js';
export { ExceedanceTable } from './combined.js';
export {
  bindPlan,
  planDetectors,
  planModels,
  runDetectors,
  type CombinedConfig,
  type DetectorBatch,
  type DetectorConfig,
  type DetectorPlan,
  type Evidence,
  type EvidenceValue,
  type PlanModel,
  type PlanOptions,
} from './plan.js';
export {
  CALIBRATION_FORMAT,
  CALIBRATION_VERSION,
  CalibrationAccumulator,
  calibrationAccumulator,
  calibrationDifferences,
  checkCalibration,
  finishCalibration,
  verdict,
  type Calibration,
  type CalibrationAccumulatorJSON,
  type CalibrationAccumulatorOptions,
  type CalibrationStage,
  type FinishOptions,
  type ScoreCalibration,
  type ScoresByDetector,
  type Verdict,
} from './calibration.js';
export { loadCalibration, parseCalibration, saveCalibration, type LoadCalibrationOptions } from './calibration-file.js';
export {
  detectionRate,
  rocAuc,
  rocCurve,
  tprAtFpr,
  type AucEstimate,
  type DetectionRate,
  type RocPoint,
  type TprAtFpr,
} from './measure.js';
export { adaptiveRefusal, detectorEnsemble, ensembleClassifier, type EnsembleCombination, type EnsembleOptions } from './adaptive.js';
