/**
 * A detector plan: which detectors run, with which parameters, on which models (by id), and which of
 * them a combined score merges. A plan is plain data: it crosses threads, and a calibration records
 * it as the identity it was made for.
 *
 * Life of a plan: `planDetectors(specs)` parses the spec strings and fills defaults; the caller loads
 * `planModels(plan)`; `bindPlan(plan, models)` checks the models and fixes the parameters that depend
 * on them; then `runDetectors(plan, models, x)` scores batches, in any thread.
 */
import { tf, type Tensor, type Tensor2D } from '../backend/index.js';
import {
  canonicalSpec,
  parseRawValue,
  resolveParams,
  describeParam,
  splitSpec,
  type ParamValue,
  type ResolvedParams,
} from '../attacks/params.js';
import { Errors } from '../errors.js';
import type { Classifier } from '../models/classifier.js';
import { asRunner, type ModelRunner } from '../models/runner.js';
import type { ModelDetectorEntry, RoleModels } from './detector.js';
import { combinerEntry, detectorNames, getDetectorEntry, modelDetectorEntry } from './registry.js';
import { TensorScope } from './scope.js';

export interface DetectorConfig {
  /** The registered name; also the detector's key in scores, verdicts and calibrations. */
  readonly name: string;
  /** Canonical spec, every parameter and every role's models (`name:key=value,...`): its identity. */
  readonly id: string;
  readonly params: ResolvedParams;
  /** Model ids by role, in the order given. */
  readonly models: Readonly<Record<string, readonly string[]>>;
}

export interface CombinedConfig {
  readonly name: string;
  readonly id: string;
  readonly params: ResolvedParams;
  /** The model detectors it merges, by name. */
  readonly of: readonly string[];
}

export interface DetectorPlan {
  readonly detectors: readonly DetectorConfig[];
  readonly combined: CombinedConfig | null;
  /** Whether {@link bindPlan} has checked the models and fixed the parameters that depend on them. */
  readonly bound: boolean;
}

export interface PlanOptions {
  /**
   * Models for roles that a spec leaves unnamed: by `detector.role` (`{ 'energy.model': 'zoo:dam-n30' }`)
   * or, for every detector with that role, by role (`{ high: ['zoo:dam-n20'] }`); else each role's defaults.
   */
  roles?: Readonly<Record<string, string | readonly string[]>>;
}

/** One record's evidence from one detector: small plain JSON. */
export type EvidenceValue = number | boolean | number[] | boolean[];
export type Evidence = Record<string, EvidenceValue>;

/** What {@link runDetectors} returns for a batch: plain data, safe to move across threads. */
export interface DetectorBatch {
  count: number;
  /** Scores `[count]` by detector name; higher = more suspicious. */
  scores: Record<string, Float32Array>;
  /** Per record, by detector name. */
  evidence: Record<string, Evidence>[];
}

function listOf(value: string | readonly string[]): string[] {
  return (typeof value === 'string' ? value.split('+') : [...value]).map((v) => v.trim()).filter((v) => v !== '');
}

function detectorId(entry: ModelDetectorEntry, params: ResolvedParams, models: Readonly<Record<string, readonly string[]>>): string {
  const all: Record<string, ParamValue> = { ...params };
  for (const role of entry.roles) all[role.name] = (models[role.name] ?? []).join('+');
  return canonicalSpec(entry.name, all);
}

function configure(entry: ModelDetectorEntry, spec: string, raw: ReadonlyMap<string, string>, options: PlanOptions): DetectorConfig {
  const values: Record<string, ParamValue> = {};
  const models: Record<string, string[]> = {};
  const roleNames = new Set(entry.roles.map((r) => r.name));
  for (const [key, value] of raw) {
    if (roleNames.has(key)) continue;
    const p = entry.params[key];
    if (!p) {
      const valid = [...Object.entries(entry.params).map(([k, q]) => describeParam(k, q)), ...entry.roles.map((r) => `${r.name} (model ids, joined by +)`)];
      throw Errors.badSpec(spec, `unknown parameter '${key}'`, valid);
    }
    values[key] = parseRawValue(spec, key, p, value);
  }
  for (const role of entry.roles) {
    const given = raw.get(role.name) ?? options.roles?.[`${entry.name}.${role.name}`] ?? options.roles?.[role.name];
    const ids = given === undefined ? [...role.defaults] : listOf(given);
    if (ids.length === 0) throw Errors.badSpec(spec, `role '${role.name}' names no model`);
    if (!role.many && ids.length > 1) throw Errors.badSpec(spec, `role '${role.name}' takes one model, got ${ids.length}: ${ids.join(', ')}`);
    models[role.name] = ids;
  }
  const params = resolveParams(spec, entry.params, values);
  return { name: entry.name, id: detectorId(entry, params, models), params, models };
}

