/**
 * Which engine computes each model, and the runner that does: `--engine auto|tfjs|onnx`.
 *
 * - `tfjs`: every model on the tfjs backend (ONNX files cannot run there: an error).
 * - `onnx`: every model on ONNX Runtime; a family without an export is an error, and an objective
 *   without a native program (a batch-coupled loss) is refused when an attack asks for it.
 * - `auto` (default): ONNX Runtime where it starts, for ONNX files and for the families it has
 *   programs for, with tfjs behind it for any objective it has no program for; tfjs otherwise.
 */
import { decodeWeights, buildClassifier, type ModelArtifact } from '../models/artifact.js';
import { tfjsRunner, withCapabilities, type ModelRunner } from '../models/runner.js';
import { Errors, isAdvstreamError } from '../errors.js';
import { EXPORTABLE_FAMILIES, exportFamily, type NativeGraphs, type PlainWeights } from './export.js';
import type { OnnxInputSpec } from './onnx-file.js';
import { FamilyRunner } from './native.js';
import { userGraphs } from './user-graphs.js';
import { selectProvider, type ProviderInfo } from './ort.js';

export const ENGINE_CHOICES = ['auto', 'tfjs', 'onnx'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export function parseEngineChoice(value: string): EngineChoice {
  if (!(ENGINE_CHOICES as readonly string[]).includes(value)) {
    throw Errors.badArgument(`unknown engine '${value}'; engines: ${ENGINE_CHOICES.join(', ')}`);
  }
  return value as EngineChoice;
}

/**
 * The weights of a zoo artifact as plain arrays, read straight from the bytes (no tfjs backend
 * needed). Quantized or non-float weights are decoded by tfjs.
 */
export function plainWeights(artifact: ModelArtifact): PlainWeights {
  const json = artifact.modelJson;
  if (!('weightsManifest' in json)) throw Errors.badModel(artifact.id, 'an ONNX model has no tfjs weights');
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  if (specs.some((w) => w.dtype !== 'float32' || w.quantization)) {
    const out: PlainWeights = {};
    for (const [name, t] of Object.entries(decodeWeights(artifact))) {
      out[name] = { shape: [...t.shape], data: Float32Array.from(t.dataSync()) };
      t.dispose();
    }
    return out;
  }
  const out: PlainWeights = {};
  let at = 0;
  for (const w of specs) {
    const count = w.shape.reduce((a, b) => a * b, 1);
    out[w.name] = { shape: [...w.shape], data: new Float32Array(artifact.weightData.slice(at, at + count * 4)) };
    at += count * 4;
  }
  return out;
}

/** The ONNX programs of a zoo artifact, or undefined for a family without an export. */
export async function nativeGraphsOf(artifact: ModelArtifact): Promise<NativeGraphs | undefined> {
  const json = artifact.modelJson;
  if (!('family' in json) || json.format !== 'advstream' || !EXPORTABLE_FAMILIES.includes(json.family)) return undefined;
  return exportFamily(json.family, json.config, plainWeights(artifact), artifact.id);
}

async function provider(choice: EngineChoice): Promise<ProviderInfo | undefined> {
  if (choice === 'tfjs') return undefined;
  try {
    return await selectProvider();
  } catch (e) {
    // auto falls back to tfjs when ONNX Runtime cannot start; a forced onnx says why it cannot.
    if (choice === 'auto' && isAdvstreamError(e)) return undefined;
    throw e;
  }
}

function isOnnx(artifact: ModelArtifact): boolean {
  return artifact.modelJson.format === 'onnx';
}

/**
 * The runner of one model under an engine choice. Pure computation on plain data: safe in workers.
 *
 * @example
 *   const runner = await buildRunner(await loadArtifact('zoo:mlp-relu'), 'auto');
 *   runner.engine; // 'onnx-cpu' where ONNX Runtime starts
 */
export async function buildRunner(artifact: ModelArtifact, choice: EngineChoice): Promise<ModelRunner> {
  const ort = await provider(choice);
  if (isOnnx(artifact)) {
    if (!ort) {
      throw Errors.badModel(
        artifact.id,
        choice === 'tfjs' ? 'an ONNX model runs on the onnx engine only; use --engine auto or onnx' : 'ONNX Runtime does not start here',
      );
    }
    const spec = artifact.modelJson as OnnxInputSpec;
    const graphs = await userGraphs(new Uint8Array(artifact.weightData), spec, artifact.id);
    return FamilyRunner.create({ id: artifact.id, inputShape: spec.shape, graphs, provider: ort.provider });
  }
  if (!ort) return tfjsRunner(await buildClassifier(artifact));
  let graphs: Awaited<ReturnType<typeof nativeGraphsOf>>;
  try {
    graphs = await nativeGraphsOf(artifact);
  } catch (e) {
    // auto falls back to tfjs when this model's graphs do not load (its differentiation probes them).
    if (choice === 'auto') return tfjsRunner(await buildClassifier(artifact));
    throw e;
  }
  if (!graphs) {
    if (choice === 'onnx') {
      const json = artifact.modelJson;
      const family = 'family' in json ? json.family : 'a user tfjs model';
      throw Errors.badModel(artifact.id, `${family} has no ONNX export (exported: ${EXPORTABLE_FAMILIES.join(', ')}); use --engine auto or tfjs`);
    }
    return tfjsRunner(await buildClassifier(artifact));
  }
  const classifier = await buildClassifier(artifact);
  try {
    const fallback = choice === 'auto' ? tfjsRunner(classifier) : undefined;
    const runner = await FamilyRunner.create({
      id: artifact.id,
      inputShape: classifier.inputShape,
      graphs,
      provider: ort.provider,
      ...(fallback ? { fallback } : {}),
    });
    if (!fallback) {
      classifier.dispose();
      return runner;
    }
    // What the native programs lack (a DAM's energy, a DRP's embedding) comes from the tfjs runner behind.
    return withCapabilities(runner, fallback);
  } catch (e) {
    // auto falls back to tfjs when this model's sessions fail too, not only when no provider starts.
    if (choice === 'auto') return tfjsRunner(classifier);
    classifier.dispose();
    throw e;
  }
}
