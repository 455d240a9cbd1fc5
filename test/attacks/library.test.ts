/**
 * The attacks added for a complete library do what their papers say, on the small trained test
 * models: FAB and FAB-T (minimum-norm, box-constrained projections), HopSkipJump (labels only),
 * Sparse-RS (L0), SLIDE (L1), targeted PGD, EOT, AutoAttack's standard and rand versions, and the
 * L1 / L0 norms every result carries.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import {
  AutoAttack,
  boxProjection,
  L1,
  parseAttackSpec,
  type AttackResult,
} from '../../src/attacks/index.js';
import type { Classifier, LossName } from '../../src/models/classifier.js';
import { tfjsRunner, type ModelRunner } from '../../src/models/runner.js';
import { isAdvstreamError } from '../../src/errors.js';
import { Robustness } from '../../src/stats/robustness.js';
import { build, mnist, rows, tensors, trainZoo, type FamilyName, type Slice, type Zoo } from './fixtures.js';

let zoo: Zoo;
const test = mnist('t10k', 200, 32);

beforeAll(async () => {
  zoo = await trainZoo();
  await initBackend({ backend: 'wasm' });
});

async function run(spec: string, family: FamilyName | Classifier | ModelRunner, batch: Slice = test, seed = 3): Promise<AttackResult> {
  const model = typeof family === 'string' ? build(zoo, family) : family;
  const { x, labels } = tensors(batch);
  try {
    return await parseAttackSpec(spec).run(model, x, labels, { seed });
  } finally {
    tf.dispose([x, labels]);
    if (typeof family === 'string') model.dispose();
  }
}

function robustAccuracy(r: AttackResult, batch: Slice = test): number {
  let robust = 0;
  for (let i = 0; i < r.count; i++) if (r.predicted[i] === batch.labels[i]) robust++;
  return robust / r.count;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The sizes of the successful perturbations of samples the model had right. */
function successSizes(r: AttackResult, sizes: Float32Array): number[] {
  return Array.from(sizes).filter((v, i) => r.success[i] && v > 0);
}

describe('box-constrained projections (FAB)', () => {
  it('land on the hyperplane inside the box, by the smallest move in each norm', () => {
    const p = tf.tensor2d([0, 0.5, 1, 0.2, 0.9, 0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 1, 1, 0, 0, 0.5, 0.5], [3, 6]);
    const w = tf.tensor2d([1, -2, 0.5, 3, -1, 0.1, 1, 1, 1, 1, 1, 1, -1, 2, -3, 0.5, 1, -1], [3, 6]);
    const c = tf.tensor2d([0.7, 2.4, -0.2], [3, 1]);
    for (const norm of ['linf', 'l2', 'l1'] as const) {
      const d = boxProjection(norm, p, w, c);
      const moved = tf.add(p, d);
      const reach = Array.from(tf.sum(tf.mul(w, moved), 1).dataSync());
      reach.forEach((v, i) => expect(v, `${norm} row ${i}`).toBeCloseTo(c.dataSync()[i]!, 4));
      expect(tf.min(moved).dataSync()[0]!).toBeGreaterThanOrEqual(0);
      expect(tf.max(moved).dataSync()[0]!).toBeLessThanOrEqual(1);
      tf.dispose([d, moved]);
    }
    const dd = (norm: 'linf' | 'l2' | 'l1'): number[] => {
      const d = boxProjection(norm, p, w, c);
      const out = Array.from(d.dataSync());
      d.dispose();
      return out;
    };
    // Row 2 (all weights 1, need 0.6, room 0.7 everywhere): L∞ spreads evenly, L2 likewise, L1 fills one coordinate.
    expect(dd('linf').slice(6, 12).every((v) => Math.abs(v - 0.1) < 1e-5)).toBe(true);
    expect(dd('l2').slice(6, 12).every((v) => Math.abs(v - 0.1) < 1e-5)).toBe(true);
    expect(dd('l1').slice(6, 12).filter((v) => v !== 0)).toEqual([expect.closeTo(0.6, 5)]);
    // Row 3, L1: the largest |w| (−3, at a pixel at 0, moving up) takes it all.
    expect(dd('l1').slice(12, 18).map((v) => Number(v.toFixed(4)))).toEqual([0, 0, 0.4, 0, 0, 0]);
    // Row 1, L2: the pixel at the upper bound with w > 0 cannot move, the others take λ·w.
    const l2 = dd('l2').slice(0, 6);
    expect(l2[2]).toBe(0);
    tf.dispose([p, w, c]);
  });

  it('go as far as the box allows toward a hyperplane beyond it', () => {
    const far = tf.tensor2d([100], [1, 1]);
    const q = tf.tensor2d([0.2, 0.8], [1, 2]);
    const v = tf.tensor2d([1, -1], [1, 2]);
    for (const norm of ['linf', 'l2', 'l1'] as const) {
      const d = boxProjection(norm, q, v, far);
      expect(Array.from(tf.add(q, d).dataSync()).map((x) => Number(x.toFixed(5))), norm).toEqual([1, 0]);
      d.dispose();
    }
    tf.dispose([far, q, v]);
  });
});

