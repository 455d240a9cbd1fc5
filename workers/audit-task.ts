/**
 * The audit task: what one batch costs a thread. A `score` task runs every detector of the plan on
 * a batch and every plan model's prediction; an `attack` task (audit-bench) first crafts the batch's
 * adversarials with one attack on one source model (or, for `adaptive:DETECTOR`, on the detector's
 * own models, jointly), then scores those. Thresholds and verdicts are not the worker's business:
 * it returns raw scores, and the main thread, which holds the calibration, decides. Plain data in,
 * plain typed arrays out; no I/O.
 *
 * The same {@link AuditRuntime} runs inside a piscina worker (`audit-worker.ts`) and in the main
 * thread (tfjs-node).
 */
import { performance } from 'node:perf_hooks';
import { parseAttackSpec, type Attack } from '../src/attacks/index.js';
import { initBackend, tf, type BackendInfo, type Tensor2D } from '../src/backend/index.js';
import { bindPlan, detectorEnsemble, planModels, runDetectors, type DetectorPlan, type Evidence } from '../src/detect/index.js';
import { buildRunner, type EngineChoice } from '../src/engine/build.js';
import { Errors } from '../src/errors.js';
import type { ModelArtifact } from '../src/models/artifact.js';
import { inputSize } from '../src/models/classifier.js';
import { describeRuntime, sum, type ReadyModel, type RuntimeReady, type TaskResultHeader, type TaskRuntime } from './protocol.js';
import { asRunner, stoppable, type ModelRunner } from '../src/models/runner.js';

/** The source of an adaptive attack: the joint classifier of one detector's models. */
export const ADAPTIVE_PREFIX = 'adaptive:';

/** What a thread needs to audit: model bytes, the detector plan, the backend to start. */
export interface AuditSetup {
  /** Every model the tasks use: the plan's, and any attack sources (audit-bench). */
  models: ModelArtifact[];
  /** The detector plan; each thread binds it to its models (binding is deterministic). */
  plan: DetectorPlan;
  backend?: string;
  /** Which engine computes the models (see `src/engine/build.ts`); default `auto`. */
  engine?: EngineChoice;
}

interface TaskBase {
  /** The batch's sequence number in its run. */
  index: number;
  /** 0 for the first try; a batch whose worker died is retried. */
  attempt: number;
  count: number;
  dim: number;
  /** `count × dim`, row-major, in [0, 1]. */
  pixels: Float32Array;
}

/** Score a batch: every detector, every plan model's prediction, and (with `evidence`) each detector's evidence. */
export interface ScoreTask extends TaskBase {
  kind: 'score';
  evidence: boolean;
}

/** Attack a batch with one attack on one source, then score the adversarials (no evidence). */
export interface AttackTask extends TaskBase {
  kind: 'attack';
  labels: Int32Array;
  /** A canonical attack spec. */
  attack: string;
  /** A model id of the setup, or `adaptive:DETECTOR` for the joint classifier of that detector's models. */
  source: string;
  seed: number;
  /** Target labels: the attack runs targeted (the adaptive attack must). */
  targets?: Int32Array;
}

export type AuditTask = ScoreTask | AttackTask;

/** What an attack task adds to its result, per record. */
export interface AttackOutcome {
  /** The attack's criterion holds at the returned point (on the source). */
  success: Uint8Array;
  linf: Float32Array;
  l2: Float32Array;
  /** The source's prediction on the clean record (the adaptive ensemble's: `numClasses` = "its members disagree"). */
  sourceClean: Int32Array;
  gradEvals: number;
  forwardEvals: number;
}

