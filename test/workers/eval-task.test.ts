/**
 * The evaluation task on its own: in this thread (as the main-thread runner uses it) and through
 * a one-worker pool (as `evaluate` uses it).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/index.js';
import { openSource } from '../../src/data/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { loadArtifact, type ModelArtifact } from '../../src/models/artifact.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { isBlackBox } from '../../pipelines/eval-plan.js';
import { EVAL_TASKS, isWorkerCrash, workerPool } from '../../pipelines/runner.js';
import { runningPairs } from '../../pipelines/samples.js';
import { EvalRuntime, type EvalSetup, type EvalTask } from '../../workers/eval-task.js';
import { flakyEvalTasks, testModels } from '../pipelines/helpers.js';

let artifacts: ModelArtifact[];
let images: { pixels: Float32Array; labels: Int32Array };

beforeAll(async () => {
  artifacts = await Promise.all((await testModels()).map((dir) => loadArtifact(dir)));
  const pixels = new Float32Array(8 * 784);
  const labels = new Int32Array(8);
  let i = 0;
  for await (const r of openSource('mnist:test', { limit: 8 })) {
    pixels.set(r.pixels, i * 784);
    labels[i++] = r.label!;
  }
  images = { pixels, labels };
});

/** A setup with the pairs the pipeline would run. */
function setup(models: ModelArtifact[], attacks: string[]): EvalSetup {
  return { models, attacks, pairs: runningPairs(attacks.map((a) => parseAttackSpec(a)), models.map(isBlackBox)), backend: 'wasm' };
}

function task(count: number, extra: Partial<EvalTask> = {}): EvalTask {
  return {
    index: 0,
    attempt: 0,
    seed: 1,
    ids: Array.from({ length: count }, (_, i) => `img-${i}`),
    count,
    dim: 784,
    pixels: images.pixels.slice(0, count * 784),
    labels: images.labels.slice(0, count),
    ...extra,
  };
}

describe('EvalRuntime', () => {
  it('scores every model clean and on every adversarial, in the documented layout', async () => {
    const rt = await EvalRuntime.create(setup(artifacts, ['fgsm:eps=0.1', 'pgd:eps=0.3,steps=3']), 'main');
    const ready = await rt.ready();
    expect(ready.models.map((m) => m.id)).toEqual(artifacts.map((a) => a.id));
    expect(ready.backend.backend).toBe('wasm');
    const n = 8;
    const kept = 3;
    const r = await rt.run(task(n, { pixelCount: kept }));
    const M = 2;
    const P = 2 * M;
    expect([r.clean.length, r.success.length, r.linf.length, r.preds.length, r.minEps.length]).toEqual([M * n, P * n, P * n, P * M * n, P * n]);
    expect(r.pixelCount).toBe(kept);
    expect(r.adversarial.length).toBe(P * kept * 784);
    // Each kept adversarial is the one whose norm the pair reports: at (p·kept + i)·dim.
    for (let p = 0; p < P; p++) {
      for (let i = 0; i < kept; i++) {
        const adv = r.adversarial.subarray((p * kept + i) * 784, (p * kept + i + 1) * 784);
        let linf = 0;
        adv.forEach((v, j) => (linf = Math.max(linf, Math.abs(v - images.pixels[i * 784 + j]!))));
        expect(linf).toBeCloseTo(r.linf[p * n + i]!, 5);
      }
    }
    expect(r.minEps.every(Number.isNaN)).toBe(true);
    for (let p = 0; p < P; p++) {
      const s = p % M;
      for (let i = 0; i < n; i++) {
        const sourcePred = r.preds[(p * M + s) * n + i]!;
        // The attack's verdict agrees with the source model's own prediction on the adversarial.
        expect(r.success[p * n + i] === 1).toBe(sourcePred !== images.labels[i]);
        // A sample the source misclassifies clean is returned unchanged.
        if (r.clean[s * n + i] !== images.labels[i]) expect(r.linf[p * n + i]).toBe(0);
        else expect(r.linf[p * n + i]).toBeLessThanOrEqual((p < M ? 0.1 : 0.3) + 1e-6);
      }
    }
    expect(r.success.some((v) => v === 1)).toBe(true);
    expect(r.gradEvals).toBeGreaterThan(0);
    expect(r.confidence.every((c) => c >= 0 && c <= 1)).toBe(true);
  });

  it('is deterministic under a seed and leaks no tensors across batches', async () => {
    const rt = await EvalRuntime.create(setup(artifacts.slice(0, 1), ['pgd:eps=0.3,steps=2']), 'main');
    const first = await rt.run(task(4, { seed: 9 }));
    expect(first.adversarial).toHaveLength(0);
    const tensors = tf.memory().numTensors;
    for (let k = 0; k < 20; k++) await rt.run(task(4, { seed: k }));
    expect(tf.memory().numTensors).toBe(tensors);
    const again = await rt.run(task(4, { seed: 9 }));
    expect(Array.from(again.l2)).toEqual(Array.from(first.l2));
  });

  it('returns a task error as plain data with its code', async () => {
    const rt = await EvalRuntime.create(setup(artifacts.slice(0, 1), ['fgsm:eps=0.1']), 'main');
    const out = await rt.runSafely(task(4, { labels: new Int32Array(3) }));
    expect(out.ok).toBe(false);
    expect(!out.ok && out.error.code).toBe('BAD_ARGUMENT');
  });
});

describe('the pool runner', () => {
  it('does not take its own termination of a stuck task for a crash to retry', async () => {
    const runner = workerPool(flakyEvalTasks({ stuckMs: 60_000 }), setup(artifacts.slice(0, 1), ['fgsm:eps=0.1']), 1, { graceMs: 200 });
    await runner.ready();
    const running = runner.run(task(4), new AbortController().signal).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    await runner.close();
    const e = await running;
    expect(isAdvstreamError(e) && e.code).toBe('WORKER_FAILED');
    expect(isWorkerCrash(e)).toBe(false);
    expect(isAdvstreamError(e) && e.details.stopped).toBe(true);
  });

  it('runs a batch in a worker, and brings a task error back with its code, not as a crash', async () => {
    const runner = workerPool(EVAL_TASKS, setup(artifacts.slice(0, 1), ['fgsm:eps=0.1']), 1);
    try {
      const ready = await runner.ready();
      expect(ready.workerId).toMatch(/^w\d+$/);
      const sent = task(4, { pixelCount: 2 });
      const r = await runner.run(sent, new AbortController().signal);
      expect(r.count).toBe(4);
      expect(r.adversarial).toBeInstanceOf(Float32Array);
      expect(r.adversarial.length).toBe(2 * 784);
      expect(r.workerId).toBe(ready.workerId);
      // The caller's arrays are kept (each attempt transfers its own copy), so a retry can resend them.
      expect(sent.pixels.byteLength).toBe(4 * 784 * 4);
      const e = await runner.run(task(4, { labels: new Int32Array(3) }), new AbortController().signal).catch((x: unknown) => x);
      expect(isAdvstreamError(e) && e.code).toBe('BAD_ARGUMENT');
    } finally {
      await runner.close();
    }
  });
});
