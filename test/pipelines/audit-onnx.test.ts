/**
 * The audit on a user's ONNX model (a PyTorch-style export with a normalising sidecar, whose network
 * is the zoo's ReLU MLP folded through the normalisation): calibrated and audited end to end through
 * the pool, its detector scores equal to those of the same network on tfjs, adversarials scored
 * higher than clean records, no tensor leaks, gradient-only attacks and the adaptive ensemble
 * skipped with their reasons, `--engine tfjs` refused, and the CLI's `--model` and `--engine`. Beside
 * it, the zoo's DRP and DAM on the native engine: their embedding and energy detectors under `auto`,
 * their score-only variants under `onnx`.
 */
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { tf } from '../../src/backend/index.js';
import type { ImageRecord } from '../../src/data/index.js';
import { bindPlan, loadCalibration, planDetectors, runDetectors } from '../../src/detect/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { buildRunner } from '../../src/engine/build.js';
import { loadArtifact, loadClassifier } from '../../src/models/artifact.js';
import type { Classifier } from '../../src/models/classifier.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { auditBench, openAuditor, type Auditor, type AuditVerdict } from '../../pipelines/index.js';
import { AuditRuntime, type AuditTask } from '../../workers/audit-task.js';
import { writeTorchLikeMlp } from '../engine/onnx-fixture.js';
import { auditModels, jsonRecord, mnistRecords, type AuditModels } from './audit-helpers.js';
import { runCli, scratchDir } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
const N = 64;

let dir: string;
let m: AuditModels;
let onnx: string;
let zoo: Classifier;
let auditor: Auditor;
let clean: ImageRecord[];
let adversarial: ImageRecord[];
let attacked: Uint8Array;

const detectorsOn = (model: string) => [
  `feature-squeezing:model=${model}`,
  `noise-instability:model=${model}`,
  `order-disagreement:low=${model},high=${m.dam20}`,
  'combined',
];

