import { Errors } from '../errors.js';

/** Parses a non-negative integer flag value; undefined stays undefined. */
export function nonNegativeInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw Errors.badArgument(`${flag} must be a non-negative integer, got '${text}'`);
  }
  return value;
}

export function positiveInt(flag: string, text: string | undefined): number | undefined {
  const value = nonNegativeInt(flag, text);
  if (value === 0) throw Errors.badArgument(`${flag} must be a positive integer, got '${text}'`);
  return value;
}

export function finiteNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw Errors.badArgument(`${flag} must be a number, got '${text}'`);
  return value;
}

/** `--t-start` → `tStart`, as commander names option values. */
export function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