function configureCombined(spec: string, raw: ReadonlyMap<string, string>, names: readonly string[]): CombinedConfig {
  const entry = combinerEntry(splitSpec(spec).name);
  const ofRaw = raw.get('of');
  const of = ofRaw === undefined ? [...names] : listOf(ofRaw.toLowerCase());
  for (const n of of) if (!names.includes(n)) throw Errors.badSpec(spec, `'${n}' is not a detector of this plan`, names);
  if (of.length === 0 || new Set(of).size !== of.length) throw Errors.badSpec(spec, 'of= must name distinct detectors of the plan', names);
  const values: Record<string, ParamValue> = {};
  for (const [key, value] of raw) {
    if (key === 'of') continue;
    const p = entry.params[key];
    if (!p) {
      const valid = [...Object.entries(entry.params).map(([k, q]) => describeParam(k, q)), 'of (detector names, joined by +)'];
      throw Errors.badSpec(spec, `unknown parameter '${key}'`, valid);
    }
    values[key] = parseRawValue(spec, key, p, value);
  }
  const params = resolveParams(spec, entry.params, values);
  return { name: entry.name, id: canonicalSpec(entry.name, { ...params, of: of.join('+') }), params, of };
}

/**
 * A plan from detector specs `name[:key=value,...]`. Roles are named like parameters, several models
 * joined by `+` (`order-disagreement:low=zoo:dam-n2,high=zoo:dam-n20+zoo:dam-n30`); unnamed roles
 * take `options.roles`, else the detector's defaults. At most one combined spec
 * (`combined:method=fisher,of=feature-squeezing+noise-instability`; `of` defaults to every detector
 * of the plan). Unknown names, keys and values are `BAD_SPEC` errors listing the valid ones.
 *
 * @example
 *   planDetectors(['feature-squeezing', 'noise-instability:sigma=0.05', 'combined']).detectors[1].id;
 *   // 'noise-instability:copies=16,model=zoo:mlp-relu,seed=0,sigma=0.05'
 */
export function planDetectors(specs: readonly string[], options: PlanOptions = {}): DetectorPlan {
  const detectors: DetectorConfig[] = [];
  let combinedSpec: { spec: string; raw: ReadonlyMap<string, string> } | undefined;
  for (const spec of specs) {
    if (spec.trim() === '' || spec.trim().startsWith(':')) throw Errors.badSpec(spec, 'no detector name', detectorNames());
    const { name, raw } = splitSpec(spec);
    const entry = getDetectorEntry(name);
    if (!entry) throw Errors.badSpec(spec, `unknown detector '${name}'`, detectorNames());
    if (entry.kind === 'combined') {
      if (combinedSpec) throw Errors.badSpec(spec, 'a plan has at most one combined score');
      combinedSpec = { spec, raw };
      continue;
    }
    if (detectors.some((d) => d.name === name)) throw Errors.badSpec(spec, `detector '${name}' appears twice in the plan`);
    detectors.push(configure(entry, spec, raw, options));
  }
  if (detectors.length === 0) throw Errors.badArgument('a detector plan needs at least one model detector', { specs });
  const combined = combinedSpec ? configureCombined(combinedSpec.spec, combinedSpec.raw, detectors.map((d) => d.name)) : null;
  return { detectors, combined, bound: false };
}

/**
 * Every model id the plan needs, each once, in first-use order: what to load before binding.
 *
 * @example
 *   planModels(planDetectors(['order-disagreement'])); // ['zoo:mlp-relu', 'zoo:dam-n20', 'zoo:dam-n30']
 */
export function planModels(plan: DetectorPlan): string[] {
  const ids: string[] = [];
  for (const d of plan.detectors) for (const list of Object.values(d.models)) for (const id of list) if (!ids.includes(id)) ids.push(id);
  return ids;
}

/**
 * What a plan's models may be: runners on any engine, or tfjs classifiers (wrapped as tfjs runners;
 * the wrapper is never disposed here, so the caller keeps owning the classifier).
 */
export type PlanModel = Classifier | ModelRunner;

function byId(models: readonly PlanModel[]): Map<string, ModelRunner> {
  return new Map(models.map((m) => [m.id, asRunner(m)]));
}

