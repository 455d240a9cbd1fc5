/**
 * Helpers shared by the accumulators (not part of the public surface). Inputs come from worker
 * threads and checkpoints from files, so a bad value is rejected where it enters instead of
 * poisoning every later merge.
 */
import { Errors } from '../errors.js';

/** A count: a non-negative safe integer. */
export function checkCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw Errors.badArgument(`${what} must be a non-negative integer, got ${String(value)}`, { what, value });
  }
  return value;
}

export function checkFinite(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw Errors.badArgument(`${what} must be a finite number, got ${String(value)}`, { what, value });
  }
  return value;
}

export function checkNonNegative(value: unknown, what: string): number {
  const x = checkFinite(value, what);
  if (x < 0) throw Errors.badArgument(`${what} must be >= 0, got ${x}`, { what, value });
  return x;
}

export function checkArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw Errors.badArgument(`${what} must be an array`, { what });
  return value;
}

export function checkRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw Errors.badArgument(`${what} must be an object`, { what });
  }
  return value as Record<string, unknown>;
}

/** A model or attack id: a non-empty string usable as a plain-object key. */
export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '' || value === '__proto__') {
    throw Errors.badArgument(`${what} must be a non-empty string id, got ${String(value)}`, { what, value });
  }
  return value;
}

/** A finite number, or `null` standing for "no value yet" (JSON has no ±Infinity). */
export function checkFiniteOrNull(value: unknown, what: string): number | null {
  return value === null ? null : checkFinite(value, what);
}

/** Map entries sorted by key, so that plain-data output does not depend on arrival order. */
export function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `NaN` ("no value": an empty accumulator) as `null`, the way it reaches JSON anyway. */
export function orNull(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}

export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
