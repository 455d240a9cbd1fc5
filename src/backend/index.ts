/**
 * The one module that imports TensorFlow.js. Importing the `@tensorflow/tfjs` union once registers
 * the gradients that `tfjs-core` alone lacks under Node; the WASM backend registers itself on import.
 * Everything else in advstream gets `tf` from here.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { isMainThread } from 'node:worker_threads';
import { Errors } from '../errors.js';

export { tf };
export { exactSign, maxPoolFirstMax } from './exact.js';
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor4D = tf.Tensor4D;
export type Scalar = tf.Scalar;
export type Variable = tf.Variable;
export type Rank = tf.Rank;
export type NamedTensorMap = tf.NamedTensorMap;

// Prod mode silences the cpu backend's "install tfjs-node" banner; numerics are unchanged.
tf.enableProdMode();

/** In priority order: the native TensorFlow binding, then SIMD WASM, then plain JS. */
export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The native packages tried for the `tensorflow` backend, GPU first. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

export interface BackendCandidate {
  name: BackendName;
  ok: boolean;
  reason: string;
}

export interface BackendInfo {
  backend: BackendName;
  /** WASM SIMD in use (false on other backends). */
  simd: boolean;
  /** Threads inside one backend instance: WASM is single-threaded under Node, parallelism comes from workers. */
  threads: number;
  /** The native package behind `tensorflow`, when that is the backend. */
  native?: string;
  candidates: BackendCandidate[];
}

export interface InitBackendOptions {
  /** Force one backend; a forced backend that cannot start is an error, never a silent fallback. */
  backend?: string;
  /** tfjs-node cannot run in worker threads (tfjs#2079): defaults to whether this is the main thread. */
  allowNative?: boolean;
}

let nativePackage: string | undefined;

async function tryNative(allowNative: boolean): Promise<string> {
  if (!allowNative) return 'tfjs-node runs in the main thread only (tfjs#2079); this is a worker thread';
  if (nativePackage) return '';
  const failures: string[] = [];
  for (const pkg of NATIVE_PACKAGES) {
    try {
      await import(pkg);
      nativePackage = pkg;
      return '';
    } catch (e) {
      const { code, message } = e as { code?: string; message: string };
      const absent =
        code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /Cannot find (module|package)|Could not resolve/.test(message);
      failures.push(
        absent
          ? `${pkg} not installed`
          : `${pkg} failed to load: ${(e as Error).message.split('\n')[0]}`,
      );
    }
  }
  return failures.join('; ');
}

async function activate(name: BackendName, allowNative: boolean): Promise<string> {
  try {
    if (name === 'tensorflow') {
      const why = await tryNative(allowNative);
      if (why) return why;
    }
    if (!tf.findBackendFactory(name)) return 'not registered';
    const ok = await tf.setBackend(name);
    if (!ok) return 'failed to initialise';
    await tf.ready();
    return '';
  } catch (e) {
    return (e as Error).message.split('\n')[0] ?? 'failed to initialise';
  }
}

function describe(name: BackendName, candidates: BackendCandidate[]): BackendInfo {
  const simd = name === 'wasm' && tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
  const info: BackendInfo = { backend: name, simd, threads: 1, candidates };
  if (name === 'tensorflow' && nativePackage) info.native = nativePackage;
  return info;
}

let current: BackendInfo | undefined;

/**
 * Selects and starts a backend: the first that starts in priority order, or the one forced.
 * Every candidate is tried and reported, so that `backend --json` says why each one failed.
 *
 * @example
 *   const info = await initBackend({ backend: 'wasm' }); // { backend: 'wasm', simd: true, ... }
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  const allowNative = options.allowNative ?? isMainThread;
  const forced = options.backend;
  const candidates: BackendCandidate[] = [];
  for (const name of BACKEND_NAMES) {
    const reason = await activate(name, allowNative);
    candidates.push({ name, ok: reason === '', reason: reason || 'ok' });
  }
  if (forced !== undefined && !(BACKEND_NAMES as readonly string[]).includes(forced)) {
    throw Errors.unknownBackend(forced, candidates);
  }
  const chosen = forced
    ? candidates.find((c) => c.name === forced)!
    : candidates.find((c) => c.ok);
  if (!chosen || !chosen.ok) {
    throw Errors.backendUnavailable(forced ?? 'any', chosen?.reason ?? 'no backend starts', candidates);
  }
  const reason = await activate(chosen.name, allowNative);
  if (reason) throw Errors.backendUnavailable(chosen.name, reason, candidates);
  current = describe(chosen.name, candidates);
  return current;
}

/** The backend started by {@link initBackend}; starts the default one if none has been. */
export async function ensureBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  if (current && (options.backend === undefined || options.backend === current.backend)) return current;
  return initBackend(options);
}

export function currentBackend(): BackendInfo | undefined {
  return current;
}

/** The kernels in `kernels` that `backend` (default: the active one) has no implementation of. */
export function missingKernels(kernels: Iterable<string>, backend: string = tf.getBackend()): string[] {
  const missing = new Set<string>();
  for (const k of kernels) if (!tf.getKernel(k, backend)) missing.add(k);
  return [...missing].sort();
}

/**
 * The kernels a computation runs, traced on the `cpu` backend, which implements every kernel, so
 * that tracing never fails on the gap it is meant to find. Run it on a tiny input.
 */
export async function traceKernels(fn: () => tf.TensorContainer | Promise<tf.TensorContainer>): Promise<string[]> {
  const previous = tf.getBackend();
  await tf.setBackend('cpu');
  try {
    // tf.profile awaits an asynchronous computation (a detector's model calls are asynchronous).
    const info = await tf.profile(async () => (await fn()) as tf.Tensor | tf.Tensor[]);
    // The profile also lists op scopes (`logSoftmax__op`) and unnamed entries: keep kernels only.
    return [...new Set(info.kernelNames)].filter((k) => tf.getKernel(k, 'cpu') !== undefined).sort();
  } finally {
    await tf.setBackend(previous);
  }
}

/**
 * Fails before any work starts when `backend` lacks a kernel that `what` needs.
 *
 * @example
 *   assertKernels(['Conv2DBackpropFilter'], 'conv training', 'wasm'); // throws MISSING_KERNELS
 */
export function assertKernels(kernels: Iterable<string>, what: string, backend: string = tf.getBackend()): void {
  const missing = missingKernels(kernels, backend);
  if (missing.length) throw Errors.missingKernels(backend, missing, what);
}
