/**
 * The detector contract, one case per registered model detector (and per variant of those with a
 * fallback): scores of shape [B], deterministic, no leaked tensors, higher on adversarial images
 * made with src/attacks against the small ReLU MLP than on the clean images they came from.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, missingKernels, tf, traceKernels, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import {
  DETECTORS,
  bindPlan,
  getDetectorEntry,
  planDetectors,
  rocAuc,
  runDetectors,
  TensorScope,
  type DetectorPlan,
  type ModelDetectorEntry,
} from '../../src/detect/index.js';
import { asRunner } from '../../src/models/runner.js';
import { median2x2, reduceBitDepth, softmaxDivergence } from '../../src/detect/ops.js';
import type { Classifier } from '../../src/models/classifier.js';
import { loadEmbeddingModel, loadEnergyModel, loadModel, mnist, rows, scoresOnly, tensors, type Slice } from './helpers.js';

let mlp: Classifier;
let dam20: Classifier;
let dam30: Classifier;
let withEnergy: Classifier;
let withoutEnergy: Classifier;
let withEmbedding: Classifier;
let models: Classifier[];
let clean: Slice;
const adversarial = new Map<string, { x: Float32Array; success: Uint8Array }>();
const ATTACKS = ['fgsm:eps=0.15', 'pgd:eps=0.1,steps=20'];
const N = 200;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  mlp = await loadModel('mlp');
  dam20 = await loadModel('dam-n20');
  dam30 = await loadModel('dam-n30');
  withEnergy = await loadEnergyModel('dam-n20');
  withoutEnergy = scoresOnly(await loadModel('dam-n20'));
  withEmbedding = await loadEmbeddingModel();
  models = [mlp, dam20, dam30, withEnergy, withoutEnergy, withEmbedding];
  clean = await mnist('test', 0, N);
  const { x, y } = tensors(clean);
  for (const spec of ATTACKS) {
    const r = await parseAttackSpec(spec).run(mlp, x, y, { seed: 7 });
    adversarial.set(spec, { x: r.adversarial, success: r.success });
  }
  tf.dispose([x, y]);
});

afterAll(() => {
  for (const m of models) m.dispose();
});

interface Case {
  label: string;
  spec: () => string;
  /** The bound source variant, for detectors with a fallback. */
  source?: string;
}

const CASES: Case[] = [
  { label: 'order-disagreement', spec: () => `order-disagreement:low=${mlp.id},high=${dam20.id}+${dam30.id}` },
  { label: 'order-disagreement skl', spec: () => `order-disagreement:low=${mlp.id},high=${dam20.id},divergence=skl` },
  { label: 'feature-squeezing', spec: () => `feature-squeezing:model=${mlp.id}` },
  { label: 'noise-instability', spec: () => `noise-instability:model=${mlp.id},seed=3` },
  { label: 'prototype-distance embedding', spec: () => `prototype-distance:model=${withEmbedding.id}`, source: 'embedding' },
  { label: 'prototype-distance margin', spec: () => `prototype-distance:model=${mlp.id}`, source: 'margin' },
  { label: 'energy', spec: () => `energy:model=${withEnergy.id}`, source: 'energy' },
  { label: 'energy family', spec: () => `energy:model=${dam20.id}`, source: 'energy' },
  { label: 'energy gap', spec: () => `energy:model=${withoutEnergy.id}`, source: 'gap' },
];

function planOf(c: Case): DetectorPlan {
  return bindPlan(planDetectors([c.spec()]), models);
}

async function scoresOf(plan: DetectorPlan, s: Slice): Promise<Float32Array> {
  const x = tf.tensor2d(s.x, [s.count, 784]);
  const out = await runDetectors(plan, models, x);
  x.dispose();
  return out.scores[plan.detectors[0]!.name]!;
}

function mean(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s / v.length;
}

it("the dam family's energy equals the formula computed from its weights", async () => {
  const { x } = tensors(rows(clean, 0, 16));
  const [a, b] = [(dam20 as unknown as { energy(x: Tensor2D): tf.Tensor }).energy(x), (withEnergy as unknown as { energy(x: Tensor2D): tf.Tensor }).energy(x)];
  const [va, vb] = [a.dataSync(), b.dataSync()];
  va.forEach((v, i) => expect(Math.abs(v - vb[i]!)).toBeLessThan(1e-3 * Math.max(1, Math.abs(vb[i]!))));
  tf.dispose([a, b, x]);
});

it('has a case for every registered model detector', () => {
  const names = DETECTORS.filter((d) => d.kind === 'model').map((d) => d.name);
  expect(new Set(CASES.map((c) => c.label.split(' ')[0]))).toEqual(new Set(names));
});

