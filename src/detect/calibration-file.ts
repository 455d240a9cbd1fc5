/**
 * Calibration files: a {@link Calibration} as JSON. Reading is split as model artifacts are: the
 * main thread reads the file ({@link loadCalibration}); {@link parseCalibration} validates plain
 * JSON anywhere, workers included.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { Errors, isAdvstreamError } from '../errors.js';
import { QuantileSketch } from '../stats/index.js';
import { CALIBRATION_FORMAT, CALIBRATION_VERSION, checkCalibration, type Calibration } from './calibration.js';
import type { DetectorPlan } from './plan.js';
import { getDetectorEntry } from './registry.js';

const paramValues = z.record(z.string(), z.union([z.number(), z.boolean(), z.string()]));
const bucket = z.tuple([z.number().int(), z.number().int().nonnegative()]);
const sketch = z.object({
  relativeAccuracy: z.number(),
  minMagnitude: z.number(),
  min: z.number().nullable(),
  max: z.number().nullable(),
  zero: z.number().int().nonnegative(),
  positive: z.array(bucket),
  negative: z.array(bucket),
});
const scoreCalibration = z.object({
  threshold: z.number(),
  rate: z.number().min(0).max(1),
  n: z.number().int().positive(),
  sketch,
});
const calibrationSchema = z.object({
  format: z.literal(CALIBRATION_FORMAT),
  version: z.literal(CALIBRATION_VERSION),
  plan: z.object({
    detectors: z.array(
      z.object({
        name: z.string(),
        id: z.string(),
        params: paramValues,
        models: z.record(z.string(), z.array(z.string().min(1)).min(1)),
      }),
    ).min(1),
    combined: z.object({ name: z.string(), id: z.string(), params: paramValues, of: z.array(z.string()).min(1) }).nullable(),
    bound: z.literal(true),
  }),
  fpr: z.number().gt(0).lt(1),
  detectors: z.record(z.string(), scoreCalibration),
  combined: scoreCalibration.nullable(),
  source: z.string().optional(),
  provenance: z.record(z.string(), z.unknown()).optional(),
});

/**
 * A calibration from parsed JSON, every field and sketch checked; `BAD_CALIBRATION` otherwise. No
 * I/O: for workers, which get the calibration as plain data.
 *
 * @example
 *   const calibration = parseCalibration(task.calibration, 'task');
 */
export function parseCalibration(json: unknown, where = 'calibration'): Calibration {
  const parsed = calibrationSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw Errors.badCalibration(where, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const c = parsed.data as Calibration;
  const names = c.plan.detectors.map((d) => d.name);
  for (const d of c.plan.detectors) {
    if (getDetectorEntry(d.name)?.kind !== 'model') throw Errors.badCalibration(where, `unknown detector '${d.name}'`);
    if (!c.detectors[d.name]) throw Errors.badCalibration(where, `no calibration for detector '${d.name}'`);
  }
  for (const name of Object.keys(c.detectors)) if (!names.includes(name)) throw Errors.badCalibration(where, `'${name}' is calibrated but not in the plan`);
  if (c.combined && !c.plan.combined) throw Errors.badCalibration(where, 'a combined calibration without a combined score in the plan');
  for (const n of c.plan.combined?.of ?? []) if (!names.includes(n)) throw Errors.badCalibration(where, `the combined score merges '${n}', which is not in the plan`);
  for (const [name, s] of [...Object.entries(c.detectors), ...(c.combined ? [['combined', c.combined] as const] : [])]) {
    if (!Number.isFinite(s.threshold)) throw Errors.badCalibration(where, `${name}: threshold ${s.threshold} is not finite`);
    try {
      if (QuantileSketch.fromJSON(s.sketch).count !== s.n) throw Errors.badCalibration(where, `${name}: the sketch does not hold n = ${s.n} scores`);
    } catch (e) {
      if (isAdvstreamError(e) && e.code === 'BAD_CALIBRATION') throw e;
      throw Errors.badCalibration(where, `${name}: bad sketch: ${(e as Error).message}`);
    }
  }
  return c;
}

/**
 * Writes a calibration as JSON; {@link loadCalibration} reads it back to identical verdicts.
 *
 * @example
 *   await saveCalibration('runs/audit/calibration.json', finishCalibration(acc, { fpr: 0.01 }));
 */
export async function saveCalibration(file: string, calibration: Calibration): Promise<void> {
  await writeFile(file, `${JSON.stringify(calibration)}\n`);
}

export interface LoadCalibrationOptions {
  /** The bound plan about to use it: a calibration made for another is a `CALIBRATION_MISMATCH`. */
  plan?: DetectorPlan;
}

/**
 * Reads and checks a calibration file; with `plan`, refuses one made for other detectors,
 * parameters or models.
 *
 * @example
 *   const calibration = await loadCalibration('runs/audit/calibration.json', { plan });
 */
export async function loadCalibration(file: string, options: LoadCalibrationOptions = {}): Promise<Calibration> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw Errors.badCalibration(file, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw Errors.badCalibration(file, `not JSON: ${(e as Error).message}`);
  }
  const calibration = parseCalibration(json, file);
  if (options.plan) checkCalibration(calibration, options.plan, file);
  return calibration;
}
