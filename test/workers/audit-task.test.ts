/**
 * The audit task on its own: in this thread (as the main-thread runner uses it) and through a
 * one-worker pool of the shared runner (as the audit uses it).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/backend/index.js';
import { bindPlan, planDetectors, runDetectors, type DetectorPlan } from '../../src/detect/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { buildClassifier, loadArtifact, type ModelArtifact } from '../../src/models/artifact.js';
import { AUDIT_TASKS } from '../../pipelines/audit-pool.js';
import { workerPool } from '../../pipelines/runner.js';
import { AuditRuntime, type AuditTask } from '../../workers/audit-task.js';
import { auditDetectors, auditModels, mnistRecords } from '../pipelines/audit-helpers.js';

let artifacts: ModelArtifact[];
let plan: DetectorPlan;
let pixels: Float32Array;
let labels: Int32Array;
const N = 8;

beforeAll(async () => {
  const m = await auditModels();
  artifacts = [await loadArtifact(m.mlp), await loadArtifact(m.dam20), await loadArtifact(m.dam30)];
  plan = planDetectors(auditDetectors(m));
  const records = await mnistRecords(() => true, N);
  pixels = new Float32Array(N * 784);
  records.forEach((r, i) => pixels.set(r.pixels, i * 784));
  labels = Int32Array.from(records, (r) => r.label!);
});

const score = (extra: Partial<AuditTask> = {}): AuditTask => ({ kind: 'score', index: 0, attempt: 0, count: N, dim: 784, pixels, evidence: true, ...extra }) as AuditTask;

describe('AuditRuntime', () => {
  it('binds the plan and scores a batch as runDetectors does, with each plan model\'s prediction', async () => {
    // The tfjs engine: the same arithmetic as the tfjs classifiers below, so the same numbers.
    const rt = await AuditRuntime.create({ models: artifacts, plan, backend: 'wasm', engine: 'tfjs' }, 'main');
    const ready = await rt.ready();
    expect(ready.plan.bound).toBe(true);
    expect(ready.models.map((m) => m.id)).toEqual(artifacts.map((a) => a.id));
    const r = await rt.run(score());
    expect(Object.keys(r.scores)).toEqual(['order-disagreement', 'feature-squeezing', 'noise-instability']);
    expect(r.preds.length).toBe(3 * N);
    expect(r.evidence).toHaveLength(N);
    expect(r.attack).toBeNull();
    // The same numbers as the library's own runner on the same models.
    const models = await Promise.all(artifacts.map((a) => buildClassifier(a)));
    const x = tf.tensor2d(pixels, [N, 784]);
    const direct = await runDetectors(bindPlan(plan, models), models, x);
    x.dispose();
    models.forEach((m) => m.dispose());
    for (const [k, s] of Object.entries(direct.scores)) expect(Array.from(r.scores[k]!)).toEqual(Array.from(s));
    expect(r.evidence![0]).toEqual(direct.evidence[0]);
  });

  it('attacks then scores, white-box and adaptive (targeted), and leaks no tensors across tasks', async () => {
    const rt = await AuditRuntime.create({ models: artifacts, plan, backend: 'wasm' }, 'main');
    const attack = (extra: Partial<AuditTask>): AuditTask =>
      ({ kind: 'attack', index: 1, attempt: 0, count: N, dim: 784, pixels, labels, attack: 'fgsm:eps=0.3', source: artifacts[0]!.id, seed: 3, ...extra }) as AuditTask;
    const first = await rt.run(attack({}));
    expect(first.attack!.success.length).toBe(N);
    expect(first.attack!.sourceClean.length).toBe(N);
    expect(first.evidence).toBeNull();
    const rate = first.attack!.success.reduce((a, b) => a + b, 0) / N;
    expect(rate).toBeGreaterThan(0.5);
    const targets = labels.map((y) => (y + 1) % 10);
    const adaptive = await rt.run(attack({ source: 'adaptive:order-disagreement', attack: 'pgd:eps=0.3,steps=5', targets }));
    expect(adaptive.attack!.success.length).toBe(N);
    const again = await rt.run(attack({}));
    expect(Array.from(again.scores['feature-squeezing']!)).toEqual(Array.from(first.scores['feature-squeezing']!));
    for (let i = 0; i < 5; i++) await rt.run(score());
    const after = (await rt.run(score())).tensors;
    for (let i = 0; i < 5; i++) await rt.run(attack({ seed: i }));
    expect((await rt.run(score())).tensors).toBe(after);
  });

  it('refuses a batch whose pixels do not match its size, with a code', async () => {
    const rt = await AuditRuntime.create({ models: artifacts, plan, backend: 'wasm' }, 'main');
    const e = await rt.run(score({ count: 3 })).catch((x: unknown) => x);
    expect(isAdvstreamError(e) && e.code).toBe('BAD_ARGUMENT');
  });
});

describe('the audit task kind on the shared runner', () => {
  it('runs a batch in a worker and brings a task error back with its code, not as a crash', async () => {
    const runner = workerPool(AUDIT_TASKS, { models: artifacts, plan, backend: 'wasm' }, 1);
    try {
      const ready = await runner.ready();
      expect(ready.workerId).toMatch(/^w\d+$/);
      expect(ready.plan.bound).toBe(true);
      const sent = score();
      const r = await runner.run(sent, new AbortController().signal);
      expect(r.scores['order-disagreement']).toBeInstanceOf(Float32Array);
      expect(r.workerId).toBe(ready.workerId);
      // The caller's pixels are kept (each attempt transfers its own copy).
      expect(sent.pixels.byteLength).toBe(N * 784 * 4);
      const e = await runner.run(score({ count: 3 }), new AbortController().signal).catch((x: unknown) => x);
      expect(isAdvstreamError(e) && e.code).toBe('BAD_ARGUMENT');
    } finally {
      await runner.close();
    }
  });
});