describe('the L1 ball', () => {
  it('projects by a soft threshold onto the ball, leaving points inside unchanged', () => {
    const x0 = tf.zeros([2, 5]) as Tensor2D;
    const x = tf.tensor2d([3, -1, 0.5, 0, 2, 0.1, -0.1, 0.2, 0, 0], [2, 5]);
    const eps = tf.tensor2d([2, 1], [2, 1]);
    const out = Array.from(L1.project(x0, x, eps).dataSync());
    // Row 1: θ = 1.5 (3 − θ + 2 − θ = 2); row 2 is inside.
    expect(out.slice(0, 5).map((v) => Number(v.toFixed(5)))).toEqual([1.5, 0, 0, 0, 0.5]);
    expect(out.slice(5)).toEqual(Array.from(x.dataSync()).slice(5));
    tf.dispose([x0, x, eps]);
  });
});

describe('FAB', () => {
  it('on a linear model finds the distance to the boundary, as small as DeepFool or smaller', async () => {
    const fab = await run('fab:norm=l2,steps=30', 'linear');
    const deepfool = await run('deepfool:steps=50', 'linear');
    let both = 0;
    let ratio = 0;
    for (let i = 0; i < fab.count; i++) {
      if (!fab.success[i] || !deepfool.success[i] || deepfool.l2[i] === 0) continue;
      both++;
      ratio += fab.l2[i]! / deepfool.l2[i]!;
    }
    expect(both).toBeGreaterThan(fab.count / 2);
    expect(ratio / both).toBeLessThan(1.01);
    expect(robustAccuracy(fab)).toBe(0);
  });

  it('FAB-T\'s median L∞ on an MLP matches the minimal ε of PGD, and FAB finds it too', async () => {
    const fabT = await run('fab-t:steps=50,targets=3', 'mlp');
    const fab = await run('fab:steps=30', 'mlp');
    const mineps = await run('mineps:attack=pgd,steps=40,max=0.5,tol=0.0025', 'mlp');
    const reference = median(Array.from(mineps.minEpsilon!).filter((e) => e > 0 && Number.isFinite(e)));
    for (const r of [fabT, fab]) {
      expect(robustAccuracy(r), r.id).toBe(0);
      const m = median(successSizes(r, r.linf));
      expect(m, r.id).toBeLessThan(reference * 1.1);
      expect(m, r.id).toBeGreaterThan(reference * 0.7);
    }
    // Each FAB-T step costs one gradient and one forward; FAB's one gradient per other class.
    expect(Math.max(...fabT.gradients)).toBeLessThanOrEqual(3 * 50);
    expect(Math.max(...fab.gradients)).toBe(9 * 30);
  });

  it('minimises L1 sparsely: smaller L1 than SLIDE needs at a fixed ε', async () => {
    const fab = await run('fab:norm=l1,steps=30', 'mlp');
    expect(robustAccuracy(fab)).toBe(0);
    const m = median(successSizes(fab, fab.l1));
    // SLIDE at FAB's median L1 leaves more robust than FAB's half.
    const slide = await run(`slide:eps=${m},steps=40`, 'mlp');
    expect(Math.max(...slide.l1)).toBeLessThanOrEqual(m * (1 + 1e-5));
    expect(robustAccuracy(slide)).toBeGreaterThan(0.3);
    const strong = await run(`slide:eps=${4 * m},steps=40`, 'mlp');
    expect(robustAccuracy(strong)).toBeLessThan(robustAccuracy(slide));
  });

  it('is the engine of the minimal-ε curve', async () => {
    const r = await run('mineps:attack=fab,norm=l2,steps=10', 'mlp');
    for (let i = 0; i < r.count; i++) expect(r.minEpsilon![i]).toBe(r.success[i] ? r.l2[i] : Infinity);
  });
});

