/**
 * What the fuzz suites share: how many runs (short in `npm test`; `npm run fuzz` sets
 * ADVSTREAM_FUZZ_RUNS for a long run), the bound on each case's time, the memory bound, and the one
 * verdict every hostile input must get: a result, or an AdvstreamError with an expected code.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { isAdvstreamError, type ErrorCode } from '../../src/errors.js';

const LONG = Number(process.env.ADVSTREAM_FUZZ_RUNS);

/** Runs of one property: `short` in `npm test`, ADVSTREAM_FUZZ_RUNS in a long run. */
export const runs = (short: number) => (Number.isSafeInteger(LONG) && LONG > 0 ? LONG : short);

/** The most one case may take, in milliseconds: a case over it is a hang. */
export const CASE_MS = 5000;

/** The most the process's peak RSS may grow while one property runs, in MiB. */
export const RSS_BOUND_MB = 512;

/** fast-check's parameters for a property of `short` runs; a seed from ADVSTREAM_FUZZ_SEED replays a failure. */
export function params(short: number): fc.Parameters<unknown> {
  const seed = Number(process.env.ADVSTREAM_FUZZ_SEED);
  return { numRuns: runs(short), timeout: CASE_MS, ...(Number.isSafeInteger(seed) ? { seed } : {}) };
}

/** `p`'s outcome: `ok`, or the code of the AdvstreamError it threw; anything else fails the case. */
export async function outcome(p: Promise<unknown> | (() => unknown), codes: readonly ErrorCode[]): Promise<'ok' | ErrorCode> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (e) {
    if (!isAdvstreamError(e)) throw new Error(`not a coded error: ${(e as Error)?.stack ?? String(e)}`);
    if (!codes.includes(e.code)) throw new Error(`code ${e.code} is not one of ${codes.join(', ')}: ${e.message}`);
    return e.code;
  }
}

/** Runs `property` and checks the process's peak RSS grew less than {@link RSS_BOUND_MB} meanwhile. */
export async function withinMemory(property: () => Promise<void>): Promise<void> {
  const start = process.memoryUsage().rss / 2 ** 20;
  await property();
  const peak = process.resourceUsage().maxRSS / 1024;
  expect(peak - start, `peak RSS ${peak.toFixed(0)} MiB from ${start.toFixed(0)} MiB`).toBeLessThan(RSS_BOUND_MB);
}

/** Every path into a JSON value (object keys and array indexes), at most `limit` of them. */
export function jsonPaths(value: unknown, limit = 400): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (v: unknown, at: (string | number)[]) => {
    if (out.length >= limit) return;
    out.push(at);
    if (Array.isArray(v)) v.slice(0, 8).forEach((x, i) => walk(x, [...at, i]));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
  };
  walk(value, []);
  return out;
}

/** A copy of `value` with the thing at `path` replaced by `replacement` (deleted when it is `undefined`). */
export function replaceAt(value: unknown, path: readonly (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (replacement === undefined) {
    if (Array.isArray(at)) at.splice(Number(last), 1);
    else delete at[last];
  } else at[last] = replacement;
  return copy;
}

/** Edits of a JSON document: up to three paths replaced by hostile values or deleted. */
export function jsonEdits(doc: unknown): fc.Arbitrary<unknown> {
  const paths = jsonPaths(doc);
  const hostile = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.constantFrom(undefined, null, -1, 0, 1e308, -0, 2 ** 53, 'x', '', [], {}, true),
    fc.integer(),
    fc.double(),
  );
  return fc.array(fc.tuple(fc.nat({ max: paths.length - 1 }), hostile), { minLength: 1, maxLength: 3 }).map((edits) => {
    let out = doc;
    for (const [i, v] of edits) {
      const p = paths[i]!;
      try {
        out = replaceAt(out, p, v);
      } catch {
        // An earlier edit removed the path's parent: this edit has nothing to edit.
      }
    }
    return out;
  });
}
