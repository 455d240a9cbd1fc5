/**
 * Property-based fuzzing of every decoder and parser: IDX files, PNGs, NDJSON lines, attack specs,
 * model folders and checkpoints. Each generated hostile input must end in a result or an
 * AdvstreamError of an expected code, within CASE_MS and without the process growing past
 * RSS_BOUND_MB. Short here; `npm run fuzz` runs the same properties for longer.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attackNames, parseAttackSpec } from '../../src/attacks/index.js';
import { initBackend } from '../../src/backend/index.js';
import { decodePng, MAX_PNG_PIXELS } from '../../src/data/png-decode.js';
import { openSource } from '../../src/data/index.js';
import { loadArtifact, saveArtifact } from '../../src/models/artifact.js';
import { getFamily } from '../../src/models/registry.js';
import { EvalStats } from '../../src/stats/index.js';
import { configHash, readCheckpoint, writeCheckpoint, type CheckpointConfig, type EvalCheckpoint } from '../../pipelines/checkpoint.js';
import { chunk, ihdr, twoHeaderPng } from '../data/hostile-png.js';
import { pngBytes } from '../data/helpers.js';
import { jsonEdits, outcome, params, withinMemory } from './fuzz.js';

let dir: string;
let files = 0;
const scratch = (name: string) => path.join(dir, `${files++}-${name}`);
const drain = async (source: AsyncIterable<unknown>, most = 64) => {
  let n = 0;
  for await (const _ of source) if (++n >= most) break;
};

beforeAll(async () => {
  dir = path.join(tmpdir(), `advstream-fuzz-${process.pid}`);
  await mkdir(dir, { recursive: true });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('fuzz: data sources', () => {
  it('IDX headers and bodies: records or BAD_SOURCE / BAD_RECORD', async () => {
    const dims = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(2 ** 31, 2 ** 32 - 1, 65536, 1e6));
    const idx = fc.record({
      type: fc.oneof(fc.constantFrom(0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e), fc.integer({ min: 0, max: 255 })),
      dims: fc.array(dims, { minLength: 0, maxLength: 5 }),
      magicZero: fc.boolean(),
      body: fc.uint8Array({ maxLength: 2048 }),
      gzip: fc.boolean(),
      labels: fc.option(fc.uint8Array({ maxLength: 64 })),
    });
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(idx, async (c) => {
          const head = Buffer.alloc(4 + 4 * c.dims.length);
          head[0] = c.magicZero ? 0 : 1;
          head[2] = c.type;
          head[3] = c.dims.length;
          c.dims.forEach((d, i) => head.writeUInt32BE(d >>> 0, 4 + 4 * i));
          const raw = Buffer.concat([head, c.body]);
          const images = scratch('images.idx');
          await writeFile(images, c.gzip ? gzipSync(raw) : raw);
          let uri = `idx:${images}`;
          if (c.labels) {
            const labels = scratch('labels.idx');
            const lh = Buffer.alloc(8);
            lh.writeUInt32BE(0x801, 0);
            lh.writeUInt32BE(c.labels.length, 4);
            await writeFile(labels, Buffer.concat([lh, c.labels]));
            uri += `,${labels}`;
          }
          await outcome(drain(openSource(uri, { limit: 32 })), ['BAD_SOURCE', 'BAD_RECORD']);
        }),
        params(60),
      ),
    );
  });

  const pngCase = fc.oneof(
    // A valid PNG with bytes flipped, cut or appended.
    fc.record({
      w: fc.integer({ min: 1, max: 24 }),
      h: fc.integer({ min: 1, max: 24 }),
      color: fc.boolean(),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      cut: fc.option(fc.nat()),
    }).map(({ w, h, color, flips, cut }) => {
      const b = Buffer.from(pngBytes(w, h, color ? { color: true } : {}));
      for (const [at, v] of flips) b[at % b.length] = v;
      return cut === null ? b : b.subarray(0, cut % (b.length + 1));
    }),
    // Hand-built chunk lists: several headers, huge sizes, chunks in odd places.
    fc.record({
      first: fc.tuple(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 70000 })),
      second: fc.option(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }))),
      extra: fc.array(fc.tuple(fc.constantFrom('IHDR', 'IDAT', 'IEND', 'PLTE', 'tEXt', 'zzzz'), fc.uint8Array({ maxLength: 32 })), { maxLength: 3 }),
      colour: fc.constantFrom(0, 2, 3, 4, 6, 1, 7),
    }).map(({ first, second, extra, colour }) => {
      const base = second ? twoHeaderPng([Math.max(1, first[0] % 64), Math.max(1, first[1] % 64)], second) : twoHeaderPng([first[0] % 48, first[1] % 48]);
      const withColour = Buffer.concat([base.subarray(0, 8), ihdr(first[0], first[1], colour), base.subarray(33)]);
      return Buffer.concat([withColour.subarray(0, withColour.length - 12), ...extra.map(([t, d]) => chunk(t, Buffer.from(d))), withColour.subarray(withColour.length - 12)]);
    }),
  );

  it('PNG bytes: pixels within the limit, or an Error saying why', async () => {
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(pngCase, async (bytes) => {
          try {
            const { shape, pixels } = decodePng(bytes);
            expect(shape[0] * shape[1]).toBeLessThanOrEqual(MAX_PNG_PIXELS);
            expect(pixels.length).toBe(shape[0] * shape[1] * shape[2]);
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
            expect((e as Error).message.length).toBeGreaterThan(0);
          }
        }),
        params(150),
      ),
    );
  });

  const lineValue = fc.oneof(
    fc.jsonValue({ maxDepth: 4 }),
    fc.record(
      {
        id: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.double()),
        label: fc.oneof(fc.integer(), fc.double(), fc.string()),
        pixels: fc.oneof(fc.array(fc.oneof(fc.double(), fc.constant(null), fc.string()), { maxLength: 40 }), fc.string(), fc.constant(784).map((n) => Array(n).fill(0.5))),
        scale: fc.oneof(fc.constantFrom(1, 255), fc.double()),
        shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 4 }), fc.constant([2, 2, 1]), fc.jsonValue()),
        png: fc.oneof(fc.base64String({ maxLength: 200 }), pngCase.map((b) => b.toString('base64'))),
      },
      { requiredKeys: [] },
    ),
  );
  const line = fc.oneof(lineValue.map((v) => JSON.stringify(v) ?? 'null'), fc.string({ maxLength: 200 }), fc.constantFrom('', '\r', '{', '[[[[', '\u0000'));

  it('NDJSON lines: records or BAD_RECORD, and skip reads past every bad one', async () => {
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(fc.array(line, { maxLength: 12 }), fc.boolean(), async (lines, skip) => {
          const stdin = Readable.from([Buffer.from(`${lines.map((l) => l.replace(/\n/g, ' ')).join('\n')}\n`)]);
          const source = openSource('ndjson:-', { stdin, ...(skip ? { onBadRecord: 'skip' as const } : {}) });
          const got = await outcome(drain(source), skip ? [] : ['BAD_RECORD']);
          if (skip) expect(got).toBe('ok');
        }),
        params(150),
      ),
    );
  });
});

describe('fuzz: specs, models and checkpoints', () => {
  it('attack specs: an attack or BAD_SPEC', async () => {
    const names = attackNames();
    const key = fc.oneof(fc.constantFrom('eps', 'steps', 'step', 'norm', 'loss', 'restarts', 'random', 'attack', 'queries', 'c', 'p'), fc.string({ maxLength: 6 }));
    const value = fc.oneof(fc.double().map(String), fc.integer().map(String), fc.constantFrom('8/255', '1/0', '0/0', 'linf', 'l2', 'ce', 'dlr', 'true', '', 'pgd', 'fgsm', '1e400', '-0'), fc.string({ maxLength: 6 }));
    const spec = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.tuple(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 8 })), fc.array(fc.tuple(key, value), { maxLength: 4 }), fc.constantFrom(':', '', '::')).map(
        ([name, kv, sep]) => `${name}${sep}${kv.map(([k, v]) => `${k}=${v}`).join(',')}`,
      ),
    );
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(spec, async (s) => {
          const got = await outcome(() => parseAttackSpec(s), ['BAD_SPEC']);
          if (got === 'ok') expect(typeof parseAttackSpec(s).id).toBe('string');
        }),
        params(300),
      ),
    );
  });

  it('model folders: an artifact or BAD_MODEL', async () => {
    await initBackend({ backend: 'wasm' });
    const good = scratch('model');
    const f = getFamily('mlp');
    const config = f.configure({ hidden: [4] });
    await saveArtifact(good, { family: 'mlp', config, weights: f.init(config, 1) });
    const modelJson = JSON.parse(await readFile(path.join(good, 'model.json'), 'utf8')) as unknown;
    const weights = await readFile(path.join(good, 'weights.bin'));
    const manifest = fc.option(fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 60 })));
    const weightsCase = fc.oneof(fc.constant(weights), fc.uint8Array({ maxLength: weights.length + 16 }).map((u) => Buffer.from(u)));
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(fc.oneof(jsonEdits(modelJson), fc.jsonValue({ maxDepth: 3 })), manifest, weightsCase, async (json, man, w) => {
          const folder = scratch('m');
          await mkdir(folder);
          await writeFile(path.join(folder, 'model.json'), JSON.stringify(json) ?? 'null');
          await writeFile(path.join(folder, 'weights.bin'), w);
          if (man !== null) await writeFile(path.join(folder, 'manifest.json'), man);
          await outcome(loadArtifact(folder), ['BAD_MODEL']);
        }),
        params(120),
      ),
    );
  });

  it('checkpoints: a checkpoint whose counts hold, or CHECKPOINT_CORRUPT', async () => {
    const config: CheckpointConfig = {
      data: { uri: 'mnist:test', offset: 0, limit: 64, on_bad_record: 'fail' },
      models: [{ id: 'm', sha256: 'ab' }],
      attacks: ['fgsm:eps=0.1'],
      seed: 1,
      batch: 16,
      backend: 'wasm',
      engine: 'tfjs',
      worst_case: [],
      curve_grids: {},
    };
    const checkpoint: EvalCheckpoint = {
      version: 1,
      config_hash: configHash(config),
      config,
      consumed: 0,
      batches: 0,
      complete: false,
      backend: { backend: 'wasm', simd: true },
      stats: new EvalStats().toJSON(),
      annotations: {},
      saved_at: new Date(0).toISOString(),
    };
    const good = scratch('ckpt.json');
    await writeCheckpoint(good, checkpoint);
    const written = JSON.parse(await readFile(good, 'utf8')) as Record<string, unknown>;
    const { digest: _digest, ...content } = written;
    const texts = fc.oneof(
      // Edited on disk, digest and all.
      jsonEdits(written).map((v) => JSON.stringify(v) ?? 'null'),
      fc.string({ maxLength: 80 }),
      fc.nat({ max: 400 }).map((n) => JSON.stringify(written).slice(0, n)),
    );
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(texts, async (text) => {
          const file = scratch('c.json');
          await writeFile(file, text);
          const got = await outcome(readCheckpoint(file), ['CHECKPOINT_CORRUPT']);
          // Only an edit that changed nothing (or only the digest's neighbours JSON ignores) reads back.
          if (got === 'ok') expect(JSON.parse(text)).toMatchObject({ ...content, digest: expect.any(String) });
        }),
        params(200),
      ),
    );
    // Edits whose digest was recomputed: only the counts (and the config hash) can tell.
    await withinMemory(() =>
      fc.assert(
        fc.asyncProperty(jsonEdits(content), async (edited) => {
          const file = scratch('forged.json');
          const c = edited as EvalCheckpoint;
          if (typeof c !== 'object' || c === null || Array.isArray(c)) return;
          try {
            await writeCheckpoint(file, c);
          } catch {
            // Not writable as a checkpoint (a BigInt-free JSON always is; a cyclic one cannot be built here).
            return;
          }
          const got = await outcome(readCheckpoint(file), ['CHECKPOINT_CORRUPT']);
          if (got === 'ok') {
            // What reads back must hold together, checked here again without the code under test.
            const back = (await readCheckpoint(file))!;
            const summary = EvalStats.fromJSON(back.stats).summary();
            expect(summary.images).toBeLessThanOrEqual(back.consumed);
            expect(back.batches).toBeLessThanOrEqual(summary.images);
            if (back.config.data.on_bad_record === 'fail') expect(back.consumed).toBe(summary.images);
            for (const m of Object.values(summary.models)) expect(m.clean.n).toBe(summary.images);
          }
        }),
        params(200),
      ),
    );
  });
});
