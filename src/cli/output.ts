import { isAdvstreamError } from '../errors.js';

/** Prints an error for a person and returns the exit code: 2 for bad usage, 1 for anything else. */
export function reportError(e: unknown): number {
  if (isAdvstreamError(e)) {
    process.stderr.write(`advstream: error [${e.code}]: ${e.message}\n`);
    return e.code === 'BAD_ARGUMENT' || e.code === 'BAD_SPEC' || e.code === 'UNKNOWN_BACKEND' ? 2 : 1;
  }
  process.stderr.write(`advstream: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}

export function writeJson(value: unknown, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify(value)}\n`);
}