/** A finished batch: raw scores; the calibration, in the main thread, turns them into verdicts. */
export interface AuditTaskResult extends TaskResultHeader {
  /** `[count]` per detector of the plan (on the adversarials, for an attack task). */
  scores: Record<string, Float32Array>;
  /** `preds[m·count + i]`: plan model m's prediction (`planModels` order). */
  preds: Int32Array;
  /** Per record, by detector name; null unless a score task asked for it. */
  evidence: Record<string, Evidence>[] | null;
  attack: AttackOutcome | null;
  /** Live tfjs tensors in this thread after the task: constant across tasks unless something leaks. */
  tensors: number;
}

/** What a runtime says about itself once started. */
export interface AuditReady extends RuntimeReady {
  /** `tfjs`: whether a tfjs classifier stands behind it, which the adaptive ensemble and the DAM/DRP extensions need. */
  models: (ReadyModel & { tfjs: boolean })[];
  /** The plan bound to this thread's models: what calibrations are made for and checked against. */
  plan: DetectorPlan;
}

/** The transferable buffers of a result, for `Piscina.move`: each its own buffer. */
export function auditResultBuffers(r: AuditTaskResult): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [...Object.values(r.scores), r.preds];
  if (r.attack) arrays.push(r.attack.success, r.attack.linf, r.attack.l2, r.attack.sourceClean);
  return arrays.map((a) => a.buffer as ArrayBuffer);
}

/** What one attempt sends: copies, so that a retry can send the caller's arrays again. */
export function sendAuditTask(task: AuditTask): { task: AuditTask; transfer: ArrayBuffer[] } {
  const pixels = task.pixels.slice();
  if (task.kind === 'score') return { task: { ...task, pixels }, transfer: [pixels.buffer] };
  const labels = task.labels.slice();
  const targets = task.targets?.slice();
  return {
    task: { ...task, pixels, labels, ...(targets ? { targets } : {}) },
    transfer: [pixels.buffer, labels.buffer, ...(targets ? [targets.buffer] : [])],
  };
}

/** One thread's audit state: the backend, every model built once, the bound plan, parsed attacks. */
export class AuditRuntime implements TaskRuntime<AuditTask, AuditTaskResult, AuditReady> {
  private readonly attacks = new Map<string, Attack>();
  private readonly sources = new Map<string, ModelRunner>();
  private readonly planIds: string[];

  private constructor(
    private readonly setup: AuditSetup,
    private readonly info: BackendInfo,
    private readonly models: ModelRunner[],
    readonly plan: DetectorPlan,
    readonly workerId: string,
  ) {
    this.planIds = planModels(plan);
  }

  /** Starts the backend (once per thread), builds every model on its engine and binds the plan to them. */
  static async create(setup: AuditSetup, workerId: string): Promise<AuditRuntime> {
    const info = await initBackend(setup.backend === undefined ? {} : { backend: setup.backend });
    const models: ModelRunner[] = [];
    try {
      for (const artifact of setup.models) models.push(await buildRunner(artifact, setup.engine ?? 'auto'));
      return new AuditRuntime(setup, info, models, bindPlan(setup.plan, models), workerId);
    } catch (e) {
      for (const m of models) m.dispose();
      throw e;
    }
  }

  async ready(): Promise<AuditReady> {
    const described = describeRuntime(this.workerId, this.info, this.models);
    return {
      ...described,
      models: described.models.map((m, i) => ({ ...m, tfjs: this.models[i]!.classifier !== undefined })),
      plan: this.plan,
    };
  }

  private model(id: string): ModelRunner {
    const m = this.models.find((c) => c.id === id);
    if (!m) throw Errors.badArgument(`model '${id}' is not among the audit's models`, { id, models: this.models.map((c) => c.id) });
    return m;
  }

  private source(id: string): ModelRunner {
    let s = this.sources.get(id);
    if (!s) {
      // The ensemble owns no tensors; its wrapper is never disposed (the members are this runtime's).
      s = id.startsWith(ADAPTIVE_PREFIX) ? asRunner(detectorEnsemble(this.plan, id.slice(ADAPTIVE_PREFIX.length), this.models)) : this.model(id);
      this.sources.set(id, s);
    }
    return s;
  }

