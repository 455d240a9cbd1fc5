/**
 * The one module that imports onnxruntime-node. It chooses an execution provider by priority (CUDA,
 * then CPU), saying why each one failed, and creates sessions from bytes: workers do no I/O, the
 * main thread reads model files and passes their bytes.
 *
 * Every session runs with one intra-op and one inter-op thread, so that the piscina pool, not ORT,
 * owns the cores: two workers means two busy cores, never 2 × N ORT threads fighting over them.
 */
import * as ort from 'onnxruntime-node';
import { Errors } from '../errors.js';
import { GraphBuilder } from './graph.js';

export { ort };

// Every failure ORT reports also comes back as an exception, which advstream reports with its
// reason (a provider candidate's, a model's): ORT's own console lines would only repeat them.
ort.env.logLevel = 'fatal';

/** Execution providers in priority order. */
export const PROVIDERS = ['cuda', 'cpu'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

export interface ProviderCandidate {
  name: ProviderName;
  ok: boolean;
  reason: string;
}

export interface ProviderInfo {
  provider: ProviderName;
  /** The engine's name in output records: `onnx-cpu`, `onnx-cuda`. */
  engine: `onnx-${ProviderName}`;
  candidates: ProviderCandidate[];
}

/** The name of whatever computes a model: an ONNX Runtime provider, or a tfjs backend. */
export type EngineName = `onnx-${ProviderName}` | `tfjs-${string}`;

/** A one-node graph to prove a provider can create a session and run. */
function probeModel(): Uint8Array {
  const g = new GraphBuilder('probe');
  const x = g.input('x', [1, 2]);
  g.output(g.op('Relu', [x]), 'y', [1, 2]);
  return g.encode();
}

function sessionOptions(provider: ProviderName): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Fixed-size batches reuse the arena; a memory pattern would be rebuilt for every ragged last batch.
    enableMemPattern: false,
  };
}

async function tryProvider(name: ProviderName): Promise<string> {
  const listed = ort.listSupportedBackends().find((b) => b.name === name);
  if (!listed) return `this onnxruntime-node build has no '${name}' execution provider on this platform`;
  try {
    const session = await ort.InferenceSession.create(probeModel(), sessionOptions(name));
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array([-1, 2]), [1, 2]) });
    const y = out.y?.data as Float32Array | undefined;
    await session.release();
    if (!y || y[0] !== 0 || y[1] !== 2) return 'the probe graph gave a wrong answer';
    return '';
  } catch (e) {
    const first = (e as Error).message.split('\n')[0] ?? 'failed to start';
    // ORT lists cuda on every linux-x64 build but ships its libraries only with the GPU install.
    return listed.bundled ? first : `not bundled with this install (the CUDA libraries are downloaded only by onnxruntime-node's GPU install): ${first}`;
  }
}

let chosen: Promise<ProviderInfo> | undefined;
let chosenFor: string | undefined;

/**
 * Chooses the execution provider: the first that starts in priority order, or the one forced. Each
 * candidate is tried and reported. Cached per thread.
 *
 * @example
 *   const { engine, candidates } = await selectProvider(); // 'onnx-cpu' here, with why cuda failed
 */
export function selectProvider(forced?: string): Promise<ProviderInfo> {
  if (chosen && chosenFor === (forced ?? '')) return chosen;
  chosenFor = forced ?? '';
  const attempt = (async () => {
    const candidates: ProviderCandidate[] = [];
    for (const name of PROVIDERS) {
      const reason = await tryProvider(name);
      candidates.push({ name, ok: reason === '', reason: reason || 'ok' });
    }
    if (forced !== undefined && !(PROVIDERS as readonly string[]).includes(forced)) throw Errors.unknownBackend(`onnx-${forced}`, candidates);
    const pick = forced ? candidates.find((c) => c.name === forced) : candidates.find((c) => c.ok);
    if (!pick || !pick.ok) throw Errors.backendUnavailable(`onnx-${forced ?? 'any'}`, pick?.reason ?? 'no execution provider starts', candidates);
    return { provider: pick.name, engine: `onnx-${pick.name}` as const, candidates };
  })();
  chosen = attempt;
  // Only this attempt's own failure clears the cache: a newer call may have replaced it meanwhile.
  attempt.catch(() => {
    if (chosen !== attempt) return;
    chosen = undefined;
    chosenFor = undefined;
  });
  return attempt;
}

/**
 * An ONNX Runtime session from model bytes on `provider`, single-threaded (see the module comment).
 * Bytes that are not a loadable model are a `BAD_MODEL` error naming `where`.
 */
export async function createSession(bytes: Uint8Array, provider: ProviderName, where: string): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, sessionOptions(provider));
  } catch (e) {
    throw Errors.badModel(where, `onnxruntime could not load the model: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** A float32 ORT tensor over `data` (not copied). */
export function floatTensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}
