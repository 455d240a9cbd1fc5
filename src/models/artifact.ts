/**
 * Model artifacts: tfjs-format `model.json` plus weight files, and advstream's `manifest.json`.
 *
 * Loading is split in two so that workers never do I/O: {@link loadArtifact} (main thread) reads a
 * folder, a `zoo:NAME` or an http(s) URL into a plain {@link ModelArtifact} of bytes and JSON, which
 * crosses threads; {@link buildClassifier} (any thread) turns it into a {@link Classifier}.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { tf, type NamedTensorMap } from '../backend/index.js';
import { Errors } from '../errors.js';
import { ZOO_DIR } from '../paths.js';
import type { Classifier } from './classifier.js';
import { ONNX_LAYOUTS, readOnnxFile } from '../engine/onnx-file.js';
import { getFamily } from './registry.js';
import { userClassifier } from './user.js';

const weightSpec = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  dtype: z.enum(['float32', 'int32', 'bool']),
  quantization: z
    .object({ dtype: z.enum(['uint8', 'uint16', 'float16']), scale: z.number().optional(), min: z.number().optional() })
    .optional(),
});
const weightsManifest = z.array(z.object({ paths: z.array(z.string().min(1)).min(1), weights: z.array(weightSpec) })).min(1);

/** SHA-256 (hex) of the weight files concatenated in manifest order; when declared, loading checks it. */
const weightsSha256 = z.string().regex(/^[0-9a-f]{64}$/, 'weightsSha256 must be 64 lower-case hex digits').optional();
const advstreamModelJson = z.object({
  format: z.literal('advstream'),
  family: z.string(),
  config: z.record(z.string(), z.unknown()),
  weightsManifest,
  weightsSha256,
});
const userModelJson = z.object({
  format: z.string().optional(),
  modelTopology: z.unknown(),
  weightsManifest,
  weightsSha256,
});
/** An ONNX model: `weightData` holds the `.onnx` bytes; the rest is its resolved input spec. */
const onnxModelJson = z.object({
  format: z.literal('onnx'),
  input: z.string(),
  output: z.string(),
  layout: z.enum(ONNX_LAYOUTS),
  shape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
  batch: z.number().int().positive().nullable(),
  mean: z.array(z.number()),
  std: z.array(z.number()),
  blackBox: z.string().nullable(),
});
/** What a `model.json` may hold (an ONNX model has no model.json: its spec comes from the graph and the sidecar). */
const tfjsModelJson = z.union([advstreamModelJson, userModelJson]);
const modelJson = z.union([advstreamModelJson, onnxModelJson, userModelJson]);
export type ModelJson = z.infer<typeof modelJson>;

export const manifestSchema = z.object({
  name: z.string(),
  family: z.string(),
  summary: z.string(),
  config: z.record(z.string(), z.unknown()),
  inputEncoding: z.string(),
  training: z.object({
    command: z.string(),
    seed: z.number(),
    epochs: z.number(),
    batch: z.number(),
    trainImages: z.number(),
    wallTimeSeconds: z.number(),
    backend: z.string(),
  }),
  accuracy: z.object({ clean: z.number(), testImages: z.number(), source: z.string() }),
  /** Predicted classes of the first test images, for load-time checks. */
  samplePredictions: z.array(z.number().int()),
  parameters: z.number(),
  weightBytes: z.number(),
  commit: z.string(),
  notes: z.array(z.string()),
  targets: z.object({ clean: z.number(), met: z.boolean(), comment: z.string().optional() }).optional(),
});
export type ModelManifest = z.infer<typeof manifestSchema>;

/** A model as plain data: what the main thread reads and a worker builds from. */
export interface ModelArtifact {
  id: string;
  modelJson: ModelJson;
  /** All weight files concatenated in manifest order. */
  weightData: ArrayBuffer;
  manifest?: ModelManifest;
}


