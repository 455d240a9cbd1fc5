/**
 * Reading what `advstream eval` (and later `audit`) wrote: the run's NDJSON events and the
 * `--samples` lines, each checked as it is read, with errors naming the file and line.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { AdvstreamError, Errors, type Location } from '../errors.js';
import type { EvalSummary } from '../stats/index.js';
import type { ImageShape } from './pixels.js';

/** One line of an NDJSON input: its parsed value, or why it did not parse. */
export type InputLine = { where: Location; value: unknown } | { where: Location; error: AdvstreamError };

/**
 * The non-empty lines of an NDJSON file, parsed, with their line numbers (counting every line from
 * 1). A line that is not JSON is passed on as an error: the reader of the run decides whether a
 * torn last line of an interrupted run is fatal.
 */
export async function* readNdjson(file: string): AsyncGenerator<InputLine> {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a regular file');
  } catch (e) {
    throw Errors.badSource({ file }, `cannot read: ${(e as Error).message}`);
  }
  const input = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line += 1;
      if (text.trim() === '') continue;
      yield parseLine(text, { file, line });
    }
  } finally {
    // A reader that stops early (enough grid images) closes the file now, not at garbage collection.
    lines.close();
    input.destroy();
  }
}

/** Objects handed over in memory: the i-th is "line" i + 1 of `source`. */
export async function* fromValues(values: AsyncIterable<unknown> | Iterable<unknown>, source: string): AsyncGenerator<InputLine> {
  let line = 0;
  for await (const value of values) {
    line += 1;
    yield { where: { file: source, line }, value };
  }
}