/** The model behind a label-only service: the scores carry nothing but the predicted class. */
function labelsOnly(model: Classifier): ModelRunner {
  const inner = tfjsRunner(model);
  return {
    ...inner,
    id: `labels:${model.id}`,
    gradientEngine: 'none',
    classifier: undefined,
    scores: async (x: Tensor2D) => {
      const s = await inner.scores(x);
      const hot = tf.tidy(() => tf.oneHot(tf.argMax(s, 1), model.numClasses).cast('float32') as Tensor2D);
      s.dispose();
      return hot;
    },
  };
}

describe('HopSkipJump', () => {
  const batch = rows(test, 0, 12);

  it('reads only the predicted class: a label-only model gives the very same attack', async () => {
    const model = build(zoo, 'mlp');
    try {
      const direct = await run('hsj:steps=3,evals=20', model, batch);
      const blind = await run('hsj:steps=3,evals=20', labelsOnly(model), batch);
      expect(Buffer.from(blind.adversarial.buffer).equals(Buffer.from(direct.adversarial.buffer))).toBe(true);
      expect(Array.from(blind.forwards)).toEqual(Array.from(direct.forwards));
      expect(Math.max(...direct.gradients)).toBe(0);
    } finally {
      model.dispose();
    }
  });

  it('shrinks toward the boundary with its iterations, to within 2× DeepFool (white-box) on an MLP after ~2,000 queries', async () => {
    const early = await run('hsj:steps=1,evals=50', 'mlp', batch);
    const late = await run('hsj:steps=15,evals=50', 'mlp', batch);
    const deepfool = await run('deepfool:steps=50', 'mlp', batch);
    expect(robustAccuracy(late, batch)).toBe(0);
    expect(median(successSizes(late, late.l2))).toBeLessThan(0.7 * median(successSizes(early, early.l2)));
    expect(median(successSizes(late, late.l2))).toBeLessThan(2 * median(successSizes(deepfool, deepfool.l2)));
    const linf = await run('hsj:norm=linf,steps=10,evals=50', 'mlp', batch);
    expect(robustAccuracy(linf, batch)).toBe(0);
    expect(median(successSizes(linf, linf.linf))).toBeLessThan(0.3);
  });
});

describe('Sparse-RS', () => {
  it('changes at most k values, each to 0 or 1, and breaks most of an MLP without gradients', async () => {
    const r = await run('sparse-rs:eps=20,queries=500', 'mlp');
    expect(Math.max(...r.l0)).toBeLessThanOrEqual(20);
    for (let i = 0; i < r.count; i++) {
      for (let d = 0; d < r.dim; d++) {
        const v = r.adversarial[i * r.dim + d]!;
        if (v !== test.x[i * r.dim + d]) expect(v === 0 || v === 1).toBe(true);
      }
    }
    expect(Math.max(...r.gradients)).toBe(0);
    expect(Math.max(...r.forwards)).toBeLessThanOrEqual(500);
    expect(robustAccuracy(r)).toBeLessThan(0.3);
    const few = await run('sparse-rs:eps=2,queries=500', 'mlp');
    expect(robustAccuracy(few)).toBeGreaterThan(robustAccuracy(r));
  });
});

describe('targeted PGD', () => {
  it('heads for the rule\'s target and succeeds only on it', async () => {
    const clean = await run('pgd:eps=0.0001,steps=1', 'mlp');
    for (const [rule, expected] of [
      ['next', (i: number) => (test.labels[i]! + 1) % 10],
      ['4', () => 4],
    ] as const) {
      const r = await run(`pgd:eps=0.3,steps=30,target=${rule}`, 'mlp');
      expect(r.id).toContain(`target=${rule}`);
      for (let i = 0; i < r.count; i++) {
        expect(r.targets![i], `${rule} sample ${i}`).toBe(expected(i));
        expect(r.success[i]).toBe(r.predicted[i] === r.targets![i] ? 1 : 0);
      }
      expect(r.success.reduce((s, v) => s + v, 0) / r.count, rule).toBeGreaterThan(0.8);
    }
    const random = await run('pgd:eps=0.3,steps=30,target=random', 'mlp');
    random.targets!.forEach((t, i) => expect(t).not.toBe(test.labels[i]));
    expect(new Set(random.targets).size).toBeGreaterThan(3);
    expect(Array.from((await run('pgd:eps=0.3,steps=30,target=random', 'mlp')).targets!)).toEqual(Array.from(random.targets!));
    const least = await run('pgd:eps=0.3,steps=30,target=least', 'mlp');
    const model = build(zoo, 'mlp');
    const s = tf.tidy(() => tf.argMin(model.scores(tf.tensor2d(test.x, [test.count, 784])), 1));
    expect(Array.from(least.targets!)).toEqual(Array.from(await s.data()));
    tf.dispose(s);
    model.dispose();
    expect(clean.targets).toBeUndefined();
    expect(parseAttackSpec('pgd:eps=0.3').id).toBe('pgd:eps=0.3,loss=ce,norm=linf,random=true,restarts=1,step=0.01875,steps=40');
  });

  it('refuses unknown rules and classes the model lacks', async () => {
    let e: unknown;
    try {
      parseAttackSpec('pgd:target=nearest');
    } catch (error) {
      e = error;
    }
    expect(isAdvstreamError(e) && e.code).toBe('BAD_SPEC');
    const error = await run('pgd:steps=1,target=12', 'mlp').catch((err: unknown) => err);
    expect(isAdvstreamError(error) && error.code).toBe('ATTACK_UNSUPPORTED');
  });
});

