/**
 * advstream's public library surface: what users may import. Everything else is internal.
 *
 * @example
 *   import { initBackend, openSource, loadClassifier, parseAttackSpec } from 'advstream';
 */
export { AdvstreamError, Errors, isAdvstreamError, type ErrorCode, type Location } from './errors.js';
export {
  BACKEND_NAMES,
  assertKernels,
  currentBackend,
  ensureBackend,
  exactSign,
  initBackend,
  missingKernels,
  traceKernels,
  type BackendCandidate,
  type BackendInfo,
  type BackendName,
  type InitBackendOptions,
} from './backend/index.js';
export * from './data/index.js';
export {
  LOSS_NAMES,
  inputSize,
  type Classifier,
  type EnergyClassifier,
  type LossName,
  type PrototypeClassifier,
} from './models/classifier.js';
export {
  buildClassifier,
  loadArtifact,
  loadClassifier,
  saveArtifact,
  type ModelArtifact,
  type ModelManifest,
} from './models/artifact.js';
export { FAMILIES, getFamily } from './models/registry.js';
export {
  asRunner,
  tfjsRunner,
  type Evaluation,
  type GradEvaluation,
  type ModelRunner,
  type Objective,
} from './models/runner.js';
export { ENGINE_CHOICES, buildRunner, parseEngineChoice, type EngineChoice } from './engine/build.js';
export { EXPORTABLE_FAMILIES, exportFamily, type NativeGraphs, type NativeProgram } from './engine/export.js';
export { readOnnxFile, type OnnxInputSpec, type OnnxSidecar } from './engine/onnx-file.js';
export { userGraphs } from './engine/user-graphs.js';
export { Autodiff, MIN_OPSET, RULES, type Rule, type RuleContext, type UnsupportedNode } from './engine/autodiff/index.js';
export { PROVIDERS, selectProvider, type EngineName, type ProviderCandidate, type ProviderInfo, type ProviderName } from './engine/ort.js';
export type { Family, FamilyConfig, Trainer, TrainOption } from './models/family.js';
export { defaultZooRefs, zooModels, zooRecipes, type ZooEntry, type ZooRecipe } from './models/zoo.js';
export {
  ATTACKS,
  Attack,
  FixedEpsilonAttack,
  MinimizationAttack,
  attackNames,
  parseAttackSpec,
  type AttackResult,
  type RunOptions,
} from './attacks/index.js';
export * from './stats/index.js';
export * from './report/index.js';
export * from './detect/index.js';