function parseLine(text: string, where: Location): InputLine {
  try {
    return { where, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { where, error: Errors.badRecord(where, `not JSON (${(e as Error).message}); a report reads NDJSON: one JSON object per line`) };
  }
}

const interval = z.tuple([z.number(), z.number()]);
const rate = z.number().nullable();

const robustnessSchema = z.looseObject({
  robust_acc: rate,
  ci: interval,
  asr: rate,
  asr_ci: interval,
  mean_linf: rate,
  median_linf: rate,
  mean_l2: rate,
  median_l2: rate,
  mean_conf_misclassified: rate,
  n: z.number(),
});

const summarySchema = z.looseObject({
  images: z.number(),
  models: z.record(
    z.string(),
    z.looseObject({
      clean: z.looseObject({ acc: rate, ci: interval, n: z.number() }),
      attacks: z.record(z.string(), robustnessSchema),
    }),
  ),
  transfer: z.record(z.string(), z.record(z.string(), z.record(z.string(), z.looseObject({ err: rate, ci: interval, n: z.number() })))),
  curves: z.record(z.string(), z.record(z.string(), z.array(z.looseObject({ eps: z.number(), robust_acc: rate })))).optional(),
  throughput: z.looseObject({ images_per_s: rate.optional(), wall_s: z.number().optional(), images: z.number().optional() }).optional(),
  elapsed_s: z.number().optional(),
});

const rocSchema = z.looseObject({
  detector: z.string().min(1),
  attack: z.string().nullable().optional(),
  points: z.array(z.looseObject({ fpr: z.number().min(0).max(1), tpr: z.number().min(0).max(1) })).min(1),
  auc: z.number().nullable().optional(),
});

const count = z.number().int().nonnegative();
const dim = z.number().int().positive();
const pixelsSchema = z.union([z.string(), z.array(z.unknown())], { error: 'must be "u8:<base64>", "f32:<base64>" or an array' });

const sampleSchema = z.looseObject({
  id: z.union([z.string().min(1), z.number()], { error: 'id is required: a non-empty string or a number' }),
  label: count,
  clean: z.record(z.string(), count),
  shape: z.tuple([dim, dim, dim]).optional(),
  pixels: pixelsSchema.optional(),
  adversarials: z.array(
    z.looseObject({
      attack: z.string().min(1),
      source: z.string().min(1),
      success: z.boolean(),
      linf: z.number(),
      l2: z.number(),
      preds: z.record(z.string(), count),
      adversarial: pixelsSchema.optional(),
    }),
  ),
});

/** The statistics of a `final` or `stats` line: {@link EvalSummary} and whatever sits beside it. */
export type RunSummary = EvalSummary & z.infer<typeof summarySchema>;

export interface RocCurve {
  detector: string;
  /** The attack the detector was benchmarked on, when the line names one. */
  attack: string | null;
  points: { fpr: number; tpr: number }[];
  auc: number | null;
  line: number;
}

export interface ThroughputPoint {
  line: number;
  elapsed_s: number;
  images: number;
  /** The run's average since its start, as the line reports it. */
  images_per_s: number | null;
}

/** One `--samples` line, checked; pixels stay encoded until a grid needs them. */
export interface SampleLine {
  id: string;
  label: number;
  clean: Record<string, number>;
  shape?: ImageShape;
  pixels?: unknown;
  adversarials: {
    attack: string;
    source: string;
    success: boolean;
    linf: number;
    l2: number;
    preds: Record<string, number>;
    adversarial?: unknown;
  }[];
  where: Location;
}

/** Everything a report shows about one run. */
export interface Run {
  file: string;
  /** False when the run has no `final` line: the statistics are the last `stats` line's. */
  complete: boolean;
  summary: RunSummary;
  /** The line the statistics come from. */
  summaryLine: number;
  /** The `start` line less its type; `null` when the run has none. */
  start: Record<string, unknown> | null;
  throughput: ThroughputPoint[];
  rocs: RocCurve[];
  warnings: string[];
}

/** Event types a report reads past: per-batch results (their numbers are in the statistics). */
const PASSED_OVER = new Set(['batch']);

/**
 * Reads a run's events: `start` (provenance), `stats` (periodic), `final`, and `roc` lines of an
 * audit. A run without `final` (interrupted) is built from its last `stats` line and marked
 * incomplete; a file of `roc` lines alone (`audit-bench --roc`) gives a report of its detectors; a torn last line is then passed over with a warning, a bad line anywhere else is an
 * error naming file and line.
 */
export async function readRun(lines: AsyncIterable<InputLine>, file: string): Promise<Run> {
  let start: Record<string, unknown> | null = null;
  let final: { summary: RunSummary; line: number } | undefined;
  let lastStats: { summary: RunSummary; line: number } | undefined;
  const throughput: ThroughputPoint[] = [];
  const rocs: RocCurve[] = [];
  const warnings: string[] = [];
  const unknownTypes = new Map<string, number>();
  let torn: AdvstreamError | undefined;
  let events = 0;

  for await (const item of lines) {
    if (torn) throw torn;
    if ('error' in item) {
      torn = item.error;
      continue;
    }
    const { where, value } = item;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw Errors.badRecord(where, 'not a JSON object; a report reads the NDJSON events of advstream eval');
    }
    const type = (value as { type?: unknown }).type;
    if (typeof type !== 'string') {
      const hint = 'adversarials' in value ? ' (this looks like a --samples line: pass that file with --samples)' : '';
      throw Errors.badRecord(where, `no "type": not an event of advstream eval${hint}`);
    }
    events += 1;
    switch (type) {
      case 'start':
        if (start !== null) throw Errors.badRecord(where, 'a second start line: one run per file');
        start = withoutType(value);
        break;
      case 'stats':
      case 'final': {
        const summary = checkSummary(value, where, type);
        const at = { summary, line: where.line ?? 0 };
        if (type === 'final') {
          if (final) throw Errors.badRecord(where, `a second final line (the first is line ${final.line}): one run per file`);
          final = at;
        } else lastStats = at;
        const point = throughputPoint(summary, at.line);
        // A final line right after a stats line (eval --stats-every 1batches) repeats its images: no new point.
        const repeats = type === 'final' && point !== undefined && lastStats !== undefined && throughput.at(-1)?.images === point.images;
        if (point && !repeats) throughput.push(point);
        break;
      }
      case 'roc':
        rocs.push(checkRoc(value, where));
        break;
      default:
        if (!PASSED_OVER.has(type)) unknownTypes.set(type, (unknownTypes.get(type) ?? 0) + 1);
    }
  }

  if (events === 0) {
    if (torn) throw torn;
    throw Errors.badSource({ file }, 'no events: expected the NDJSON that advstream eval writes (start, stats, final lines)');
  }
  const chosen = final ?? lastStats;
  if (!chosen && !torn && rocs.length > 0) {
    // Detector curves alone (`advstream audit-bench --roc`): a report of its Detectors section.
    for (const [type, n] of unknownTypes) warnings.push(`passed over ${n} line(s) of unknown type '${type}'`);
    return { file, complete: true, summary: { images: 0, models: {}, transfer: {} }, summaryLine: 0, start, throughput, rocs, warnings };
  }
  if (!chosen) {
    if (torn) throw torn;
    throw Errors.badSource({ file }, 'no final or stats line: the run stopped before its first statistics, nothing to report');
  }
  if (torn) warnings.push(`${torn.message}: a torn last line, passed over`);
  if (!final) {
    warnings.push(
      `no final line: the run was interrupted; statistics are from the last stats line (line ${chosen.line}, ${chosen.summary.images} images)`,
    );
  }
  if (!start) warnings.push('no start line: provenance is what the final line carries, if anything');
  for (const [type, n] of unknownTypes) warnings.push(`passed over ${n} line(s) of unknown type '${type}'`);
  throughput.sort((a, b) => a.elapsed_s - b.elapsed_s);
  return { file, complete: final !== undefined, summary: chosen.summary, summaryLine: chosen.line, start, throughput, rocs, warnings };
}