/**
 * A linear model whose weights alternate between two matrices on every scores call: the simplest
 * randomised model, whose expected gradient is the mean of the two.
 */
class Alternating implements Classifier {
  readonly id = 'test:alternating';
  readonly family = 'alternating';
  readonly inputShape = [28, 28, 1] as const;
  readonly numClasses = 10;
  private calls = 0;
  constructor(private readonly weights: [tf.Tensor2D, tf.Tensor2D]) {}
  scores(x: Tensor2D): Tensor2D {
    return tf.matMul(x, this.weights[this.calls++ % 2]!);
  }
  loss(_name: LossName, x: Tensor2D, labels: Tensor1D): Tensor1D {
    return tf.tidy(() => tf.neg(tf.sum(tf.mul(tf.logSoftmax(this.scores(x)), tf.oneHot(labels, 10)), 1)) as Tensor1D);
  }
  dispose(): void {
    tf.dispose(this.weights);
  }
}

describe('expectation over transformation', () => {
  it('averages the gradients of a randomised model, and charges each evaluation', async () => {
    const a = zoo.linear.layers[0]!;
    const flipped = a.w.map((v, i) => (i % 3 === 0 ? -v : v));
    const make = (): Alternating => new Alternating([tf.tensor2d(a.w, [784, 10]), tf.tensor2d(flipped, [784, 10])]);
    const batch = rows(test, 0, 4);
    const one = make();
    const two = make();
    const single = await run('fgm:eps=1', one, batch);
    const mean = await run('fgm:eps=1,eot=2', two, batch);
    expect(single.gradients.every((g) => g === 1)).toBe(true);
    expect(mean.gradients.every((g) => g === 2)).toBe(true);
    // The expected gradient of the pair differs from the first draw's.
    expect(Buffer.from(mean.adversarial.buffer).equals(Buffer.from(single.adversarial.buffer))).toBe(false);
    one.dispose();
    two.dispose();
    // On a deterministic model EOT changes nothing but the cost.
    const plain = await run('pgd:eps=0.1,steps=3', 'mlp', batch);
    const eot = await run('pgd:eps=0.1,steps=3,eot=3', 'mlp', batch);
    expect(Array.from(eot.success)).toEqual(Array.from(plain.success));
    expect(eot.adversarial.reduce((m, v, i) => Math.max(m, Math.abs(v - plain.adversarial[i]!)), 0)).toBeLessThan(1e-5);
    expect(Math.max(...eot.gradients)).toBe(3 * Math.max(...plain.gradients));
    expect(parseAttackSpec('apgd-ce:eps=0.3').id).toBe('apgd-ce:eps=0.3,loss=ce,norm=linf,restarts=1,rho=0.75,steps=100');
  });
});

