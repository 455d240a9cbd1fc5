/**
 * The audit's worker pool: the detector plan parsed, its models (and any attack sources) loaded in
 * the main thread, their bytes carried to each thread once, and the plan bound there. Calibration,
 * the audit itself, the service and audit-bench all run their batches on one such pool.
 */
import os from 'node:os';
import path from 'node:path';
import type { Shape } from '../src/data/index.js';
import { planDetectors, planModels, type DetectorPlan, type PlanOptions } from '../src/detect/index.js';
import type { EngineChoice } from '../src/engine/build.js';
import { loadArtifact, type ModelArtifact } from '../src/models/artifact.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import {
  AuditRuntime,
  sendAuditTask,
  type AuditReady,
  type AuditSetup,
  type AuditTask,
  type AuditTaskResult,
} from '../workers/audit-task.js';
import { enginesOf } from '../workers/protocol.js';
import { modelDigest } from './checkpoint.js';
import { mainThread, workerPool, type RunPlace, type TaskKind, type TaskRunner } from './runner.js';
import { commonInputShape, positiveInt } from './options.js';

/**
 * The detectors of an audit that names none: the order-disagreement audit of Krotov & Hopfield
 * (ReLU MLP against DAMs of order 20 and 30), feature squeezing and noise instability on the MLP, and
 * their combined score. Every model they use is in the shipped zoo (`zoo:mlp-relu`, `zoo:dam-n20`,
 * `zoo:dam-n30`).
 */
export const DEFAULT_DETECTORS: readonly string[] = ['order-disagreement', 'feature-squeezing', 'noise-instability', 'combined'];

/** The compiled worker file of the audit. */
export const AUDIT_WORKER_FILE = path.join(PACKAGE_ROOT, 'dist', 'workers', 'audit-worker.js');

/** The audit as a task kind of the shared runner. */
export const AUDIT_TASKS: TaskKind<AuditSetup, AuditTask, AuditTaskResult, AuditReady> = {
  name: 'audit',
  file: AUDIT_WORKER_FILE,
  send: sendAuditTask,
  create: (setup, workerId) => AuditRuntime.create(setup, workerId),
};

export interface AuditPoolOptions {
  /** Detector specs; default {@link DEFAULT_DETECTORS}. */
  detectors?: readonly string[];
  /** Models for the roles the specs leave unnamed (see `PlanOptions.roles`). */
  roles?: PlanOptions['roles'];
  /** Worker threads; default `os.availableParallelism()`. */
  workers?: number;
  /** Force a backend. `tensorflow` (tfjs-node) runs in the main thread, without a pool. */
  backend?: string;
  /**
   * Which engine computes the models: `auto` (default: ONNX Runtime for ONNX files and the exported
   * zoo families, with tfjs behind them for the DAM energy and the adaptive ensemble; tfjs for the
   * rest), `tfjs` (an ONNX file is an error) or `onnx` (see `src/engine/build.ts`).
   */
  engine?: EngineChoice;
  /** Run batches in the main thread even without tfjs-node. */
  mainThread?: boolean;
}

export type AuditRunner = TaskRunner<AuditTask, AuditTaskResult, AuditReady>;

/** An open pool with its plan bound; close it when done. */
export interface AuditPool {
  runner: AuditRunner;
  ready: AuditReady;
  /** The plan as the threads bound it. */
  plan: DetectorPlan;
  /** The plan's model ids, in `planModels` order: the order of a result's `preds`. */
  planIds: string[];
  /** Every model of the pool: the plan's, then extra ones (attack sources). */
  artifacts: ModelArtifact[];
  /** SHA-256 of each model's model.json and weights, by id. */
  digests: Record<string, string>;
  /** The input shape every model takes, and its size. */
  shape: Shape;
  dim: number;
  /** The fewest classes among the plan's models. */
  classes: number;
  /** The engines computing the models, distinct, `+`-joined (`onnx-cpu+tfjs-wasm`), as eval names them. */
  engine: string;
  close(): Promise<void>;
}

/** Where an audit pool computes, as the audit's records and provenance state it. */
export function poolRun(pool: AuditPool): RunPlace {
  return { backend: pool.ready.backend.backend, engine: pool.engine, simd: pool.ready.backend.simd, mode: pool.runner.mode, workers: pool.runner.threads };
}

/**
 * Parses the detector specs, loads every model (the plan's and `extraModels`) and starts the
 * threads, which bind the plan to their models. Specs are checked before any model is read.
 */
export async function openAuditPool(options: AuditPoolOptions = {}, extraModels: readonly string[] = []): Promise<AuditPool> {
  const workers = positiveInt('workers', options.workers, os.availableParallelism());
  const specs = options.detectors ?? DEFAULT_DETECTORS;
  const plan = planDetectors(specs, options.roles ? { roles: options.roles } : {});
  const planIds = planModels(plan);
  const ids = [...planIds, ...extraModels.filter((id) => !planIds.includes(id))];
  const artifacts: ModelArtifact[] = [];
  for (const id of ids) {
    if (id.startsWith('adaptive:')) continue;
    if (!artifacts.some((a) => a.id === id)) artifacts.push(await loadArtifact(id));
  }
  const setup: AuditSetup = {
    models: artifacts,
    plan,
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
  };
  const inMain = options.mainThread ?? options.backend === 'tensorflow';
  const runner = inMain ? mainThread(AUDIT_TASKS, setup) : workerPool(AUDIT_TASKS, setup, workers);
  try {
    const ready = await runner.ready();
    const planModelsInfo = ready.models.filter((m) => planIds.includes(m.id));
    const shape = commonInputShape(ready.models);
    return {
      runner,
      ready,
      plan: ready.plan,
      planIds,
      artifacts,
      digests: Object.fromEntries(artifacts.map((a) => [a.id, modelDigest(a)])),
      shape: [...shape],
      dim: shape[0] * shape[1] * shape[2],
      classes: Math.min(...planModelsInfo.map((m) => m.numClasses)),
      engine: enginesOf(ready.models),
      close: () => runner.close(),
    };
  } catch (e) {
    await runner.close().catch(() => {});
    throw e;
  }
}
