/**
 * The contract every registered attack keeps, on every test model family and every backend
 * (STYLE principle 12): inside the ε ball and [0,1], lowers accuracy of a trained model, the same
 * results under the same seed, no tensor left behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { ATTACKS, FixedEpsilonAttack, parseAttackSpec, type Attack, type AttackResult } from '../../src/attacks/index.js';
import type { Classifier } from '../../src/models/classifier.js';
import { tfjsRunner, type ModelRunner } from '../../src/models/runner.js';
import { EXPORTABLE_FAMILIES, exportFamily, type PlainWeights } from '../../src/engine/export.js';
import { FamilyRunner } from '../../src/engine/native.js';
import { getFamily, FAMILIES as REGISTERED_FAMILIES } from '../../src/models/registry.js';
import { TINY } from '../models/helpers.js';
import { build, FAMILIES, mnist, rows, tensors, trainZoo, type Slice, type Zoo } from './fixtures.js';

/** Every registered model family, small and freshly initialised (seeded): the zoo's own code paths. */
const REGISTERED = TINY.map((t) => ({ name: `${t.family}:${t.label}`, family: t.family, options: { ...t.options, ...t.gradOptions } }));

function buildRegistered(r: (typeof REGISTERED)[number]): Classifier {
  const f = getFamily(r.family);
  const config = f.configure(r.options);
  return f.build(`test:${r.name}`, config, f.init(config, 11));
}

/** Small budgets per registered attack; every norm and mode worth a run. */
const CHEAP: Readonly<Record<string, readonly string[]>> = {
  fgsm: ['fgsm:eps=0.1', 'fgsm:eps=0.2,clip=false'],
  fgm: ['fgm:eps=1.5'],
  bim: ['bim:eps=0.1,steps=4'],
  pgd: ['pgd:eps=0.1,steps=4,restarts=2', 'pgd:norm=l2,eps=1.5,steps=4,loss=model', 'pgd:eps=0.15,steps=4,target=least'],
  slide: ['slide:eps=8,steps=4'],
  mifgsm: ['mifgsm:eps=0.1,steps=4'],
  'apgd-ce': ['apgd-ce:eps=0.1,steps=6', 'apgd-ce:norm=l2,eps=1.5,steps=6,loss=model'],
  'apgd-dlr': ['apgd-dlr:eps=0.1,steps=6'],
  'apgd-t': ['apgd-t:eps=0.1,steps=4,targets=2'],
  square: ['square:eps=0.1,queries=40', 'square:norm=l2,eps=2,queries=40'],
  'sparse-rs': ['sparse-rs:eps=12,queries=40'],
  cw: ['cw:searches=2,steps=15,c=1,lr=0.05'],
  deepfool: ['deepfool:steps=20,candidates=4', 'deepfool:norm=linf,steps=30,candidates=3'],
  fab: ['fab:steps=2', 'fab:norm=l1,steps=2,restarts=2'],
  'fab-t': ['fab-t:norm=l2,steps=3,targets=1'],
  hsj: ['hsj:steps=2,evals=6,init=10', 'hsj:norm=linf,steps=1,evals=6,init=8'],
  'dam-boundary': ['dam-boundary:steps=30,step=0.02'],
  mineps: ['mineps:attack=bim,steps=3,tol=0.1', 'mineps:attack=deepfool,steps=20,candidates=3', 'mineps:attack=fab-t,steps=2,targets=1'],
  autoattack: [
    'autoattack:eps=0.1,steps=4,targets=2,queries=30',
    'autoattack:eps=0.1,steps=3,targets=2,queries=20,version=standard',
    'autoattack:norm=l2,eps=1.5,steps=3,version=rand,eot=2',
  ],
};

const BATCH = 8;

function sameResult(a: AttackResult, b: AttackResult): boolean {
  const bytes = (v: ArrayBufferView): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const fields = ['adversarial', 'success', 'predicted', 'l2', 'linf', 'l1', 'l0', 'loss', 'gradients', 'forwards'] as const;
  return a.id === b.id && fields.every((f) => bytes(a[f]).equals(bytes(b[f])));
}