function parseJson<T>(text: string, schema: z.ZodType<T>, where: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw Errors.badModel(where, `not JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw Errors.badModel(where, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

function expectedBytes(manifest: z.infer<typeof weightsManifest>): number {
  let bytes = 0;
  for (const group of manifest) {
    for (const w of group.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const per = w.quantization ? (w.quantization.dtype === 'uint8' ? 1 : 2) : 4;
      bytes += count * per;
    }
  }
  return bytes;
}

function concat(chunks: Uint8Array[]): ArrayBuffer {
  const total = chunks.reduce((a, c) => a + c.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out.buffer;
}

interface Reader {
  where: string;
  /** The file's bytes, `undefined` when it does not exist; more than `maxBytes` is an error. */
  read(relative: string, maxBytes: number): Promise<Uint8Array | undefined>;
}

/** How model files are fetched from http(s) URLs. */
export interface LoadOptions {
  /** Milliseconds one file may take, from request to last byte; default 60 000 (`ADVSTREAM_MODEL_TIMEOUT_MS`). */
  timeoutMs?: number;
  /** Follow redirects to another origin (and use what they serve); default false (`ADVSTREAM_MODEL_CROSS_ORIGIN=1`). */
  allowCrossOrigin?: boolean;
}

/** The largest model.json (or ONNX sidecar) read; the weights' limit comes from their manifest. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
const MAX_REDIRECTS = 5;

function folderReader(dir: string): Reader {
  const root = path.resolve(dir);
  return {
    where: root,
    async read(relative, maxBytes) {
      const file = path.resolve(root, relative);
      if (file !== root && !file.startsWith(root + path.sep)) {
        throw Errors.badModel(root, `weight path '${relative}' escapes the model folder`);
      }
      let size: number;
      try {
        size = (await stat(file)).size;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      if (size > maxBytes) throw Errors.badModel(file, `${size} bytes, more than the ${maxBytes} it may have`);
      return new Uint8Array(await readFile(file));
    },
  };
}

/**
 * The body of `res`, at most `maxBytes` of it: a longer one stops being read as soon as it is, and
 * `stop` ends the transfer (cancelling the stream could wait on a server that never stops sending).
 */
async function cappedBody(res: Response, maxBytes: number, where: string, stop: AbortController): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    stop.abort();
    throw Errors.badModel(where, `the server sends ${declared} bytes, more than the ${maxBytes} expected`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  for (;;) {
    const next = reader ? await reader.read() : { done: true as const };
    if (next.done) break;
    size += next.value.byteLength;
    if (size > maxBytes) {
      stop.abort();
      throw Errors.badModel(where, `the server sends more than the ${maxBytes} bytes expected`);
    }
    chunks.push(next.value);
  }
  return new Uint8Array(concat(chunks));
}

function urlReader(url: string, options: LoadOptions): Reader {
  const base = new URL(url.endsWith('/') ? url : url.replace(/[^/]*$/, ''));
  const timeoutMs = options.timeoutMs ?? (Number(process.env.ADVSTREAM_MODEL_TIMEOUT_MS) || 60_000);
  const crossOrigin = options.allowCrossOrigin ?? process.env.ADVSTREAM_MODEL_CROSS_ORIGIN === '1';
  return {
    where: base.href,
    async read(relative, maxBytes) {
      const target = new URL(relative, base);
      if (target.origin !== base.origin || !target.pathname.startsWith(base.pathname)) {
        throw Errors.badModel(base.href, `weight path '${relative}' escapes the model folder`);
      }
      const late = AbortSignal.timeout(timeoutMs);
      const stop = new AbortController();
      const signal = AbortSignal.any([late, stop.signal]);
      try {
        let at = target;
        for (let hops = 0; ; hops++) {
          const res = await fetch(at, { redirect: 'manual', signal });
          const location = res.headers.get('location');
          if (res.status >= 300 && res.status < 400 && location !== null) {
            const next = new URL(location, at);
            if (next.origin !== base.origin && !crossOrigin) {
              throw Errors.badModel(at.href, `redirected to another origin (${next.origin}); set ADVSTREAM_MODEL_CROSS_ORIGIN=1 to allow it`);
            }
            if (hops >= MAX_REDIRECTS) throw Errors.badModel(target.href, `more than ${MAX_REDIRECTS} redirects`);
            at = next;
            continue;
          }
          if (res.status === 404) return undefined;
          if (!res.ok) throw Errors.badModel(at.href, `HTTP ${res.status}`);
          return await cappedBody(res, maxBytes, at.href, stop);
        }
      } catch (e) {
        if (late.aborted) throw Errors.modelUnreachable(target.href, `no complete answer within ${timeoutMs} ms`);
        if (e instanceof TypeError) throw Errors.modelUnreachable(target.href, (e.cause as Error | undefined)?.message ?? e.message);
        throw e;
      } finally {
        // Whatever was not read (a redirect's body, an error page, the rest of an oversized file) is not wanted.
        stop.abort();
      }
    },
  };
}

async function readerFor(ref: string, options: LoadOptions): Promise<{ reader: Reader; modelFile: string }> {
  if (ref.startsWith('zoo:')) {
    const name = ref.slice(4);
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw Errors.badModel(ref, 'zoo names are lower-case letters, digits, dots and dashes');
    return { reader: folderReader(path.join(ZOO_DIR, name)), modelFile: 'model.json' };
  }
  if (/^https?:\/\//.test(ref)) {
    const modelFile = ref.endsWith('.json') ? ref.slice(ref.lastIndexOf('/') + 1) : 'model.json';
    return { reader: urlReader(ref, options), modelFile };
  }
  let dir = ref;
  let modelFile = 'model.json';
  try {
    if ((await stat(ref)).isFile()) {
      dir = path.dirname(ref);
      modelFile = path.basename(ref);
    }
  } catch {
    throw Errors.badModel(ref, 'no such model folder or file (expected a folder, zoo:NAME or an http(s) URL)');
  }
  return { reader: folderReader(dir), modelFile };
}

/**
 * Reads a model into plain data, validating everything tfjs would otherwise trip over deep inside:
 * malformed JSON, weight paths that escape the folder, missing files, weights of the wrong size or
 * (when model.json declares `weightsSha256`) the wrong content, an unknown family. No file is read
 * past the size its manifest declares; a URL must answer within the timeout and may redirect
 * within its origin only (see {@link LoadOptions}).
 *
 * @example
 *   const artifact = await loadArtifact('zoo:mlp-relu');
 */
export async function loadArtifact(ref: string, options: LoadOptions = {}): Promise<ModelArtifact> {
  if (ref.toLowerCase().endsWith('.onnx') && !/^https?:\/\//.test(ref)) {
    const { bytes, spec } = await readOnnxFile(ref);
    return { id: ref, modelJson: spec, weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer };
  }
  const { reader, modelFile } = await readerFor(ref, options);
  const jsonBytes = await reader.read(modelFile, MAX_JSON_BYTES);
  if (!jsonBytes) throw Errors.badModel(reader.where, `${modelFile} not found`);
  const json = parseJson(new TextDecoder().decode(jsonBytes), tfjsModelJson, `${reader.where}/${modelFile}`);
  if ('family' in json && json.format === 'advstream') {
    try {
      getFamily(json.family);
    } catch (e) {
      throw Errors.badModel(`${reader.where}/${modelFile}`, (e as Error).message);
    }
  }
  const expected = expectedBytes(json.weightsManifest);
  const chunks: Uint8Array[] = [];
  let read = 0;
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      // A file may hold at most what the manifest's weights still need: more is refused as it streams in.
      const bytes = await reader.read(p, expected - read);
      if (!bytes) throw Errors.badModel(reader.where, `weight file '${p}' not found`);
      chunks.push(bytes);
      read += bytes.byteLength;
    }
  }
  const weightData = concat(chunks);
  if (weightData.byteLength !== expected) {
    throw Errors.badModel(reader.where, `weight files hold ${weightData.byteLength} bytes but the manifest's weights need ${expected}`);
  }
  if (json.weightsSha256 !== undefined) {
    const got = createHash('sha256').update(new Uint8Array(weightData)).digest('hex');
    if (got !== json.weightsSha256) throw Errors.badModel(reader.where, `the weights' SHA-256 is ${got}, not the ${json.weightsSha256} model.json declares`);
  }
  const manifestBytes = await reader.read('manifest.json', MAX_JSON_BYTES);
  const manifest = manifestBytes
    ? parseJson(new TextDecoder().decode(manifestBytes), manifestSchema, `${reader.where}/manifest.json`)
    : undefined;
  return { id: ref, modelJson: json, weightData, ...(manifest ? { manifest } : {}) };
}

