/**
 * The attack library's public surface: the two base classes, every attack, criteria, distances,
 * the registry and spec parsing.
 */
export {
  Attack,
  normsOf,
  FixedEpsilonAttack,
  MinimizationAttack,
  type AttackKind,
  type AttackResult,
  type CascadeInfo,
  type FixedEpsilonContext,
  type FixedEpsilonRunOptions,
  type RunOptions,
  type SearchContext,
  type SearchOutput,
} from './base.js';
export { misclassification, targetedMisclassification, type Criterion } from './criteria.js';
export { DISTANCES, L0, L1, L2, Linf, type Distance, type DistanceName, type NormDistance } from './distances.js';
export { crossEntropy, dlrLoss, targetedDlrLoss, EvalCounter } from './losses.js';
export { canonicalSpec, type ParamSchema, type ParamSpec, type ParamValue, type ParamValues, type ResolvedParams } from './params.js';
export { deriveSeed, Rng } from './rng.js';
export { ATTACKS, attackNames, getAttackEntry, parseAttackSpec, type AttackEntry } from './registry.js';
export { LinfFgsm, L2Fgm } from './fgsm.js';
export { LinfBim, LinfPgd, L2Pgd, L1Slide, LinfMiFgsm, slideDirection, type PgdOptions } from './pgd.js';
export { Fab, FabT, boxProjection } from './fab.js';
export { HopSkipJump } from './hop-skip-jump.js';
export { SparseRs } from './sparse-rs.js';
export { ApgdCe, ApgdDlr, ApgdT, checkpointSchedule } from './apgd.js';
export { SquareAttack, squareFraction } from './square.js';
export { L2CarliniWagner } from './carlini-wagner.js';
export { DeepFool } from './deepfool.js';
export { LinfDamBoundary } from './dam-boundary.js';
export { MinimalEpsilon } from './min-epsilon.js';
export { AutoAttack } from './autoattack.js';
