/**
 * Checkpoints edited into other valid JSON: each edit below exited 0 with wrong results on the old
 * code (a one-digit edit changed a clean accuracy; `consumed + 64` lost images; `complete: true`
 * midway gave a short "final"; `stats.images = 999` disagreed with n). Now each is CHECKPOINT_CORRUPT.
 */
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { filter } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAdvstreamError } from '../../src/errors.js';
import { checkCheckpointPosition, readCheckpoint, type EvalCheckpoint } from '../../pipelines/checkpoint.js';
import { evaluate, type EvaluateOptions } from '../../pipelines/index.js';
import { allEvents, finalOf, scratchDir, testModels } from './helpers.js';

const IMAGES = 48;
const BATCH = 16;
let dir: string;
let midway: string;
let finished: string;
let options: EvaluateOptions;
const source = () => ({ uri: 'mnist:test', limit: IMAGES });

beforeAll(async () => {
  dir = await scratchDir('checkpoint-corrupt');
  options = { models: await testModels(), attacks: ['fgsm:eps=0.1'], workers: 1, batch: BATCH, seed: 3, backend: 'wasm', engine: 'tfjs', maxInFlight: 1 };
  const file = path.join(dir, 'run.ckpt.json');
  const stop = new AbortController();
  await allEvents(
    evaluate(source(), { ...options, checkpoint: { file }, stop: stop.signal }).pipe(
      filter((e) => {
        if (e.type === 'batch' && e.index === 0) stop.abort();
        return true;
      }),
    ),
  );
  midway = await readFile(file, 'utf8');
  await allEvents(evaluate(source(), { ...options, checkpoint: { file } }));
  finished = await readFile(file, 'utf8');
}, 120_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

type Json = Record<string, unknown> & { stats: { images: number; clean: Record<string, { k: number; n: number }> } };

/** `text` edited by `edit`; with `forge`, its digest recomputed as the writer does, so only the counts can tell. */
async function edited(name: string, text: string, edit: (c: Json) => void, forge = false): Promise<string> {
  const c = JSON.parse(text) as Json;
  edit(c);
  if (forge) {
    delete c.digest;
    c.digest = createHash('sha256').update(String(c.config_hash)).update('\n').update(JSON.stringify(c)).digest('hex');
  }
  const file = path.join(dir, name);
  await writeFile(file, `${JSON.stringify(c)}\n`);
  return file;
}

async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  return isAdvstreamError(e) ? `${e.code}: ${e.message}` : `no coded error: ${String(e)}`;
}

describe('self-verifying checkpoints', () => {
  it('round-trips what the evaluation wrote', async () => {
    const mid = await readCheckpoint(await edited('mid.json', midway, () => {}));
    expect(mid).toMatchObject({ complete: false, consumed: BATCH, batches: 1 });
    expect((await readCheckpoint(await edited('end.json', finished, () => {})))?.complete).toBe(true);
  });

  it.each([
    ['a one-digit edit of a clean accuracy', () => finished, (c: Json) => void (Object.values(c.stats.clean)[0]!.k -= 1)],
    ['consumed + 64', () => midway, (c: Json) => void ((c.consumed as number) += 64)],
    ['complete: true midway', () => midway, (c: Json) => void (c.complete = true)],
    ['stats.images = 999', () => finished, (c: Json) => void (c.stats.images = 999)],
  ])('refuses %s: its digest does not match', async (_label, text, edit) => {
    const file = await edited('edit.json', text(), edit);
    expect(await failure(readCheckpoint(file))).toMatch(/^CHECKPOINT_CORRUPT: checkpoint .* is corrupt: its digest does not match its content/);
  });

  it('never answers from an edited finished checkpoint', async () => {
    const file = await edited('answer.json', finished, (c) => void (Object.values(c.stats.clean)[0]!.k -= 1));
    expect(await failure(allEvents(evaluate(source(), { ...options, checkpoint: { file } })))).toMatch(/^CHECKPOINT_CORRUPT/);
  });

  it('refuses edits whose digest was recomputed when the counts disagree', async () => {
    const images = await edited('images.json', finished, (c) => void (c.stats.images = 999), true);
    expect(await failure(readCheckpoint(images))).toMatch(/its counts disagree: 999 images from 48 records consumed; .*clean accuracy over 48 images of 999/);
    const consumed = await edited('consumed.json', midway, (c) => void ((c.consumed as number) += 64), true);
    expect(await failure(readCheckpoint(consumed))).toMatch(/its counts disagree: 80 records consumed under a limit of 48; 80 records consumed but 16 images evaluated/);
    const batches = await edited('batches.json', midway, (c) => void (c.batches = 0), true);
    expect(await failure(readCheckpoint(batches))).toMatch(/16 images in 0 batches of at most 16/);
    const hash = await edited('hash.json', midway, (c) => void ((c.config as { seed: number }).seed = 4), true);
    expect(await failure(readCheckpoint(hash))).toMatch(/its configuration does not match its configuration hash/);
  });

  it('refuses a position the source contradicts', async () => {
    const c = JSON.parse(midway) as EvalCheckpoint;
    expect(() => checkCheckpointPosition('f', { ...c, complete: true }, IMAGES)).toThrow(/complete after 16 of 48 records/);
    expect(() => checkCheckpointPosition('f', { ...c, consumed: 64 }, IMAGES)).toThrow(/consumed 64 records of a source of 48/);
    expect(() => checkCheckpointPosition('f', c, IMAGES)).not.toThrow();
  });

  it('refuses a file without a digest, one that is not JSON and one that is no checkpoint', async () => {
    const old = await edited('old.json', midway, (c) => void delete c.digest);
    expect(await failure(readCheckpoint(old))).toMatch(/it has no digest/);
    const file = path.join(dir, 'text.json');
    await writeFile(file, '{"version": 1,');
    expect(await failure(readCheckpoint(file))).toMatch(/^CHECKPOINT_CORRUPT: .*not JSON/);
    await writeFile(file, '[1, 2]');
    expect(await failure(readCheckpoint(file))).toMatch(/^CHECKPOINT_CORRUPT: .*not an advstream evaluation checkpoint/);
  });
});