describe.each(CASES)('$label', (c) => {
  it('binds to the expected variant', () => {
    const plan = planOf(c);
    if (c.source) expect(plan.detectors[0]!.params.source).toBe(c.source);
    expect(plan.bound).toBe(true);
  });

  it('scores shape [B], finite and deterministic, with per-record evidence', async () => {
    const plan = planOf(c);
    const batch = rows(clean, 0, 16);
    const x = tf.tensor2d(batch.x, [16, 784]);
    const a = await runDetectors(plan, models, x);
    const b = await runDetectors(plan, models, x);
    x.dispose();
    const name = plan.detectors[0]!.name;
    expect(a.count).toBe(16);
    expect(a.scores[name]!.length).toBe(16);
    expect(a.scores[name]!.every(Number.isFinite)).toBe(true);
    expect(b.scores[name]).toEqual(a.scores[name]);
    expect(a.evidence).toHaveLength(16);
    expect(JSON.parse(JSON.stringify(a.evidence))).toEqual(a.evidence);
    expect(Object.keys(a.evidence[0]![name]!).length).toBeGreaterThan(0);
  });

  it('leaks no tensors: as many after 20 batches as after 1', async () => {
    const plan = planOf(c);
    let afterOne = -1;
    for (let b = 0; b < 21; b++) {
      const x = tf.tensor2d(rows(clean, (b * 8) % (N - 8), 8).x, [8, 784]);
      await runDetectors(plan, models, x);
      x.dispose();
      if (b === 0) afterOne = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterOne);
  });

  it.each(ATTACKS)('scores adversarial images (%s on the MLP) higher than clean ones on average', async (attack) => {
    const plan = planOf(c);
    const adv = adversarial.get(attack)!;
    const onClean = await scoresOf(plan, clean);
    const onAdv = (await scoresOf(plan, { x: adv.x, y: clean.y, count: N })).filter((_, i) => adv.success[i] === 1);
    expect(onAdv.length).toBeGreaterThan(N / 2);
    expect(mean(onAdv)).toBeGreaterThan(mean(onClean));
  });
});

describe('order-disagreement', () => {
  it('flags disagreement in its evidence: the low and high predictions differ', async () => {
    const plan = bindPlan(planDetectors([`order-disagreement:low=${mlp.id},high=${dam20.id}+${dam30.id}`]), models);
    const x = tf.tensor2d(adversarial.get('pgd:eps=0.1,steps=20')!.x.slice(0, 50 * 784), [50, 784]);
    const { evidence } = await runDetectors(plan, models, x);
    x.dispose();
    let disagreeing = 0;
    for (const e of evidence) {
      const ev = e['order-disagreement']!;
      const high = ev.high as number[];
      expect(high).toHaveLength(2);
      expect((ev.divergence as number[]).length).toBe(2);
      expect(ev.disagree).toBe(high.some((h) => h !== ev.low));
      if (ev.disagree) disagreeing++;
    }
    // Krotov & Hopfield: images made against the low-order model mostly do not fool the high-order ones.
    expect(disagreeing).toBeGreaterThan(25);
  });

  it("standardises scores: a DAM's raw softmax is nearly flat, so raw divergences measure scale, not disagreement", async () => {
    const auc = async (normalize: string) => {
      const plan = bindPlan(planDetectors([`order-disagreement:low=${mlp.id},high=${dam20.id},normalize=${normalize}`]), models);
      const adv = adversarial.get('pgd:eps=0.1,steps=20')!;
      const onAdv = (await scoresOf(plan, { x: adv.x, y: clean.y, count: N })).filter((_, i) => adv.success[i] === 1);
      return rocAuc(await scoresOf(plan, clean), onAdv).auc;
    };
    const zscore = await auc('zscore');
    const none = await auc('none');
    expect(zscore).toBeGreaterThan(0.85);
    expect(none).toBeLessThan(0.5);
  });

  it('is 0 where the models are one model, and at most ln 2 (JS)', async () => {
    const plan = bindPlan(planDetectors([`order-disagreement:low=${dam20.id},high=${dam20.id}+${dam30.id}`]), models);
    const x = tf.tensor2d(clean.x.slice(0, 20 * 784), [20, 784]);
    const { evidence, scores } = await runDetectors(plan, models, x);
    x.dispose();
    for (const e of evidence) expect((e['order-disagreement']!.divergence as number[])[0]).toBeLessThan(1e-6);
    expect(Math.max(...scores['order-disagreement']!)).toBeLessThanOrEqual(Math.LN2 + 1e-6);
  });
});

describe('energy', () => {
  it('the extension agrees with the DAM scores: −min_α βE(v, e_α) = max_α s_α + β Σ_μ F_n(s_μ) ≥ max_α s_α', () => {
    const e = withEnergy as Classifier & { energy(x: Tensor2D): Tensor1D };
    tf.tidy(() => {
      const x = tf.tensor2d(clean.x.slice(0, 50 * 784), [50, 784]);
      const energy = e.energy(x).arraySync();
      const scores = e.scores(x).arraySync();
      energy.forEach((v, i) => expect(-v).toBeGreaterThanOrEqual(Math.max(...scores[i]!) - 1e-4 * Math.abs(v)));
    });
  });
});