function pixelsOf(records: readonly ImageRecord[]): Float32Array {
  const out = new Float32Array(records.length * 784);
  records.forEach((r, i) => out.set(r.pixels, i * 784));
  return out;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

beforeAll(async () => {
  m = await auditModels();
  dir = await scratchDir('audit-onnx');
  onnx = await writeTorchLikeMlp(dir, 'torch-mlp', { opaque: true });
  zoo = await loadClassifier('zoo:mlp-relu');
  clean = await mnistRecords((p) => p % 2 === 1, N);
  // Adversarials made white-box on the tfjs twin of the ONNX network: the same function, so they
  // are white-box for the ONNX model too (which itself offers no gradients).
  const x = tf.tensor2d(pixelsOf(clean), [N, 784]);
  const y = tf.tensor1d(Int32Array.from(clean, (r) => r.label!), 'int32');
  const res = await parseAttackSpec('pgd:eps=0.2,steps=20').run(zoo, x, y, { seed: 1 });
  tf.dispose([x, y]);
  attacked = res.success;
  adversarial = clean.map((r, i) => ({ ...r, id: `adv-${r.id}`, pixels: res.adversarial.slice(i * 784, (i + 1) * 784) }));
  auditor = await openAuditor({
    detectors: detectorsOn(onnx),
    workers: 2,
    fpr: 0.05,
    engine: 'auto',
    calibration: path.join(dir, 'calibration.json'),
    calibrationLimit: 300,
  });
});

afterAll(async () => {
  await auditor?.close();
  zoo?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('the audit of an ONNX model', () => {
  it('names the engines (the ONNX model on onnx-cpu, black-box) and calibrates on it', async () => {
    expect(auditor.info.engine.split('+')).toContain('onnx-cpu');
    const model = auditor.info.models.find((x) => x.id === onnx)!;
    expect(model).toMatchObject({ family: 'onnx', engine: 'onnx-cpu', gradient_engine: 'none' });
    expect(model.sha256).toMatch(/^[0-9a-f]{64}$/);
    const c = await loadCalibration(path.join(dir, 'calibration.json'));
    expect(c.plan.detectors.map((d) => d.id).join(' ')).toContain(`model=${onnx}`);
    expect(c.detectors['feature-squeezing']!.n).toBe(300);
    expect(c.combined!.n).toBe(300);
    expect(c.provenance).toMatchObject({ engine: auditor.info.engine });
  });

  it('scores what the same network scores on tfjs, and predicts what it predicts', async () => {
    const verdicts = await auditor.audit(clean);
    const dam = await loadClassifier(m.dam20);
    const plan = bindPlan(planDetectors(detectorsOn('zoo:mlp-relu').slice(0, 3)), [zoo, dam]);
    const x = tf.tensor2d(pixelsOf(clean), [N, 784]);
    const reference = await runDetectors(plan, [zoo, dam], x);
    const predicted = tf.tidy(() => tf.argMax(zoo.scores(x), 1).arraySync() as number[]);
    x.dispose();
    dam.dispose();
    for (const name of ['feature-squeezing', 'noise-instability', 'order-disagreement']) {
      const diff = Math.max(...verdicts.map((v, i) => Math.abs(v.scores[name]! - reference.scores[name]![i]!)));
      expect(diff, name).toBeLessThan(1e-4);
    }
    expect(verdicts.map((v) => v.predictions[onnx])).toEqual(predicted);
    // The order-disagreement evidence names the ONNX model's prediction as the low-order one.
    expect(verdicts.map((v) => v.evidence['order-disagreement']!.low)).toEqual(predicted);
  });

  it('flags adversarials far more often than clean records, and scores them higher', async () => {
    const onClean = await auditor.audit(clean);
    const onAdv = (await auditor.audit(adversarial)).filter((_, i) => attacked[i] === 1);
    expect(onAdv.length).toBeGreaterThan(N / 2);
    const rate = (vs: AuditVerdict[]) => vs.filter((v) => v.flagged).length / vs.length;
    expect(rate(onAdv)).toBeGreaterThan(rate(onClean) + 0.3);
    for (const name of ['feature-squeezing', 'order-disagreement']) {
      expect(mean(onAdv.map((v) => v.scores[name]!)), name).toBeGreaterThan(mean(onClean.map((v) => v.scores[name]!)));
    }
  });

  it('refuses an ONNX model under --engine tfjs with BAD_MODEL', async () => {
    const e = await openAuditor({ detectors: [`feature-squeezing:model=${onnx}`], workers: 1, engine: 'tfjs', calibration: path.join(dir, 'never.json') }).catch(
      (x: unknown) => x,
    );
    expect(isAdvstreamError(e) && e.code).toBe('BAD_MODEL');
    expect(String((e as Error).message)).toMatch(/onnx engine only; use --engine auto or onnx/);
    expect(existsSync(path.join(dir, 'never.json'))).toBe(false);
  });
});

describe('the DRP and DAM extensions on each engine', () => {
  it('auto keeps the tfjs classifier behind the native runner (embedding, energy); onnx binds the score-only variants', async () => {
    const drp = await loadArtifact('zoo:drp');
    const dam = await loadArtifact('zoo:dam-n20');
    const bound = async (engine: 'auto' | 'onnx') => {
      const runners = [await buildRunner(drp, engine), await buildRunner(dam, engine)];
      try {
        expect(runners.map((r) => r.engine)).toEqual(['onnx-cpu', 'onnx-cpu']);
        const plan = bindPlan(planDetectors(['prototype-distance:model=zoo:drp', 'energy:model=zoo:dam-n20']), runners);
        const x = tf.tensor2d(pixelsOf(clean.slice(0, 4)), [4, 784]);
        const before = tf.memory().numTensors;
        const batch = await runDetectors(plan, runners, x);
        expect(tf.memory().numTensors).toBe(before);
        x.dispose();
        expect(Object.values(batch.scores).every((s) => s.length === 4 && s.every(Number.isFinite))).toBe(true);
        return plan.detectors.map((d) => d.params.source);
      } finally {
        for (const r of runners) r.dispose();
      }
    };
    expect(await bound('auto')).toEqual(['embedding', 'energy']);
    expect(await bound('onnx')).toEqual(['margin', 'gap']);
  });
});

describe('the audit task on an ONNX model', () => {
  let rt: AuditRuntime;
  let pixels: Float32Array;
  let labels: Int32Array;
  const B = 8;
  beforeAll(async () => {
    const artifacts = [await loadArtifact(onnx), await loadArtifact(m.dam20)];
    rt = await AuditRuntime.create({ models: artifacts, plan: planDetectors(detectorsOn(onnx)), backend: 'wasm', engine: 'auto' }, 'main');
    pixels = pixelsOf(clean.slice(0, B));
    labels = Int32Array.from(clean.slice(0, B), (r) => r.label!);
  });
  const score = (): AuditTask => ({ kind: 'score', index: 0, attempt: 0, count: B, dim: 784, pixels, evidence: true });
  const attack = (spec: string, source: string, targets?: Int32Array): AuditTask => ({
    kind: 'attack',
    index: 1,
    attempt: 0,
    count: B,
    dim: 784,
    pixels,
    labels,
    attack: spec,
    source,
    seed: 2,
    ...(targets ? { targets } : {}),
  });

  it('leaks no tensors: as many after 20 score and Square tasks as after the first', async () => {
    const after = (await rt.run(score())).tensors;
    for (let i = 0; i < 10; i++) await rt.run(score());
    for (let i = 0; i < 10; i++) await rt.run(attack('square:eps=0.3,queries=20', onnx));
    expect((await rt.run(score())).tensors).toBe(after);
  });

  it('takes black-box attacks on it; gradient attacks and the adaptive ensemble refuse it with ATTACK_UNSUPPORTED', async () => {
    const square = await rt.run(attack('square:eps=0.3,queries=50', onnx));
    expect(square.attack!.success.length).toBe(B);
    const fgsm = await rt.run(attack('fgsm:eps=0.2', onnx)).catch((x: unknown) => x);
    expect(isAdvstreamError(fgsm) && fgsm.code).toBe('ATTACK_UNSUPPORTED');
    const targets = labels.map((y) => (y + 1) % 10);
    const adaptive = await rt.run(attack('pgd:eps=0.3,steps=5', 'adaptive:order-disagreement', targets)).catch((x: unknown) => x);
    expect(isAdvstreamError(adaptive) && adaptive.code).toBe('ATTACK_UNSUPPORTED');
    expect(String((adaptive as Error).message)).toMatch(/black-box/);
  });
});

describe('audit-bench with an ONNX model', () => {
  it('attacks it black-box, and lists the gradient and adaptive pairs it skipped, with reasons', async () => {
    const result = await auditBench({
      detectors: detectorsOn(onnx),
      workers: 2,
      fpr: 0.05,
      calibration: path.join(dir, 'calibration.json'),
      calibrationLimit: 300,
      limit: 32,
      attacks: ['fgsm:eps=0.2', 'square:eps=0.3,queries=100'],
      sources: [onnx, m.mlp],
      surrogate: null,
    });
    expect(result.results.map((r) => `${r.label} @ ${r.source === onnx ? 'onnx' : 'mlp'}`)).toEqual([
      'fgsm:eps=0.2 @ mlp',
      'square:eps=0.3,queries=100 @ onnx',
      'square:eps=0.3,queries=100 @ mlp',
    ]);
    expect(result.skipped.map((s) => [s.kind, s.source === onnx ? 'onnx' : s.source])).toEqual([
      ['white-box', 'onnx'],
      ['adaptive', 'adaptive:order-disagreement'],
    ]);
    for (const s of result.skipped) expect(s.reason).toMatch(/black-box/);
    const square = result.results.find((r) => r.source === onnx)!;
    expect(square.kind).toBe('white-box');
    expect(square.attack_success.n).toBeGreaterThan(0);
    expect(result.provenance).toMatchObject({ engine: expect.stringContaining('onnx-cpu') });
  });
});

const cli = (args: string[]) => runCli(args, dir);

describe('advstream calibrate and audit --model FILE.onnx', () => {
  it('calibrates, then audits with the ONNX model in every single-model role, naming the engine', async () => {
    expect(existsSync(MAIN), `${MAIN} is not built: run npx tsc -p .`).toBe(true);
    const input = path.join(dir, 'in.ndjson');
    await writeFile(input, [...clean.slice(0, 6), ...adversarial.slice(0, 6)].map((r) => JSON.stringify(jsonRecord(r))).join('\n') + '\n');
    const flags = ['--model', onnx, '--detector', 'feature-squeezing', '--detector', 'noise-instability', '--fpr', '0.05', '--calibration-limit', '200', '--workers', '2'];
    const calibration = path.join(dir, 'cli-calibration.json');
    const cal = await cli(['calibrate', ...flags, '--calibration', calibration]);
    expect(cal.code, cal.stderr).toBe(0);
    expect((await loadCalibration(calibration)).plan.detectors.map((d) => d.models.model)).toEqual([[onnx], [onnx]]);
    const run = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--calibration', calibration, '--engine', 'auto']);
    expect(run.code, run.stderr).toBe(0);
    const out = run.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(out[0]).toMatchObject({ type: 'start', engine: 'onnx-cpu', models: [{ id: onnx, engine: 'onnx-cpu', gradient_engine: 'none' }] });
    const verdicts = out.filter((l) => l.type === 'verdict');
    expect(verdicts).toHaveLength(12);
    for (const v of verdicts) expect(Object.keys(v.predictions as object)).toEqual([onnx]);
    expect(run.stderr).toMatch(/calibration: reusing/);
    expect(run.stderr).toMatch(/engine onnx-cpu/);
    const refused = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--calibration', calibration, '--engine', 'tfjs']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/BAD_MODEL/);
  });
});
