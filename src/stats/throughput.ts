import { Errors } from '../errors.js';
import { ExactSum } from './exact-sum.js';
import { checkCount, checkFinite, checkFiniteOrNull, checkId, checkRecord, getOrCreate, sortedEntries } from './shared.js';

/** What one worker reports for one task (a batch). */
export interface ThroughputTask {
  /** Unique across threads and hosts, e.g. `host-a/3`. */
  workerId: string;
  images: number;
  gradEvals: number;
  forwardEvals: number;
  /**
   * When the worker started and finished the task, in epoch milliseconds
   * (`performance.timeOrigin + performance.now()`), so that spans from different threads line up;
   * across hosts they line up to within clock skew. The worker is busy for `endMs − startMs`.
   */
  startMs: number;
  endMs: number;
}

export interface ThroughputJSON {
  images: number;
  gradEvals: number;
  forwardEvals: number;
  /** Earliest task start and latest task end; `null` before the first task. */
  startMs: number | null;
  endMs: number | null;
  /** Busy milliseconds per worker, as canonical exact sums. */
  busyMs: Record<string, number[]>;
}

export interface ThroughputSummary {
  images: number;
  grad_evals: number;
  forward_evals: number;
  /** From the first task's start to the last task's end. */
  wall_s: number;
  /** Rates per wall second; `null` when no wall time has passed. */
  images_per_s: number | null;
  grad_evals_per_s: number | null;
  forward_evals_per_s: number | null;
  /** Total busy time over (workers × wall time); `null` when no wall time has passed. */
  utilisation: number | null;
  workers: Record<string, { busy_s: number; utilisation: number | null }>;
}

/**
 * Work done and time spent, per worker. Counts are integers, busy times exact sums and the wall span
 * a min/max pair, so merging is exact in any grouping.
 *
 * @example
 * const t = new Throughput();
 * t.add({ workerId: 'w0', images: 32, gradEvals: 1280, forwardEvals: 1312, startMs: 0, endMs: 500 });
 * t.summary().images_per_s; // 64
 */
export class Throughput {
  private images = 0;
  private gradEvals = 0;
  private forwardEvals = 0;
  private start = Infinity;
  private end = -Infinity;
  private readonly busy = new Map<string, ExactSum>();

  add(task: ThroughputTask): this {
    const workerId = checkId(task.workerId, 'workerId');
    const images = checkCount(task.images, 'images');
    const gradEvals = checkCount(task.gradEvals, 'gradEvals');
    const forwardEvals = checkCount(task.forwardEvals, 'forwardEvals');
    const startMs = checkFinite(task.startMs, 'startMs');
    const endMs = checkFinite(task.endMs, 'endMs');
    if (endMs < startMs) throw Errors.badArgument(`task ends (${endMs}) before it starts (${startMs})`, { startMs, endMs });
    this.images += images;
    this.gradEvals += gradEvals;
    this.forwardEvals += forwardEvals;
    this.start = Math.min(this.start, startMs);
    this.end = Math.max(this.end, endMs);
    getOrCreate(this.busy, workerId, () => new ExactSum()).add(endMs - startMs);
    return this;
  }

  merge(other: Throughput): this {
    this.images += other.images;
    this.gradEvals += other.gradEvals;
    this.forwardEvals += other.forwardEvals;
    this.start = Math.min(this.start, other.start);
    this.end = Math.max(this.end, other.end);
    for (const [id, ms] of other.busy) getOrCreate(this.busy, id, () => new ExactSum()).merge(ms);
    return this;
  }

  toJSON(): ThroughputJSON {
    const busyMs: Record<string, number[]> = {};
    for (const [id, ms] of sortedEntries(this.busy)) busyMs[id] = ms.toJSON();
    const started = this.start !== Infinity;
    return {
      images: this.images,
      gradEvals: this.gradEvals,
      forwardEvals: this.forwardEvals,
      startMs: started ? this.start : null,
      endMs: started ? this.end : null,
      busyMs,
    };
  }

  static fromJSON(json: ThroughputJSON): Throughput {
    const o = checkRecord(json, 'throughput');
    const t = new Throughput();
    t.images = checkCount(o.images, 'throughput.images');
    t.gradEvals = checkCount(o.gradEvals, 'throughput.gradEvals');
    t.forwardEvals = checkCount(o.forwardEvals, 'throughput.forwardEvals');
    const start = checkFiniteOrNull(o.startMs, 'throughput.startMs');
    const end = checkFiniteOrNull(o.endMs, 'throughput.endMs');
    if ((start === null) !== (end === null)) throw Errors.badArgument('throughput needs both startMs and endMs, or neither');
    t.start = start ?? Infinity;
    t.end = end ?? -Infinity;
    for (const [id, ms] of Object.entries(checkRecord(o.busyMs, 'throughput.busyMs'))) {
      t.busy.set(checkId(id, 'workerId'), ExactSum.fromJSON(ms as number[]));
    }
    return t;
  }

  summary(): ThroughputSummary {
    const wallMs = this.start === Infinity ? 0 : this.end - this.start;
    const perSecond = (count: number): number | null => (wallMs > 0 ? count / (wallMs / 1000) : null);
    const workers: ThroughputSummary['workers'] = {};
    const busyTotal = new ExactSum();
    for (const [id, ms] of sortedEntries(this.busy)) {
      busyTotal.merge(ms);
      const busyMs = ms.value();
      workers[id] = { busy_s: busyMs / 1000, utilisation: wallMs > 0 ? busyMs / wallMs : null };
    }
    return {
      images: this.images,
      grad_evals: this.gradEvals,
      forward_evals: this.forwardEvals,
      wall_s: wallMs / 1000,
      images_per_s: perSecond(this.images),
      grad_evals_per_s: perSecond(this.gradEvals),
      forward_evals_per_s: perSecond(this.forwardEvals),
      utilisation: wallMs > 0 && this.busy.size > 0 ? busyTotal.value() / (wallMs * this.busy.size) : null,
      workers,
    };
  }
}