function roleModels(config: DetectorConfig, entry: ModelDetectorEntry, models: ReadonlyMap<string, ModelRunner>): RoleModels {
  const out: Record<string, ModelRunner[]> = {};
  for (const role of entry.roles) {
    out[role.name] = (config.models[role.name] ?? []).map((id) => {
      const m = models.get(id);
      if (!m) throw Errors.badArgument(`detector ${config.name} needs model '${id}' (role ${role.name}), which was not given`, { id, role: role.name });
      return m;
    });
  }
  return out;
}

/**
 * The plan with its models checked and its model-dependent parameters fixed (`source=auto` becomes
 * `embedding` or `margin`, ...). `models` are the built models (runners or classifiers), matched by `id`.
 *
 * @example
 *   const plan = bindPlan(planDetectors(['energy']), [damModel]); // energy source=energy or gap
 */
export function bindPlan(plan: DetectorPlan, models: readonly PlanModel[]): DetectorPlan {
  const lookup = byId(models);
  const detectors = plan.detectors.map((config) => {
    const entry = modelDetectorEntry(config.name);
    const params = entry.bind(config.params, roleModels(config, entry, lookup));
    return { ...config, params, id: detectorId(entry, params, config.models) };
  });
  return { detectors, combined: plan.combined, bound: true };
}

async function readColumn(t: Tensor, count: number): Promise<EvidenceValue[]> {
  const data = await t.data();
  const width = t.rank === 1 ? 0 : t.shape[1]!;
  const bool = t.dtype === 'bool';
  const out: EvidenceValue[] = [];
  for (let i = 0; i < count; i++) {
    if (width === 0) out.push(bool ? data[i] !== 0 : Number(data[i]));
    else {
      const row = Array.from(data.subarray(i * width, (i + 1) * width), Number);
      out.push(bool ? row.map((v) => v !== 0) : row);
    }
  }
  return out;
}

/**
 * Every detector of a bound plan on one batch `x [B, D]` (the caller keeps `x`): scores and
 * evidence as plain data. Leaves no tensors behind; deterministic for a given plan, backend and engine.
 *
 * @example
 *   const { scores, evidence } = await runDetectors(plan, models, x);
 *   scores['feature-squeezing']; // Float32Array [B]
 */
export async function runDetectors(plan: DetectorPlan, models: readonly PlanModel[], x: Tensor2D): Promise<DetectorBatch> {
  if (!plan.bound) throw Errors.badArgument('the detector plan is not bound to its models: call bindPlan(plan, models) first');
  const lookup = byId(models);
  const count = x.shape[0];
  const scores: Record<string, Float32Array> = {};
  const evidence: Record<string, Evidence>[] = Array.from({ length: count }, () => ({}));
  for (const config of plan.detectors) {
    const entry = modelDetectorEntry(config.name);
    const byRole = roleModels(config, entry, lookup);
    const rebound = entry.bind(config.params, byRole);
    if (detectorId(entry, rebound, config.models) !== config.id) {
      throw Errors.badArgument(`the models given to ${config.name} bind it differently from the plan (${config.id}); rebind the plan`, {
        id: config.id,
      });
    }
    const scope = new TensorScope();
    let tensors: Tensor[];
    const names: string[] = [];
    try {
      const out = await entry.score(byRole, x, config.params, scope);
      names.push(...Object.keys(out.evidence));
      tensors = [out.score, ...Object.values(out.evidence)];
    } catch (e) {
      scope.dispose();
      throw e;
    }
    try {
      const [score, ...columns] = tensors;
      if (score!.rank !== 1 || score!.shape[0] !== count) {
        throw Errors.badArgument(`${config.name} returned scores of shape [${score!.shape.join(', ')}] for ${count} records`);
      }
      // Copied: on the cpu backend data() aliases the tensor's storage.
      const s = new Float32Array(await score!.data());
      for (let i = 0; i < count; i++) {
        if (!Number.isFinite(s[i]!)) {
          throw Errors.badModel(Object.values(config.models).flat().join(', '), `${config.name} scored record ${i} as ${s[i]}`);
        }
      }
      scores[config.name] = s;
      for (let c = 0; c < columns.length; c++) {
        const values = await readColumn(columns[c]!, count);
        for (let i = 0; i < count; i++) (evidence[i]![config.name] ??= {})[names[c]!] = values[i]!;
      }
    } finally {
      // The result's tensors are the scope's, unless a detector made one outside it.
      tf.dispose(tensors);
      scope.dispose();
    }
  }
  return { count, scores, evidence };
}
