/** Detector specs and plans, binding to models, and the adaptive-attack ensemble. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { initBackend, tf, type Tensor2D } from '../../src/backend/index.js';
import {
  bindPlan,
  detectorEnsemble,
  detectorNames,
  ensembleClassifier,
  planDetectors,
  planModels,
  runDetectors,
} from '../../src/detect/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import type { Classifier } from '../../src/models/classifier.js';
import { loadEmbeddingModel, loadModel, mnist, scoresOnly, tensors } from './helpers.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isAdvstreamError(e) ? e.code : `not an AdvstreamError: ${String(e)}`;
  }
  return undefined;
}

describe('planDetectors', () => {
  it('registers the six detectors in one list', () => {
    expect(detectorNames()).toEqual(['order-disagreement', 'feature-squeezing', 'noise-instability', 'prototype-distance', 'energy', 'combined']);
  });

  it('fills defaults and roles into canonical ids', () => {
    const plan = planDetectors(['order-disagreement', 'Noise-Instability:sigma=1/20', 'combined']);
    expect(plan.detectors.map((d) => d.id)).toEqual([
      'order-disagreement:divergence=js,high=zoo:dam-n20+zoo:dam-n30,low=zoo:mlp-relu,normalize=zscore,sharpness=4',
      'noise-instability:copies=16,model=zoo:mlp-relu,seed=0,sigma=0.05',
    ]);
    expect(plan.combined).toEqual({
      name: 'combined',
      id: 'combined:method=fisher,of=order-disagreement+noise-instability',
      params: { method: 'fisher' },
      of: ['order-disagreement', 'noise-instability'],
    });
    expect(plan.bound).toBe(false);
    expect(planModels(plan)).toEqual(['zoo:mlp-relu', 'zoo:dam-n20', 'zoo:dam-n30']);
    // An id parses back to the same detector.
    expect(planDetectors(plan.detectors.map((d) => d.id)).detectors).toEqual(plan.detectors);
  });

  it('takes models from the spec, then options by detector.role, then by role', () => {
    const plan = planDetectors(
      ['order-disagreement:high=runs/Dam20', 'energy', 'feature-squeezing:model=https://x.org/m/model.json'],
      { roles: { 'energy.model': 'zoo:dam-n30', model: 'zoo:maxout', low: ['zoo:dam-n2'] } },
    );
    expect(plan.detectors.map((d) => d.models)).toEqual([
      { low: ['zoo:dam-n2'], high: ['runs/Dam20'] },
      { model: ['zoo:dam-n30'] },
      { model: ['https://x.org/m/model.json'] },
    ]);
  });

  it.each([
    ['', 'BAD_SPEC'],
    ['nope', 'BAD_SPEC'],
    ['noise-instability:sigmaa=0.1', 'BAD_SPEC'],
    ['noise-instability:sigma=2', 'BAD_SPEC'],
    ['noise-instability:copies=1.5', 'BAD_SPEC'],
    ['order-disagreement:low=zoo:a+zoo:b', 'BAD_SPEC'],
    ['order-disagreement:divergence=kl', 'BAD_SPEC'],
  ])('rejects %j', (spec, code) => {
    expect(codeOf(() => planDetectors([spec]))).toBe(code);
  });

  it('rejects duplicate detectors, two combined scores, combining strangers and a plan of nothing', () => {
    expect(codeOf(() => planDetectors(['energy', 'energy:source=gap']))).toBe('BAD_SPEC');
    expect(codeOf(() => planDetectors(['energy', 'combined', 'combined:method=min-p']))).toBe('BAD_SPEC');
    expect(codeOf(() => planDetectors(['energy', 'combined:of=feature-squeezing']))).toBe('BAD_SPEC');
    expect(codeOf(() => planDetectors(['energy', 'combined:of=energy+energy']))).toBe('BAD_SPEC');
    expect(codeOf(() => planDetectors(['energy', 'combined:how=fisher']))).toBe('BAD_SPEC');
    expect(codeOf(() => planDetectors(['combined']))).toBe('BAD_ARGUMENT');
  });
});

describe('with models', () => {
  let mlp: Classifier;
  let dam20: Classifier;
  let dam30: Classifier;
  let embedding: Classifier;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    mlp = await loadModel('mlp');
    dam20 = await loadModel('dam-n20');
    dam30 = await loadModel('dam-n30');
    embedding = await loadEmbeddingModel();
  });

  afterAll(() => {
    for (const m of [mlp, dam20, dam30, embedding]) m.dispose();
  });

  it('binds auto sources to what the models offer, and refuses what they lack', () => {
    const plain = scoresOnly(dam20);
    const plan = planDetectors([`prototype-distance:model=${embedding.id}`, `energy:model=${dam20.id}`]);
    const bound = bindPlan(plan, [embedding, dam20]);
    expect(bound.detectors.map((d) => d.params.source)).toEqual(['embedding', 'energy']);
    expect(bound.detectors[0]!.id).toMatch(/source=embedding/);
    expect(bindPlan(bound, [embedding, dam20])).toEqual(bound);
    expect(bindPlan(planDetectors([`energy:model=${plain.id}`]), [plain]).detectors[0]!.params.source).toBe('gap');
    expect(codeOf(() => bindPlan(planDetectors([`prototype-distance:model=${mlp.id},source=embedding`]), [mlp]))).toBe('BAD_MODEL');
    expect(codeOf(() => bindPlan(planDetectors([`energy:model=${mlp.id},source=energy`]), [mlp]))).toBe('BAD_MODEL');
    expect(codeOf(() => bindPlan(planDetectors([`feature-squeezing:model=${mlp.id},bits=0,median=none`]), [mlp]))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => bindPlan(planDetectors(['feature-squeezing']), [mlp]))).toBe('BAD_ARGUMENT');
  });

  it('runs bound plans only, on the models they were bound to', async () => {
    const x = tf.zeros([2, 784]) as Tensor2D;
    const plan = planDetectors([`prototype-distance:model=${embedding.id}`]);
    await expect(runDetectors(plan, [embedding], x)).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    const bound = bindPlan(plan, [embedding]);
    // The same id without the extension would score by another formula than the plan says.
    const plain = { ...mlp, id: embedding.id };
    await expect(runDetectors(bound, [plain], x)).rejects.toMatchObject({ code: 'BAD_MODEL' });
    expect((await runDetectors(bound, [embedding], x)).count).toBe(2);
    x.dispose();
  });

  it('the sum ensemble adds (standardised) log-softmaxes; its ce loss is CE over them', async () => {
    const { x: x0, y: y0 } = tensors(await mnist('test', 0, 3));
    const raw = ensembleClassifier([mlp, dam20], { weights: [1, 2], normalize: 'none' });
    const z = ensembleClassifier([mlp, dam20]);
    expect(raw).toMatchObject({ id: `ensemble(${mlp.id}+${dam20.id})`, numClasses: 10, family: 'ensemble' });
    tf.tidy(() => {
      const close = (a: tf.Tensor, b: tf.Tensor) => expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-4);
      close(raw.scores(x0), tf.add(tf.logSoftmax(mlp.scores(x0)), tf.mul(2, tf.logSoftmax(dam20.scores(x0)))));
      const std = (s: Tensor2D) => {
        const { mean, variance } = tf.moments(s, 1, true);
        return tf.logSoftmax(tf.mul(4, tf.div(tf.sub(s, mean), tf.sqrt(variance))) as Tensor2D);
      };
      const want = tf.add(std(mlp.scores(x0)), std(dam20.scores(x0))) as Tensor2D;
      close(z.scores(x0), want);
      close(z.loss('ce', x0, y0), tf.neg(tf.sum(tf.mul(tf.logSoftmax(want), tf.oneHot(y0, 10)), 1)));
      close(z.loss('model', x0, y0), tf.add(mlp.loss('model', x0, y0), dam20.loss('model', x0, y0)));
    });
    tf.dispose([x0, y0]);
    expect(codeOf(() => ensembleClassifier([]))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => ensembleClassifier([mlp, dam20], { weights: [1] }))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => ensembleClassifier([mlp, { ...dam20, numClasses: 9 }]))).toBe('BAD_MODEL');
  });

  it('the agreement ensemble predicts a class only where every member does', async () => {
    const data = await mnist('test', 0, 200);
    const { x, y } = tensors(data);
    const joint = ensembleClassifier([mlp, dam20, dam30], { combine: 'agreement' });
    expect(joint.numClasses).toBe(11);
    const [pj, pm, p20, p30] = tf.tidy(() => [joint, mlp, dam20, dam30].map((m) => Array.from(tf.argMax(m.scores(x), 1).dataSync())));
    let disagreeing = 0;
    for (let i = 0; i < data.count; i++) {
      const all = pm![i] === p20![i] && pm![i] === p30![i];
      expect(pj![i]).toBe(all ? pm![i] : 10);
      if (!all) disagreeing++;
    }
    expect(disagreeing).toBeGreaterThan(0);
    tf.dispose([x, y]);
  });

  it('an adaptive attack on the detector ensemble evades order-disagreement, one on the low model does not', async () => {
    const models = [mlp, dam20, dam30];
    const plan = bindPlan(planDetectors([`order-disagreement:low=${mlp.id},high=${dam20.id}+${dam30.id}`]), models);
    const joint = detectorEnsemble(plan, 'order-disagreement', models);
    expect(joint.id).toBe(`agreement(${mlp.id}+${dam20.id}+${dam30.id})`);
    const data = await mnist('test', 0, 100);
    const { x, y } = tensors(data);
    const targets = tf.tensor1d(Array.from(data.y, (v) => (v + 1) % 10), 'int32');
    const before = tf.memory().numTensors;
    const attack = parseAttackSpec('pgd:eps=0.3,steps=40');
    const plain = await attack.run(mlp, x, y, { seed: 1, targets });
    const adaptive = await attack.run(joint, x, y, { seed: 1, targets });
    expect(tf.memory().numTensors).toBe(before);
    const judge = async (adv: Float32Array, success: Uint8Array) => {
      const t = tf.tensor2d(adv, [100, 784]);
      const { evidence, scores } = await runDetectors(plan, models, t);
      t.dispose();
      const hit = [...success.keys()].filter((i) => success[i] === 1);
      const ev = hit.map((i) => evidence[i]!['order-disagreement']!);
      return {
        count: hit.length,
        disagree: ev.filter((e) => e.disagree === true).length / hit.length,
        allOnTarget: hit.every((i, k) => ev[k]!.low === (data.y[i]! + 1) % 10 && (ev[k]!.high as number[]).every((h) => h === ev[k]!.low)),
        meanScore: hit.reduce((s, i) => s + scores['order-disagreement']![i]!, 0) / hit.length,
      };
    };
    const p = await judge(plain.adversarial, plain.success);
    const a = await judge(adaptive.adversarial, adaptive.success);
    expect(p.disagree).toBeGreaterThan(0.8);
    expect(a.count).toBeGreaterThan(30);
    expect(a.allOnTarget).toBe(true);
    expect(a.disagree).toBe(0);
    expect(a.meanScore).toBeLessThan(p.meanScore);
    tf.dispose([x, y, targets]);
  });
});