/** Why a model offers no input gradients (an ONNX model whose graph has an op without a gradient rule), or undefined. */
export function blackBoxReason(artifact: ModelArtifact): string | undefined {
  const json = artifact.modelJson;
  return 'blackBox' in json && json.blackBox !== null ? json.blackBox : undefined;
}

/** Named tensors from an artifact's weight bytes. */
export function decodeWeights(artifact: ModelArtifact): NamedTensorMap {
  const json = artifact.modelJson;
  if (!('weightsManifest' in json)) throw Errors.badModel(artifact.id, 'an ONNX model has no tfjs weights');
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  return tf.io.decodeWeights(artifact.weightData, specs as tf.io.WeightsManifestEntry[]);
}

/** Builds a classifier from plain data: no I/O, safe in worker threads. */
export async function buildClassifier(artifact: ModelArtifact): Promise<Classifier> {
  const json = artifact.modelJson;
  if (json.format === 'onnx') {
    throw Errors.badModel(artifact.id, 'an ONNX model runs on ONNX Runtime only (eval and audit with --engine auto or onnx), not as a tfjs classifier');
  }
  if ('family' in json && json.format === 'advstream') {
    const family = getFamily(json.family);
    const weights = decodeWeights(artifact);
    return family.build(artifact.id, json.config, weights);
  }
  return userClassifier(artifact);
}

/** Loads and builds in one call, for main-thread use. */
export async function loadClassifier(ref: string): Promise<Classifier> {
  return buildClassifier(await loadArtifact(ref));
}

export interface SaveOptions {
  family: string;
  config: Record<string, unknown>;
  weights: NamedTensorMap;
  manifest?: ModelManifest;
}

/** Writes `model.json`, `weights.bin` and, when given, `manifest.json` into `dir`. */
export async function saveArtifact(dir: string, o: SaveOptions): Promise<number> {
  await mkdir(dir, { recursive: true });
  const { data, specs } = await tf.io.encodeWeights(o.weights);
  const json = {
    format: 'advstream' as const,
    generatedBy: 'advstream',
    family: o.family,
    config: o.config,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  };
  await writeFile(path.join(dir, 'weights.bin'), new Uint8Array(data));
  await writeFile(path.join(dir, 'model.json'), `${JSON.stringify(json, null, 2)}\n`);
  if (o.manifest) await writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify(o.manifest, null, 2)}\n`);
  return data.byteLength;
}