/**
 * Reads `--samples` lines one at a time, checked; the caller stops reading when it has enough.
 * A torn last line is passed over, as in {@link readRun}.
 */
export async function* readSamples(lines: AsyncIterable<InputLine>, warnings: string[]): AsyncGenerator<SampleLine> {
  let torn: AdvstreamError | undefined;
  for await (const item of lines) {
    if (torn) throw torn;
    if ('error' in item) {
      torn = item.error;
      continue;
    }
    const parsed = sampleSchema.safeParse(item.value);
    if (!parsed.success) throw Errors.badRecord(item.where, `not a samples line: ${describeIssues(parsed.error)}`);
    const { id, label, clean, shape, pixels, adversarials } = parsed.data;
    yield { id: String(id), label, clean, ...(shape && { shape }), ...(pixels !== undefined && { pixels }), adversarials, where: item.where };
  }
  if (torn) warnings.push(`${torn.message}: a torn last line, passed over`);
}

function checkSummary(value: object, where: Location, type: string): RunSummary {
  const parsed = summarySchema.safeParse(value);
  if (!parsed.success) throw Errors.badRecord(where, `${type} line: ${describeIssues(parsed.error)}`);
  const { type: _type, ...summary } = parsed.data;
  return summary as RunSummary;
}

function checkRoc(value: object, where: Location): RocCurve {
  const parsed = rocSchema.safeParse(value);
  if (!parsed.success) throw Errors.badRecord(where, `roc line: ${describeIssues(parsed.error)}`);
  const { detector, attack, points, auc } = parsed.data;
  return {
    detector,
    attack: attack ?? null,
    points: points.map(({ fpr, tpr }) => ({ fpr, tpr })),
    auc: auc ?? null,
    line: where.line ?? 0,
  };
}

function throughputPoint(summary: RunSummary, line: number): ThroughputPoint | undefined {
  const elapsed = summary.elapsed_s ?? (summary.throughput?.elapsed_s as number | undefined) ?? summary.throughput?.wall_s;
  if (typeof elapsed !== 'number') return undefined;
  return {
    line,
    elapsed_s: elapsed,
    images: summary.throughput?.images ?? summary.images,
    images_per_s: summary.throughput?.images_per_s ?? null,
  };
}

function withoutType(value: object): Record<string, unknown> {
  const { type: _type, ...rest } = value as Record<string, unknown>;
  return rest;
}

/** `models.zoo:cnn.clean.acc: expected number, received string`, issues joined by `; `. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
