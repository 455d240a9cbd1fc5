import { closeSync, openSync, writeSync } from 'node:fs';
import { Errors, exitCodeOf, isAdvstreamError } from '../errors.js';

/** Prints an error for a person and returns the exit code: 2 for bad usage, 1 for anything else. */
export function reportError(e: unknown): number {
  if (isAdvstreamError(e)) {
    process.stderr.write(`advstream: error [${e.code}]: ${e.message}\n`);
    return exitCodeOf(e);
  }
  process.stderr.write(`advstream: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}

export function writeJson(value: unknown, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify(value)}\n`);
}

/** A synchronous line writer for `--out` (or stdout): the final line is on disk before exit. */
export function lineWriter(file: string | undefined): { write(value: unknown): void; close(): void } {
  if (file === undefined) return { write: (value) => void process.stdout.write(`${JSON.stringify(value)}\n`), close: () => {} };
  let fd: number;
  try {
    fd = openSync(file, 'w');
  } catch (e) {
    throw Errors.badArgument(`cannot write ${file}: ${(e as Error).message}`);
  }
  return {
    write: (value) => {
      const bytes = Buffer.from(`${JSON.stringify(value)}\n`);
      let at = 0;
      while (at < bytes.length) at += writeSync(fd, bytes, at);
    },
    close: () => closeSync(fd),
  };
}