describe('ops', () => {
  it('JS and symmetric KL match their definitions', () => {
    const a = tf.tensor2d([[2, 0, -1], [0, 0, 0]]);
    const b = tf.tensor2d([[0, 1, 0], [0, 0, 0]]);
    const p = tf.softmax(a).arraySync() as number[][];
    const q = tf.softmax(b).arraySync() as number[][];
    const kl = (u: number[], v: number[]) => u.reduce((s, ui, i) => s + ui * Math.log(ui / v[i]!), 0);
    const js = p.map((pi, r) => {
      const m = pi.map((v, i) => (v + q[r]![i]!) / 2);
      return 0.5 * kl(pi, m) + 0.5 * kl(q[r]!, m);
    });
    const skl = p.map((pi, r) => kl(pi, q[r]!) + kl(q[r]!, pi));
    const gotJs = softmaxDivergence(a, b, 'js').arraySync();
    const gotSkl = softmaxDivergence(a, b, 'skl').arraySync();
    gotJs.forEach((v, r) => expect(v).toBeCloseTo(js[r]!, 6));
    gotSkl.forEach((v, r) => expect(v).toBeCloseTo(skl[r]!, 5));
    tf.dispose([a, b]);
  });

  it('median2x2 takes the mean of the middle two of each 2×2 window, the first row and column repeated', () => {
    // A 3×3 image: window of (i, j) is rows i−1..i, columns j−1..j.
    const img = [1, 5, 2, 9, 3, 7, 4, 8, 6];
    const x = tf.tensor2d([img]);
    const got = median2x2(x, [3, 3, 1]).dataSync();
    const at = (i: number, j: number) => img[Math.max(0, i) * 3 + Math.max(0, j)]!;
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const w = [at(i, j), at(i - 1, j), at(i, j - 1), at(i - 1, j - 1)].sort((u, v) => u - v);
        expect(got[i * 3 + j]).toBeCloseTo((w[1]! + w[2]!) / 2, 6);
      }
    }
    x.dispose();
  });

  it('reduces bit depth to 1 bit as rounding, 2 bits to quarters', () => {
    const x = tf.tensor2d([[0, 0.2, 0.49, 0.51, 1]]);
    expect(Array.from(reduceBitDepth(x, 1).dataSync())).toEqual([0, 0, 0, 1, 1]);
    const two = Array.from(reduceBitDepth(x, 2).dataSync());
    two.forEach((v, i) => expect(v).toBeCloseTo([0, 1 / 3, 1 / 3, 2 / 3, 1][i]!, 6));
    x.dispose();
  });
});

it('uses only kernels the wasm backend has', async () => {
  const x = tf.tensor2d(clean.x.slice(0, 4 * 784), [4, 784]);
  const plans = CASES.map(planOf);
  const scope = new TensorScope();
  const kernels = await traceKernels(async () => {
    const out: (Tensor1D | Tensor2D)[] = [];
    for (const plan of plans) {
      for (const d of plan.detectors) {
        const entry = getDetectorEntry(d.name) as ModelDetectorEntry;
        const byRole = Object.fromEntries(Object.entries(d.models).map(([role, ids]) => [role, ids.map((id) => asRunner(models.find((m) => m.id === id)!))]));
        out.push((await entry.score(byRole, x, d.params, scope)).score);
      }
    }
    return out;
  });
  scope.dispose();
  x.dispose();
  // tf.profile also lists composite ops (logSoftmax__op) and unnamed entries: keep the real kernels.
  const real = kernels.filter((k) => tf.getKernel(k, 'cpu') !== undefined);
  expect(real).toEqual(expect.arrayContaining(['Max', 'Softmax', 'Round', 'Concat', 'Minimum', 'Maximum', 'Log1p', 'Select']));
  expect(missingKernels(real, 'wasm')).toEqual([]);
});

describe('detectors ask a runner for its capabilities, not for its classifier', () => {
  it('measures the energy and the embedding of runners with no tfjs classifier behind them, as with one', async () => {
    const x = tf.tensor2d(clean.x.subarray(0, 8 * 784), [8, 784]);
    for (const [model, spec, source] of [
      [withEnergy, `energy:model=${withEnergy.id}`, 'energy'],
      [withEmbedding, `prototype-distance:model=${withEmbedding.id}`, 'embedding'],
    ] as const) {
      const runner = asRunner(model);
      // What a native runner with these capabilities looks like: no tfjs classifier to reach into.
      const bare = { ...runner, classifier: undefined };
      const viaRunner = bindPlan(planDetectors([spec]), [bare]);
      expect(viaRunner.detectors[0]!.params.source).toBe(source);
      const reference = bindPlan(planDetectors([spec]), [model]);
      const [a, b] = [await runDetectors(viaRunner, [bare], x), await runDetectors(reference, [model], x)];
      expect(Array.from(a.scores[viaRunner.detectors[0]!.name]!)).toEqual(Array.from(b.scores[reference.detectors[0]!.name]!));
    }
    x.dispose();
  });
});
