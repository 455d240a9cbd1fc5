/**
 * Evaluation checkpoints: the accumulator of the batches committed so far (a contiguous prefix of
 * the source) and how many source records that prefix consumed, keyed by a hash of everything that
 * decides the numbers. Written atomically (temp file, fsync, rename), so a crash leaves either the
 * previous checkpoint or the new one, never half of one.
 *
 * A checkpoint verifies itself: the file carries a SHA-256 over its content and its configuration
 * hash, and its counts must agree with each other and with its position. A file edited into other
 * valid JSON (or damaged in a way JSON survives) is CHECKPOINT_CORRUPT, never a result.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { Errors } from '../src/errors.js';
import type { ModelArtifact } from '../src/models/artifact.js';
import { EvalStats, type EvalStatsJSON } from '../src/stats/index.js';

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

/** The digest a checkpoint file carries: over its configuration hash and the rest of its content. */
function contentDigest(checkpoint: EvalCheckpoint): string {
  return createHash('sha256').update(checkpoint.config_hash).update('\n').update(JSON.stringify(checkpoint)).digest('hex');
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * What is wrong with a checkpoint's counts, in words (empty when they agree): every model and
 * attack saw every image, the images fit the batches and the records consumed, and the position
 * fits the configured limit.
 */
export function checkpointInconsistencies(c: EvalCheckpoint): string[] {
  const out: string[] = [];
  if (!isCount(c.consumed)) out.push(`consumed is ${JSON.stringify(c.consumed)}, not a count`);
  if (!isCount(c.batches)) out.push(`batches is ${JSON.stringify(c.batches)}, not a count`);
  if (typeof c.complete !== 'boolean') out.push('complete is not true or false');
  let summary;
  try {
    summary = EvalStats.fromJSON(c.stats).summary();
  } catch (e) {
    return [...out, `its statistics do not load: ${(e as Error).message}`];
  }
  const images = summary.images;
  if (out.length) return out;
  if (images > c.consumed) out.push(`${images} images from ${c.consumed} records consumed`);
  if (images > c.batches * c.config.batch) out.push(`${images} images in ${c.batches} batches of at most ${c.config.batch}`);
  if (c.batches > images) out.push(`${c.batches} batches of ${images} images (a batch has one at least)`);
  const limit = c.config.data.limit;
  if (limit !== null && c.consumed > limit) out.push(`${c.consumed} records consumed under a limit of ${limit}`);
  // Without skipping, every record consumed is an image evaluated.
  if (c.config.data.on_bad_record === 'fail' && c.consumed !== images) out.push(`${c.consumed} records consumed but ${images} images evaluated, and none may be skipped`);
  for (const [model, m] of Object.entries(summary.models)) {
    if (m.clean.n !== images) out.push(`${model}: clean accuracy over ${m.clean.n} images of ${images}`);
    for (const [attack, r] of Object.entries(m.attacks)) {
      if (r.n !== images) out.push(`${model} under ${attack}: ${r.n} images of ${images}`);
    }
  }
  const ids = c.config.models.map((m) => m.id).sort();
  if (images > 0 && JSON.stringify(Object.keys(summary.models).sort()) !== JSON.stringify(ids)) {
    out.push(`statistics for ${Object.keys(summary.models).join(', ')}, models ${ids.join(', ')}`);
  }
  return out;
}

/**
 * The checkpoint in `file`, or `undefined` when there is none. A file that is not a checkpoint, or
 * whose digest or counts do not hold, is CHECKPOINT_CORRUPT.
 */
export async function readCheckpoint(file: string): Promise<EvalCheckpoint | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw Errors.checkpointCorrupt(file, `cannot be read: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw Errors.checkpointCorrupt(file, `not JSON: ${(e as Error).message}`);
  }
  const c = parsed as (Partial<EvalCheckpoint> & { digest?: unknown }) | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    Array.isArray(c) ||
    c.version !== 1 ||
    typeof c.config_hash !== 'string' ||
    typeof c.config !== 'object' ||
    c.config === null ||
    typeof c.stats !== 'object' ||
    c.stats === null
  ) {
    throw Errors.checkpointCorrupt(file, 'not an advstream evaluation checkpoint');
  }
  const { digest, ...content } = c;
  const checkpoint = content as EvalCheckpoint;
  if (typeof digest !== 'string') throw Errors.checkpointCorrupt(file, 'it has no digest (written by an older advstream, or edited)');
  if (digest !== contentDigest(checkpoint)) throw Errors.checkpointCorrupt(file, 'its digest does not match its content (edited or damaged)');
  let hash: string;
  try {
    hash = configHash(checkpoint.config);
  } catch (e) {
    throw Errors.checkpointCorrupt(file, `its configuration cannot be hashed: ${(e as Error).message}`);
  }
  if (hash !== checkpoint.config_hash) throw Errors.checkpointCorrupt(file, 'its configuration does not match its configuration hash');
  let wrong: string[];
  try {
    wrong = checkpointInconsistencies(checkpoint);
  } catch (e) {
    wrong = [`its configuration is not one: ${(e as Error).message}`];
  }
  if (wrong.length) throw Errors.checkpointCorrupt(file, `its counts disagree: ${wrong.join('; ')}`);
  return checkpoint;
}

/**
 * Whether a checkpoint's position fits the source it is resumed on: a complete one consumed the
 * whole source (to the limit); an incomplete one no more than the source holds. `total` is the
 * records the source offers after offset and limit, `null` when unknown. Throws CHECKPOINT_CORRUPT.
 */
export function checkCheckpointPosition(file: string, checkpoint: EvalCheckpoint, total: number | null): void {
  if (total === null) return;
  if (checkpoint.consumed > total) throw Errors.checkpointCorrupt(file, `it consumed ${checkpoint.consumed} records of a source of ${total}`);
  if (checkpoint.complete && checkpoint.consumed !== total) {
    throw Errors.checkpointCorrupt(file, `it says the run is complete after ${checkpoint.consumed} of ${total} records`);
  }
}

/** Writes `checkpoint` to `file` atomically, with the digest {@link readCheckpoint} checks. */
export async function writeCheckpoint(file: string, checkpoint: EvalCheckpoint): Promise<void> {
  await writeJsonAtomic(file, { ...checkpoint, digest: contentDigest(checkpoint) });
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
