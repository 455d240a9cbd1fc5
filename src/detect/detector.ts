/**
 * What a detector is. A detector is a registered, named scorer: it declares the models it needs by
 * role (`low`, `high`, `model`) and its parameters once, and maps a batch `x [B, D]` to one suspicion
 * score per record (higher = more suspicious) plus small per-record evidence. It reaches its models
 * through {@link ModelRunner}s, so that one implementation runs whichever engine computes them (tfjs,
 * ONNX Runtime for the zoo's exported families and users' ONNX files); its own arithmetic is tfjs,
 * with no I/O, so it runs in whatever thread calls it. Model calls are asynchronous, so the runner
 * ({@link runDetectors}) hands it a {@link TensorScope} that owns every tensor it makes, and turns
 * the result into plain data.
 *
 * A combiner is the other kind of entry: it scores nothing itself, but merges the calibrated
 * p-values of the model detectors of a plan into one statistic.
 */
import type { Tensor, Tensor1D, Tensor2D } from '../backend/index.js';
import type { ParamSchema, ParamValues, ResolvedParams } from '../attacks/params.js';
import type { ModelRunner } from '../models/runner.js';
import { Errors } from '../errors.js';
import type { TensorScope } from './scope.js';

/** One role a detector fills with models. */
export interface RoleSpec {
  readonly name: string;
  /** Whether the role takes one model or one or more. */
  readonly many: boolean;
  /** Model ids used when neither the spec nor the plan options name any (the shipped zoo). */
  readonly defaults: readonly string[];
  readonly doc: string;
}

/** The built models of one detector, by role name, in the plan's order. */
export type RoleModels = Readonly<Record<string, readonly ModelRunner[]>>;

/** What a detector's `score` returns: tensors that the runner reads and disposes. */
export interface ScoreTensors {
  /** `[B]` suspicion scores, higher = more suspicious, finite. */
  score: Tensor1D;
  /**
   * Evidence columns: a `[B]` tensor gives each record one value, `[B, k]` a list of k; bool tensors
   * give booleans.
   */
  evidence: Readonly<Record<string, Tensor>>;
}

export interface ModelDetectorEntry {
  readonly kind: 'model';
  readonly name: string;
  /** The method, its paper and its formula, one line. */
  readonly summary: string;
  readonly params: ParamSchema;
  readonly roles: readonly RoleSpec[];
  /**
   * Checks that the models can serve this detector and fixes the parameters that depend on them
   * (`source=auto` becomes the variant the models allow), so that a calibration records the score
   * function actually used. Idempotent; throws `BAD_MODEL` when the models cannot serve.
   */
  bind(params: ResolvedParams, models: RoleModels): ResolvedParams;
  /**
   * The batch's scores and evidence, on bound parameters. Every tensor it makes, the result's
   * included, goes through `scope` (`scope.scores`, `scope.tidy`), which the caller disposes.
   */
  score(models: RoleModels, x: Tensor2D, params: ResolvedParams, scope: TensorScope): Promise<ScoreTensors>;
}

export interface CombinerEntry {
  readonly kind: 'combined';
  readonly name: string;
  readonly summary: string;
  readonly params: ParamSchema;
  /**
   * One statistic per record from the p-values of each combined detector (`pValues[d][i]`, each in
   * (0, 1]); higher = more suspicious.
   */
  combine(pValues: readonly Float64Array[], params: ResolvedParams): Float64Array;
}

export type DetectorEntry = ModelDetectorEntry | CombinerEntry;

/** A model detector entry whose functions see typed parameters. */
export function modelDetector<S extends ParamSchema>(e: {
  name: string;
  summary: string;
  params: S;
  roles: readonly RoleSpec[];
  bind?: (params: ParamValues<S>, models: RoleModels) => ParamValues<S>;
  score: (models: RoleModels, x: Tensor2D, params: ParamValues<S>, scope: TensorScope) => Promise<ScoreTensors>;
}): ModelDetectorEntry {
  return {
    kind: 'model',
    name: e.name,
    summary: e.summary,
    params: e.params,
    roles: e.roles,
    bind: (params, models) => (e.bind ? e.bind(params as ParamValues<S>, models) : params),
    score: (models, x, params, scope) => e.score(models, x, params as ParamValues<S>, scope),
  };
}

export function combiner<S extends ParamSchema>(e: {
  name: string;
  summary: string;
  params: S;
  combine: (pValues: readonly Float64Array[], params: ParamValues<S>) => Float64Array;
}): CombinerEntry {
  return { kind: 'combined', ...e, combine: (p, params) => e.combine(p, params as ParamValues<S>) };
}

/** The one model of a single-model role. */
export function oneModel(models: RoleModels, role: string): ModelRunner {
  const found = models[role];
  if (!found || found.length !== 1) {
    throw Errors.badArgument(`role '${role}' needs exactly one model, got ${found?.length ?? 0}`, { role });
  }
  return found[0]!;
}

/** The models of a role: at least one. */
export function roleModelsOf(models: RoleModels, role: string): readonly ModelRunner[] {
  const found = models[role];
  if (!found || found.length === 0) throw Errors.badArgument(`role '${role}' needs at least one model`, { role });
  return found;
}
