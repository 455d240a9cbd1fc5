/**
 * The events of an evaluation and their pure builders: `start`, `batch`, periodic `stats`, one
 * `final`, each from the plan, where it ran, and the statistics so far.
 */
import {
  maxIntervalWidth,
  type EvalStats,
  type EvalSummary,
  type SampleResult,
  type ThroughputSummary,
} from '../src/stats/index.js';
import { blackBoxReason } from '../src/models/artifact.js';
import { maskingWarnings, type MaskingWarning } from '../src/report/masking.js';
import type { EvalReady, EvalTaskResult } from '../workers/eval-task.js';
import { enginesOf } from '../workers/protocol.js';
import type { EvalPlan } from './eval-plan.js';
import type { RunPlace } from './runner.js';
import type { BatchPixels } from './samples.js';

export interface EvalModelInfo {
  id: string;
  family: string;
  num_classes: number;
  input_shape: [number, number, number];
  /** What scores the model (`onnx-cpu`, `tfjs-wasm`, …); empty before the workers are ready. */
  engine: string;
  /** What computes its input gradients; `none` for a black-box model (an ONNX graph with an op that has no gradient rule). */
  gradient_engine: string;
  /** Why it runs black-box (its gradient-attack pairs are skipped): the op without a gradient rule. */
  black_box?: string;
  sha256: string;
  /** From the model's manifest, when it has one. */
  manifest?: { name: string; summary: string; accuracy: { clean: number; testImages: number; source: string }; commit: string };
}

export interface EvalProgress {
  /** Source records consumed by committed batches (after the data offset, resumed runs included). */
  consumed: number;
  /** Records the source holds after offset and limit, when known. */
  total: number | null;
  batches: number;
  in_flight: number;
  retries: number;
  dropped: number;
}

export interface StartEvent extends RunPlace {
  type: 'start';
  source: string;
  batch: number;
  seed: number;
  models: EvalModelInfo[];
  attacks: string[];
  config_hash: string;
  resumed: { consumed: number; batches: number; images: number } | null;
}

/** The per-image results of one batch, in source order. */
export interface BatchEvent {
  type: 'batch';
  index: number;
  /** Source position of the batch's first record (its seed derives from it). */
  first: number;
  ids: string[];
  samples: SampleResult[];
  worker: string;
  /** With `samplePixels`: the pixels of the batch's first `pixels.count` images, when any is among the first N. */
  pixels?: BatchPixels;
}

export interface StatsEvent extends EvalSummary {
  type: 'stats';
  elapsed_s: number;
  max_ci_width: number;
  throughput: ThroughputSummary;
  progress: EvalProgress;
}

export type StopReason = 'end' | 'until-ci' | 'stopped';

export interface FinalEvent extends EvalSummary, RunPlace {
  type: 'final';
  stop_reason: StopReason;
  max_ci_width: number;
  throughput: ThroughputSummary & { elapsed_s: number };
  progress: EvalProgress;
  provenance: Record<string, unknown>;
  /** Signs that these figures overstate robustness (gradient masking), with codes; see src/report/masking.ts. */
  warnings: MaskingWarning[];
}

export type EvalEvent = StartEvent | BatchEvent | StatsEvent | FinalEvent;

/** Where an evaluation ran: the runtime's description is absent for a finished checkpoint, answered with no pool. */
export interface EvalRun {
  backend: { backend: string; simd: boolean };
  mode: RunPlace['mode'];
  workers: number;
  ready: EvalReady | undefined;
}

function resumedFrom(p: EvalPlan): StartEvent['resumed'] {
  const r = p.checkpoint;
  return r ? { consumed: r.consumed, batches: r.batches, images: r.stats.images } : null;
}

/** Each model as the events describe it: from its artifact, and from the runtime once it is up. */
export function modelInfo(p: EvalPlan, ready: EvalReady | undefined): EvalModelInfo[] {
  return p.artifacts.map((a, i) => {
    const m = ready?.models[i];
    const info: EvalModelInfo = {
      id: a.id,
      family: m?.family ?? a.manifest?.family ?? ('family' in a.modelJson ? a.modelJson.family : a.modelJson.format === 'onnx' ? 'onnx' : 'user'),
      num_classes: m?.numClasses ?? 0,
      input_shape: m?.inputShape ?? [0, 0, 0],
      engine: m?.engine ?? '',
      gradient_engine: m?.gradientEngine ?? '',
      sha256: p.config.models[i]!.sha256,
    };
    const blackBox = blackBoxReason(a);
    if (blackBox !== undefined) info.black_box = blackBox;
    if (a.manifest) {
      const { name, summary, accuracy, commit } = a.manifest;
      info.manifest = { name, summary, accuracy, commit };
    }
    return info;
  });
}

export function startEvent(p: EvalPlan, run: EvalRun): StartEvent {
  return {
    type: 'start',
    source: p.uri,
    backend: run.backend.backend,
    engine: enginesOf(run.ready?.models ?? []),
    simd: run.backend.simd,
    mode: run.mode,
    workers: run.workers,
    batch: p.batch,
    seed: p.seed,
    models: modelInfo(p, run.ready),
    attacks: p.attacks,
    config_hash: p.hash,
    resumed: resumedFrom(p),
  };
}

export function statsEvent(live: EvalStats, elapsed: number, progress: EvalProgress): StatsEvent {
  const summary = live.summary();
  return {
    type: 'stats',
    ...summary,
    elapsed_s: elapsed,
    max_ci_width: maxIntervalWidth(summary),
    throughput: live.throughput.summary(),
    progress,
  };
}

/** Everything that reproduces the run, merged over the caller's `extra` (the command line, the commit). */
export function provenance(p: EvalPlan, ready: EvalReady | undefined, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  return {
    ...extra,
    version: p.version,
    seed: p.seed,
    batch: p.batch,
    data: { uri: p.uri, offset: p.offset, limit: p.limit ?? null },
    models: modelInfo(p, ready),
    attacks: p.attacks,
    config_hash: p.hash,
    resumed_from: resumedFrom(p),
  };
}

export function finalEvent(
  p: EvalPlan,
  run: EvalRun,
  committed: EvalStats,
  end: { reason: StopReason; elapsed: number; progress: EvalProgress; provenance: Record<string, unknown> | undefined },
): FinalEvent {
  const summary = committed.summary();
  return {
    type: 'final',
    stop_reason: end.reason,
    ...summary,
    backend: run.backend.backend,
    engine: enginesOf(run.ready?.models ?? []),
    simd: run.backend.simd,
    mode: run.mode,
    workers: run.workers,
    max_ci_width: maxIntervalWidth(summary),
    throughput: { ...committed.throughput.summary(), elapsed_s: end.elapsed },
    progress: end.progress,
    provenance: provenance(p, run.ready, end.provenance),
    warnings: maskingWarnings(summary),
  };
}

/** A result's share of the throughput statistics. */
export function throughputOf(r: EvalTaskResult) {
  return { workerId: r.workerId, images: r.count, gradEvals: r.gradEvals, forwardEvals: r.forwardEvals, startMs: r.startMs, endMs: r.endMs };
}
