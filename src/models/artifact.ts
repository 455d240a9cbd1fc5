/**
 * Model artifacts: tfjs-format `model.json` plus weight files, and advstream's `manifest.json`.
 *
 * Loading is split in two so that workers never do I/O: {@link loadArtifact} (main thread) reads a
 * folder, a `zoo:NAME` or an http(s) URL into a plain {@link ModelArtifact} of bytes and JSON, which
 * crosses threads; {@link buildClassifier} (any thread) turns it into a {@link Classifier}.
 */
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

const advstreamModelJson = z.object({
  format: z.literal('advstream'),
  family: z.string(),
  config: z.record(z.string(), z.unknown()),
  weightsManifest,
});
const userModelJson = z.object({
  format: z.string().optional(),
  modelTopology: z.unknown(),
  weightsManifest,
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
  read(relative: string): Promise<Uint8Array | undefined>;
}

function folderReader(dir: string): Reader {
  const root = path.resolve(dir);
  return {
    where: root,
    async read(relative) {
      const file = path.resolve(root, relative);
      if (file !== root && !file.startsWith(root + path.sep)) {
        throw Errors.badModel(root, `weight path '${relative}' escapes the model folder`);
      }
      try {
        return new Uint8Array(await readFile(file));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
  };
}

function urlReader(url: string): Reader {
  const base = new URL(url.endsWith('/') ? url : url.replace(/[^/]*$/, ''));
  return {
    where: base.href,
    async read(relative) {
      const target = new URL(relative, base);
      if (target.origin !== base.origin || !target.pathname.startsWith(base.pathname)) {
        throw Errors.badModel(base.href, `weight path '${relative}' escapes the model folder`);
      }
      const res = await fetch(target);
      if (res.status === 404) return undefined;
      if (!res.ok) throw Errors.badModel(target.href, `HTTP ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

async function readerFor(ref: string): Promise<{ reader: Reader; modelFile: string }> {
  if (ref.startsWith('zoo:')) {
    const name = ref.slice(4);
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw Errors.badModel(ref, 'zoo names are lower-case letters, digits, dots and dashes');
    return { reader: folderReader(path.join(ZOO_DIR, name)), modelFile: 'model.json' };
  }
  if (/^https?:\/\//.test(ref)) {
    const modelFile = ref.endsWith('.json') ? ref.slice(ref.lastIndexOf('/') + 1) : 'model.json';
    return { reader: urlReader(ref), modelFile };
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
 * malformed JSON, weight paths that escape the folder, missing files, weights of the wrong size.
 *
 * @example
 *   const artifact = await loadArtifact('zoo:mlp-relu');
 */
export async function loadArtifact(ref: string): Promise<ModelArtifact> {
  if (ref.toLowerCase().endsWith('.onnx') && !/^https?:\/\//.test(ref)) {
    const { bytes, spec } = await readOnnxFile(ref);
    return { id: ref, modelJson: spec, weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer };
  }
  const { reader, modelFile } = await readerFor(ref);
  const jsonBytes = await reader.read(modelFile);
  if (!jsonBytes) throw Errors.badModel(reader.where, `${modelFile} not found`);
  const json = parseJson(new TextDecoder().decode(jsonBytes), tfjsModelJson, `${reader.where}/${modelFile}`);
  const chunks: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      const bytes = await reader.read(p);
      if (!bytes) throw Errors.badModel(reader.where, `weight file '${p}' not found`);
      chunks.push(bytes);
    }
  }
  const weightData = concat(chunks);
  const expected = expectedBytes(json.weightsManifest);
  if (weightData.byteLength !== expected) {
    throw Errors.badModel(reader.where, `weight files hold ${weightData.byteLength} bytes but the manifest's weights need ${expected}`);
  }
  const manifestBytes = await reader.read('manifest.json');
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
