/** A reject sink that writes one JSON line per rejected record to a file (`--rejects FILE`). */
import { open } from 'node:fs/promises';
import { Errors } from '../errors.js';
import type { RejectSink } from './source.js';

export interface RejectFile extends RejectSink {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Creates (or empties) `path`, so that an empty file after a run means nothing was rejected.
 *
 * @example
 * const rejects = await openRejectFile('rejects.ndjson');
 * try { await inspectSource(openSource('ndjson:in.ndjson', { onBadRecord: 'skip', rejects })); }
 * finally { await rejects.close(); }
 */
export async function openRejectFile(path: string): Promise<RejectFile> {
  let fh;
  try {
    fh = await open(path, 'w');
  } catch (e) {
    throw Errors.badArgument(`cannot write the rejects file ${path}: ${(e as Error).message}`, { path });
  }
  const handle = fh;
  return {
    path,
    write: async (reject) => {
      await handle.write(`${JSON.stringify(reject)}\n`);
    },
    close: () => handle.close(),
  };
}