describe('AutoAttack versions', () => {
  it('standard puts FAB-T before Square and is at least as strong as the fast cascade', async () => {
    expect(new AutoAttack({ version: 'standard' }).stages(10).map((a) => a.name)).toEqual(['apgd-ce', 'apgd-t', 'fab-t', 'square']);
    expect(new AutoAttack({ version: 'rand' }).stages(10).map((a) => a.id)).toEqual([
      'apgd-ce:eot=20,eps=0.3,loss=ce,norm=linf,restarts=1,rho=0.75,steps=100',
      'apgd-dlr:eot=20,eps=0.3,norm=linf,restarts=1,rho=0.75,steps=100',
    ]);
    const fast = await run('autoattack:eps=0.05,steps=10,targets=3,queries=100', 'poly');
    const standard = await run('autoattack:eps=0.05,steps=10,targets=3,queries=100,version=standard', 'poly');
    expect(robustAccuracy(standard)).toBeLessThanOrEqual(robustAccuracy(fast));
    expect(Math.max(...standard.linf)).toBeLessThanOrEqual(0.05 + 1e-6);
    const { stages, brokenBy } = standard.cascade!;
    expect(stages[3]).toBe('fab-t:alpha=0.1,beta=0.9,eps=0.05,eta=1.05,norm=linf,restarts=1,steps=10,targets=3');
    // APGD-CE and APGD-T run with the seeds of the fast cascade: they break the same samples.
    for (let i = 0; i < fast.count; i++) if (fast.cascade!.brokenBy[i]! <= 2) expect(brokenBy[i]).toBe(fast.cascade!.brokenBy[i]);
  });

  it('rand attacks with EOT and reports its gradient cost', async () => {
    const r = await run('autoattack:eps=0.1,steps=5,version=rand,eot=2', 'mlp', rows(test, 0, 8));
    expect(r.cascade!.stages.slice(1).map((s) => s.split(':')[0])).toEqual(['apgd-ce', 'apgd-dlr']);
    expect(robustAccuracy(r, rows(test, 0, 8))).toBeLessThan(0.5);
    // Every APGD step costs eot gradients: even counts only.
    expect(Array.from(r.gradients).every((g) => g % 2 === 0)).toBe(true);
  });
});

describe('L1 and L0 in the statistics', () => {
  it('are summarised beside L∞ and L2 when samples carry them, and absent otherwise', () => {
    const withNorms = new Robustness()
      .add({ label: 1, cleanPred: 1, advPred: 2, success: true, linf: 0.2, l2: 1, l1: 4, l0: 10, advConfidence: 0.9 })
      .add({ label: 1, cleanPred: 1, advPred: 3, success: true, linf: 0.3, l2: 2, l1: 6, l0: 30, advConfidence: 0.8 })
      .add({ label: 1, cleanPred: 2, advPred: 2, success: true, linf: 0, l2: 0, l1: 0, l0: 0, advConfidence: 0.8 });
    const s = withNorms.summary();
    expect(s.mean_l1).toBeCloseTo(5, 10);
    expect(s.mean_l0).toBeCloseTo(20, 10);
    expect(s.median_l0).toBeGreaterThanOrEqual(10);
    const again = Robustness.fromJSON(JSON.parse(JSON.stringify(withNorms.toJSON())));
    expect(again.summary()).toEqual(s);
    const merged = new Robustness().merge(withNorms).summary();
    expect(merged.mean_l1).toBeCloseTo(5, 10);
    const without = new Robustness().add({ label: 1, cleanPred: 1, advPred: 2, success: true, linf: 0.2, l2: 1, advConfidence: 0.9 }).summary();
    expect('mean_l1' in without || 'mean_l0' in without).toBe(false);
    expect(() => new Robustness().add({ label: 1, cleanPred: 1, advPred: 2, success: true, linf: 0.2, l2: 1, l1: -1, advConfidence: 0.9 })).toThrow();
  });
});

describe('specs of the new attacks', () => {
  it('have the canonical ids their doc comments show, and parse back to themselves', () => {
    const ids = {
      'fab:norm=l2': 'fab:alpha=0.1,beta=0.9,eps=2,eta=1.05,norm=l2,restarts=1,steps=100',
      'fab-t': 'fab-t:alpha=0.1,beta=0.9,eps=0.3,eta=1.05,norm=linf,restarts=1,steps=100,targets=9',
      'hsj:steps=20': 'hsj:evals=100,gamma=1,init=100,maxevals=10000,norm=l2,steps=20',
      'sparse-rs:eps=12,queries=1000': 'sparse-rs:eps=12,pinit=0.3,queries=1000',
      slide: 'slide:eps=10,loss=ce,random=true,restarts=1,sparsity=0.99,step=0.625,steps=40',
      'autoattack:version=standard': 'autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9,version=standard',
      'autoattack:version=rand': 'autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9,version=rand',
      'autoattack:version=fast': 'autoattack:eps=0.3,norm=linf,queries=5000,steps=100,targets=9',
      'pgd:target=least,eot=4': 'pgd:eot=4,eps=0.3,loss=ce,norm=linf,random=true,restarts=1,step=0.01875,steps=40,target=least',
      'mineps:attack=fab-t,norm=l2': 'mineps:alpha=0.1,attack=fab-t,beta=0.9,eps=2,eta=1.05,max=10,norm=l2,restarts=1,steps=100,targets=9,tol=0.05',
    };
    for (const [spec, id] of Object.entries(ids)) {
      expect(parseAttackSpec(spec).id, spec).toBe(id);
      expect(parseAttackSpec(id).id, id).toBe(id);
    }
  });
});