  private attack(spec: string): Attack {
    let a = this.attacks.get(spec);
    if (!a) {
      a = parseAttackSpec(spec);
      this.attacks.set(spec, a);
    }
    return a;
  }

  /** Scores (and for an attack task, first attacks) one batch; see {@link AuditTaskResult}. */
  async run(task: AuditTask, signal: AbortSignal = new AbortController().signal): Promise<AuditTaskResult> {
    signal.throwIfAborted();
    const startMs = performance.timeOrigin + performance.now();
    const { count: n, dim } = task;
    for (const m of this.models) {
      if (inputSize(m) !== dim) throw Errors.badArgument(`${m.id} takes ${inputSize(m)} values per image, the batch has ${dim}`);
    }
    if (task.pixels.length !== n * dim) throw Errors.badArgument(`a batch of ${n} records of ${dim} values needs ${n * dim} pixels, got ${task.pixels.length}`);
    let x = tf.tensor2d(task.pixels, [n, dim]);
    let outcome: AttackOutcome | null = null;
    let result: Omit<AuditTaskResult, 'tensors'>;
    try {
      if (task.kind === 'attack') {
        const adv = await this.craft(task, x, signal);
        outcome = adv.outcome;
        x.dispose();
        x = adv.x;
      }
      const batch = await runDetectors(this.plan, this.models, x);
      const preds = new Int32Array(this.planIds.length * n);
      for (let m = 0; m < this.planIds.length; m++) {
        const scores = await this.model(this.planIds[m]!).scores(x);
        const pred = tf.tidy(() => tf.argMax(scores, 1));
        scores.dispose();
        preds.set(await pred.data(), m * n);
        pred.dispose();
      }
      result = {
        ok: true,
        index: task.index,
        count: n,
        workerId: this.workerId,
        startMs,
        endMs: performance.timeOrigin + performance.now(),
        scores: batch.scores,
        preds,
        evidence: task.kind === 'score' && task.evidence ? batch.evidence : null,
        attack: outcome,
      };
    } finally {
      x.dispose();
    }
    return { ...result, tensors: tf.memory().numTensors };
  }

  /** Disposes every model (their tensors and ONNX Runtime sessions); the runtime is done. */
  close(): void {
    for (const m of this.models) m.dispose();
  }

  private async craft(task: AttackTask, x: Tensor2D, signal: AbortSignal): Promise<{ x: Tensor2D; outcome: AttackOutcome }> {
    const n = task.count;
    if (task.labels.length !== n) throw Errors.badArgument(`a batch of ${n} records needs ${n} labels, got ${task.labels.length}`);
    if (task.targets && task.targets.length !== n) throw Errors.badArgument(`a batch of ${n} records needs ${n} targets, got ${task.targets.length}`);
    const source = stoppable(this.source(task.source), signal);
    const attack = this.attack(task.attack);
    const labels = tf.tensor1d(task.labels, 'int32');
    const targets = task.targets ? tf.tensor1d(task.targets, 'int32') : undefined;
    try {
      const scores = await source.scores(x);
      const clean = tf.tidy(() => tf.argMax(scores, 1));
      scores.dispose();
      const sourceClean = new Int32Array(await clean.data());
      clean.dispose();
      const res = await attack.run(source, x, labels, { seed: task.seed, ...(targets ? { targets } : {}) });
      return {
        // Copied: an attack's arrays may alias a tensor's storage, and the result's buffers are transferred.
        x: tf.tensor2d(res.adversarial.slice(), [n, task.dim]),
        outcome: {
          success: res.success.slice(),
          linf: res.linf.slice(),
          l2: res.l2.slice(),
          sourceClean,
          gradEvals: sum(res.gradients),
          forwardEvals: sum(res.forwards),
        },
      };
    } finally {
      tf.dispose([labels, ...(targets ? [targets] : [])]);
    }
  }
}
