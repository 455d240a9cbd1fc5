/**
 * Evaluation checkpoints: the accumulator of the batches committed so far (a contiguous prefix of
 * the source) and how many source records that prefix consumed, keyed by a hash of everything that
 * decides the numbers. Written atomically (temp file, fsync, rename), so a crash leaves either the
 * previous checkpoint or the new one, never half of one.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { Errors } from '../src/errors.js';
import type { ModelArtifact } from '../src/models/artifact.js';
import type { EvalStatsJSON } from '../src/stats/index.js';

/** Everything that decides an evaluation's numbers; resuming requires it unchanged. */
export interface CheckpointConfig {
  data: { uri: string; offset: number; limit: number | null; on_bad_record: string };
  /** Model ids with a SHA-256 of their model.json and weights. */
  models: { id: string; sha256: string }[];
  attacks: string[];
  seed: number;
  batch: number;
  /** The backend asked for (`auto` when none was): numerics differ slightly across backends. */
  backend: string;
  /** The engine asked for (`auto`, `tfjs`, `onnx`): the engines' numerics differ slightly too. */
  engine: string;
  /** The worst-case groups reported. */
  worst_case: string[];
  curve_grids: Record<string, number[]>;
}

export interface EvalCheckpoint {
  version: 1;
  config_hash: string;
  config: CheckpointConfig;
  /** Source records (after the data offset) consumed by the committed batches. */
  consumed: number;
  /** Batches committed. */
  batches: number;
  /** The source was read to its end: rerunning only re-emits the final statistics. */
  complete: boolean;
  /** The backend that computed the committed batches. */
  backend: { backend: string; simd: boolean };
  stats: EvalStatsJSON;
  /** The caller's own positions (the CLI keeps the size of its `--samples` file here). */
  annotations: Record<string, unknown>;
  saved_at: string;
}

/** A model's content hash: its model.json and weight bytes. */
export function modelDigest(artifact: ModelArtifact): string {
  return createHash('sha256')
    .update(JSON.stringify(artifact.modelJson))
    .update(new Uint8Array(artifact.weightData))
    .digest('hex');
}

export function configHash(config: CheckpointConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
}

/** Which parts of two configurations differ, in words. */
export function configDifferences(ours: CheckpointConfig, theirs: CheckpointConfig): string[] {
  const out: string[] = [];
  for (const key of Object.keys(ours) as (keyof CheckpointConfig)[]) {
    const a = JSON.stringify(ours[key]);
    const b = JSON.stringify(theirs[key]);
    if (a !== b) out.push(`${key}: checkpoint has ${b}, this run ${a}`);
  }
  return out.length ? out : ['its configuration hash differs'];
}

/** The checkpoint in `file`, or `undefined` when there is none; a file that is not one is an error. */
export async function readCheckpoint(file: string): Promise<EvalCheckpoint | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw Errors.badArgument(`cannot read checkpoint ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw Errors.badArgument(`checkpoint ${file} is not JSON: ${(e as Error).message}`);
  }
  const c = parsed as Partial<EvalCheckpoint> | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    c.version !== 1 ||
    typeof c.config_hash !== 'string' ||
    typeof c.consumed !== 'number' ||
    typeof c.stats !== 'object'
  ) {
    throw Errors.badArgument(`${file} is not an advstream evaluation checkpoint`);
  }
  return c as EvalCheckpoint;
}

/** Writes `checkpoint` to `file` atomically. */
export async function writeCheckpoint(file: string, checkpoint: EvalCheckpoint): Promise<void> {
  await writeJsonAtomic(file, checkpoint);
}

/**
 * The checkpoints of one run, written one after another in the order they were taken (a later
 * snapshot never lands under an earlier one). A failed write does not stop the run at once; the
 * first failure is thrown by {@link CheckpointWriter.flush}.
 *
 * @example
 *   const writer = new CheckpointWriter('eval.ckpt.json');
 *   void writer.save(snapshot());
 *   await writer.flush(); // throws the first failed write
 */
export class CheckpointWriter {
  private writes: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | undefined;

  constructor(readonly file: string) {}

  /** Queues `checkpoint`; resolves when it (and every earlier one) is written or has failed. */
  save(checkpoint: EvalCheckpoint): Promise<void> {
    this.writes = this.writes
      .then(() => writeCheckpoint(this.file, checkpoint))
      .catch((e: unknown) => {
        this.failure ??= { error: e };
      });
    return this.writes;
  }

  /** Waits for the queued writes; throws the first that failed. */
  async flush(): Promise<void> {
    await this.writes;
    if (this.failure) throw this.failure.error;
  }
}

/** Writes `value` as one line of JSON to `file` atomically: a temp file, fsync, then rename. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(`${JSON.stringify(value)}\n`);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  await rename(tmp, file);
}