/** Norms recomputed from the pixels, not taken from the result. */
function norms(clean: Slice, res: AttackResult): { linf: number[]; l2: number[]; l1: number[]; l0: number[]; lo: number; hi: number } {
  const linf: number[] = [];
  const l2: number[] = [];
  const l1: number[] = [];
  const l0: number[] = [];
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < res.count; i++) {
    let mx = 0;
    let sq = 0;
    let abs = 0;
    let changed = 0;
    for (let d = 0; d < res.dim; d++) {
      const v = res.adversarial[i * res.dim + d]!;
      const diff = v - clean.x[i * res.dim + d]!;
      mx = Math.max(mx, Math.abs(diff));
      sq += diff * diff;
      abs += Math.abs(diff);
      if (diff !== 0) changed++;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    linf.push(mx);
    l2.push(Math.sqrt(sq));
    l1.push(abs);
    l0.push(changed);
  }
  return { linf, l2, l1, l0, lo, hi };
}

/** The largest norm inside the ε ball, up to float32 rounding (relative for L1, a sum of 784 terms). */
function ballLimit(a: FixedEpsilonAttack): number {
  return a.distance.name === 'l1' ? a.epsilon * (1 + 1e-5) : a.epsilon + 1e-6;
}

/** Success is the verdict on the prediction: the target hit in a targeted run, else a misclassification. */
function verdict(res: AttackResult, batch: Slice, i: number): 0 | 1 {
  const hit = res.targets ? res.predicted[i] === res.targets[i] : res.predicted[i] !== batch.labels[i];
  return hit ? 1 : 0;
}

async function attack(a: Attack, model: Classifier | ModelRunner, batch: Slice, seed: number): Promise<AttackResult> {
  const { x, labels } = tensors(batch);
  try {
    return await a.run(model, x, labels, { seed });
  } finally {
    tf.dispose([x, labels]);
  }
}

it('has cheap budgets for every registered attack, and only for those', () => {
  expect(Object.keys(CHEAP).sort()).toEqual(ATTACKS.map((e) => e.name).sort());
});

it('covers every registered model family', () => {
  expect(new Set(REGISTERED.map((r) => r.family))).toEqual(new Set(REGISTERED_FAMILIES.map((f) => f.name)));
});

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`every attack on ${backend}`, () => {
    let zoo: Zoo;
    const test = mnist('t10k', 0, 2 * BATCH);
    const first = rows(test, 0, BATCH);
    const second = rows(test, BATCH, BATCH);

    beforeAll(async () => {
      zoo = await trainZoo();
      await initBackend({ backend });
    });

    for (const entry of ATTACKS) {
      for (const spec of CHEAP[entry.name] ?? []) {
        it(`${spec} keeps the contract on every family`, async () => {
          const a = parseAttackSpec(spec);
          const models: [string, () => Classifier][] = [
            ...FAMILIES.map((f): [string, () => Classifier] => [f, () => build(zoo, f)]),
            ...REGISTERED.map((r): [string, () => Classifier] => [r.name, () => buildRegistered(r)]),
          ];
          for (const [family, make] of models) {
            const model = make();
            const where = `${spec} on ${family}/${backend}`;
            try {
              const before = tf.memory().numTensors;
              const r1 = await attack(a, model, first, 7);
              const afterOne = tf.memory().numTensors;
              const r2 = await attack(a, model, first, 7);
              const r3 = await attack(a, model, second, 8);
              expect(tf.memory().numTensors, `${where}: tensors after 3 batches`).toBe(afterOne);
              expect(afterOne, `${where}: tensors after 1 batch`).toBe(before);

              expect(r1.id).toBe(a.id);
              expect(sameResult(r1, r2), `${where}: same seed, same result`).toBe(true);

              for (const [res, batch] of [[r1, first], [r3, second]] as const) {
                const got = norms(batch, res);
                if (a instanceof FixedEpsilonAttack) {
                  const size = got[a.distance.name];
                  expect(Math.max(...size), `${where}: inside the ε ball`).toBeLessThanOrEqual(ballLimit(a));
                }
                if (a.bounded) {
                  expect(got.lo, `${where}: ≥ 0`).toBeGreaterThanOrEqual(0);
                  expect(got.hi, `${where}: ≤ 1`).toBeLessThanOrEqual(1);
                }
                got.linf.forEach((v, i) => expect(Math.abs(v - res.linf[i]!), `${where}: reported L∞`).toBeLessThan(1e-5));
                got.l2.forEach((v, i) => expect(Math.abs(v - res.l2[i]!), `${where}: reported L2`).toBeLessThan(1e-4));
                got.l1.forEach((v, i) => expect(Math.abs(v - res.l1[i]!), `${where}: reported L1`).toBeLessThan(1e-3 * Math.max(1, v)));
                got.l0.forEach((v, i) => expect(res.l0[i], `${where}: reported L0`).toBe(v));
                for (let i = 0; i < res.count; i++) {
                  expect(res.success[i], `${where}: success is the verdict on the prediction`).toBe(verdict(res, batch, i));
                }
              }

              const cleanHits = (await attackFree(model, first)).filter((h) => h).length;
              // Targeted runs: a misclassification short of the target still counts as broken here.
              const broken = r1.targets ? r1.predicted.filter((p, i) => p !== first.labels[i]).length : r1.success.reduce((s, v) => s + v, 0);
              expect(broken, `${where}: misclassified clean stay misclassified`).toBeGreaterThanOrEqual(BATCH - cleanHits);
              if (family === 'mlp') expect(broken, `${where}: lowers the accuracy of a trained model`).toBeGreaterThan(BATCH - cleanHits);
            } finally {
              model.dispose();
            }
          }
        });
      }
    }
  });
}

