/**
 * The option checks and source forms every pipeline shares (evaluation, audit, audit-bench), so a
 * bad number reads the same whichever command it was given to.
 */
import { formatShape, type OnBadRecord, type RecordSource, type Shape, type SourceOptions } from '../src/data/index.js';
import { Errors } from '../src/errors.js';

/** A source to open by URI: the pipeline opens it itself (a resumed run can skip by offset; an audit checks the shape). */
export interface SourceSpec extends SourceOptions {
  uri: string;
}

export type EvalSource = RecordSource | SourceSpec;

/** A stats event every so many seconds, or every so many committed batches. */
export type StatsEvery = { seconds: number } | { batches: number };

/** Whether `source` is a URI to open rather than an open source. */
export function isSpec(source: EvalSource): source is SourceSpec {
  return typeof (source as SourceSpec).uri === 'string' && !(Symbol.asyncIterator in source);
}

/** `value` (or `fallback` when absent), which must be a positive safe integer. */
export function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(Number.isSafeInteger(v) && v > 0)) throw Errors.badArgument(`${name} must be a positive integer, got ${String(value)}`);
  return v;
}

/** `value` (or `fallback` when absent), which must be a non-negative safe integer. */
export function nonNegativeInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(Number.isSafeInteger(v) && v >= 0)) throw Errors.badArgument(`${name} must be a non-negative integer, got ${String(value)}`);
  return v;
}

/** The reject policy, checked. */
export function badRecordPolicy(value: OnBadRecord | undefined, fallback: OnBadRecord): OnBadRecord {
  const policy = value ?? fallback;
  if (policy !== 'fail' && policy !== 'skip') throw Errors.badArgument(`onBadRecord must be 'fail' or 'skip', got '${String(policy)}'`);
  return policy;
}

/** When periodic events are due, checked: every `seconds`, or every `batches` committed batches. */
export interface Cadence {
  seconds?: number;
  batches?: number;
}

/** `every` (default every `fallbackSeconds` seconds) as a checked {@link Cadence}. */
export function cadence(every: StatsEvery | undefined, fallbackSeconds = 2): Cadence {
  const e = every ?? { seconds: fallbackSeconds };
  if ('batches' in e) {
    if (!(Number.isSafeInteger(e.batches) && e.batches > 0)) throw Errors.badArgument(`stats every N batches needs a positive integer N, got ${e.batches}`);
    return { batches: e.batches };
  }
  if (!(e.seconds > 0)) throw Errors.badArgument(`stats every S seconds needs S > 0, got ${e.seconds}`);
  return { seconds: e.seconds };
}

/** The input shape every model takes; BAD_ARGUMENT naming each model's when they differ. */
export function commonInputShape(models: readonly { id: string; inputShape: Shape }[]): Shape {
  const shape = models[0]!.inputShape;
  if (models.some((m) => formatShape(m.inputShape) !== formatShape(shape))) {
    throw Errors.badArgument(`the models take different inputs: ${models.map((x) => `${x.id} ${formatShape(x.inputShape)}`).join(', ')}`);
  }
  return [...shape];
}
