import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertKernels, initBackend, missingKernels, tf, traceKernels } from '../../src/backend/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

describe('backend selection', () => {
  it.each(['cpu', 'wasm'] as const)('starts %s when forced and reports it', async (name) => {
    const info = await initBackend({ backend: name });
    expect(info.backend).toBe(name);
    expect(tf.getBackend()).toBe(name);
    expect(info.simd).toBe(name === 'wasm');
    expect(info.threads).toBe(1);
    expect(info.candidates.map((c) => c.name)).toEqual(['tensorflow', 'wasm', 'cpu']);
    expect(tf.add(tf.scalar(2), tf.scalar(3)).dataSync()[0]).toBe(5);
  });

  it('prefers wasm over cpu when tfjs-node is absent', async () => {
    const info = await initBackend();
    const tensorflow = info.candidates.find((c) => c.name === 'tensorflow')!;
    expect(tensorflow.ok).toBe(false);
    expect(tensorflow.reason).toMatch(/tfjs-node-gpu not installed/);
    expect(info.backend).toBe('wasm');
  });

  it('fails on an unknown backend, listing every candidate with its reason', async () => {
    const err = await initBackend({ backend: 'webgpu' }).catch((e: unknown) => e);
    expect(isAdvstreamError(err) && err.code).toBe('UNKNOWN_BACKEND');
    expect((err as Error).message).toMatch(/tensorflow \(.*not installed.*\), wasm \(ok\), cpu \(ok\)/);
  });

  it('never falls back silently from a forced backend that cannot start', async () => {
    const err = await initBackend({ backend: 'tensorflow' }).catch((e: unknown) => e);
    expect(isAdvstreamError(err) && err.code).toBe('BACKEND_UNAVAILABLE');
    expect((err as Error).message).toMatch(/not installed/);
  });

  it('refuses tfjs-node off the main thread', async () => {
    const info = await initBackend({ backend: 'cpu', allowNative: false });
    expect(info.candidates[0]!.reason).toMatch(/main thread only/);
  });
});

describe('kernel coverage', () => {
  it('names the kernels wasm lacks', () => {
    expect(missingKernels(['Conv2DBackpropFilter', 'BatchMatMul', 'DepthwiseConv2dNativeBackpropInput'], 'wasm')).toEqual([
      'Conv2DBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
    ]);
    expect(missingKernels(['Conv2DBackpropFilter', 'BatchMatMul'], 'cpu')).toEqual([]);
  });

  it('traces the kernels a gradient needs and fails before work on a backend without them', async () => {
    await initBackend({ backend: 'wasm' });
    const x = tf.ones([1, 4, 4, 1]);
    const kernels = await traceKernels(() =>
      tf.grad((f: tf.Tensor) => tf.sum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid')))(tf.ones([2, 2, 1, 1])),
    );
    expect(kernels).toContain('Conv2DBackpropFilter');
    expect(tf.getBackend()).toBe('wasm');
    let caught: unknown;
    try {
      assertKernels(kernels, 'conv filter gradient', 'wasm');
    } catch (e) {
      caught = e;
    }
    expect(isAdvstreamError(caught) && caught.code).toBe('MISSING_KERNELS');
    expect((caught as Error).message).toMatch(/Conv2DBackpropFilter/);
    expect(() => assertKernels(kernels, 'conv filter gradient', 'cpu')).not.toThrow();
  });
});

describe('advstream backend (CLI)', () => {
  it('prints the documented JSON', () => {
    const out = JSON.parse(execFileSync(process.execPath, [CLI, 'backend', '--json']).toString()) as Record<string, unknown>;
    expect(Object.keys(out).sort()).toEqual(['backend', 'candidates', 'onnx', 'simd', 'threads']);
    expect(out).toMatchObject({ backend: 'wasm', simd: true, threads: 1 });
    expect(out.candidates).toEqual([
      { name: 'tensorflow', ok: false, reason: expect.stringMatching(/not installed/) },
      { name: 'wasm', ok: true, reason: 'ok' },
      { name: 'cpu', ok: true, reason: 'ok' },
    ]);
  });

  it.each([
    ['cpu', 0, /"backend":"cpu"/],
    ['nope', 2, /UNKNOWN_BACKEND/],
    ['tensorflow', 1, /BACKEND_UNAVAILABLE/],
  ])('--backend %s exits %i', (name, code, pattern) => {
    const r = spawnSync(process.execPath, [CLI, 'backend', '--json', '--backend', name]);
    expect(r.status).toBe(code);
    expect(r.stdout.toString() + r.stderr.toString()).toMatch(pattern);
  });
});