/**
 * A registered family on the native engine, as `--engine auto` builds it: ONNX Runtime for what the
 * family exports, tfjs behind it for the rest (and for families without an export).
 */
async function nativeRegistered(r: (typeof REGISTERED)[number]): Promise<ModelRunner> {
  const f = getFamily(r.family);
  const config = f.configure(r.options);
  const weights = f.init(config, 11);
  const plain: PlainWeights = {};
  for (const [name, t] of Object.entries(weights)) plain[name] = { shape: [...t.shape], data: Float32Array.from(t.dataSync()) };
  const classifier = f.build(`test:${r.name}`, config, weights);
  if (!EXPORTABLE_FAMILIES.includes(r.family)) return tfjsRunner(classifier);
  const graphs = await exportFamily(r.family, config, plain, classifier.id);
  return FamilyRunner.create({ id: classifier.id, inputShape: classifier.inputShape, graphs, provider: 'cpu', fallback: tfjsRunner(classifier) });
}

describe('every attack on the native engine', () => {
  const test = mnist('t10k', 0, 2 * BATCH);
  const first = rows(test, 0, BATCH);
  const second = rows(test, BATCH, BATCH);
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  for (const entry of ATTACKS) {
    for (const spec of CHEAP[entry.name] ?? []) {
      it(`${spec} keeps the contract on every registered family`, async () => {
        const a = parseAttackSpec(spec);
        for (const r of REGISTERED) {
          const model = await nativeRegistered(r);
          const where = `${spec} on ${r.name}/${model.engine}`;
          try {
            const afterBuild = tf.memory().numTensors;
            const r1 = await attack(a, model, first, 7);
            const r2 = await attack(a, model, first, 7);
            const r3 = await attack(a, model, second, 8);
            expect(tf.memory().numTensors, `${where}: tensors after 3 batches`).toBe(afterBuild);
            expect(sameResult(r1, r2), `${where}: same seed, same result`).toBe(true);
            for (const [res, batch] of [[r1, first], [r3, second]] as const) {
              const got = norms(batch, res);
              if (a instanceof FixedEpsilonAttack) {
                const size = got[a.distance.name];
                expect(Math.max(...size), `${where}: inside the ε ball`).toBeLessThanOrEqual(ballLimit(a));
              }
              if (a.bounded) {
                expect(got.lo, `${where}: ≥ 0`).toBeGreaterThanOrEqual(0);
                expect(got.hi, `${where}: ≤ 1`).toBeLessThanOrEqual(1);
              }
              for (let i = 0; i < res.count; i++) {
                expect(res.success[i], `${where}: success is the verdict on the prediction`).toBe(verdict(res, batch, i));
              }
            }
          } finally {
            model.dispose();
          }
        }
      });
    }
  }
});

/** Per sample, whether the model is right on the clean input. */
async function attackFree(model: Classifier, batch: Slice): Promise<boolean[]> {
  const { x, labels } = tensors(batch);
  const hit = tf.tidy(() => tf.equal(tf.argMax(model.scores(x), 1), labels));
  const out = Array.from(await hit.data(), (v) => v === 1);
  tf.dispose([x, labels, hit]);
  return out;
}
