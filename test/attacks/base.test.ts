/** What the base classes guarantee to every attack, and the small values they are built from. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import {
  FixedEpsilonAttack,
  L0,
  L2,
  Linf,
  LinfPgd,
  misclassification,
  parseAttackSpec,
  targetedMisclassification,
  type FixedEpsilonContext,
  type SearchOutput,
} from '../../src/attacks/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { build, mnist, tensors, trainZoo, type Zoo } from './fixtures.js';

let zoo: Zoo;
const test = mnist('t10k', 0, 6);

beforeAll(async () => {
  zoo = await trainZoo();
  await initBackend({ backend: 'cpu' });
});

/** A deliberately careless search: far outside the ball and the bounds, one row NaN. */
class CarelessAttack extends FixedEpsilonAttack {
  readonly name = 'careless';
  readonly id = 'careless';
  readonly params = {};
  readonly epsilon = 0.1;
  readonly distance = Linf;

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const noise = Float32Array.from({ length: ctx.x.size }, (_, i) => (i % 2 ? 5 : -5));
    noise[3] = Number.NaN;
    return { adversarial: tf.tidy(() => tf.add(ctx.x, tf.tensor2d(noise, ctx.x.shape)) as Tensor2D) };
  }
}

describe('the base classes', () => {
  it('project any search onto the ε ball and [0,1], and give non-finite rows back their clean input', async () => {
    const model = build(zoo, 'mlp');
    const { x, labels } = tensors(test);
    const r = await new CarelessAttack().run(model, x, labels, { seed: 0 });
    for (let i = 0; i < r.count; i++) {
      expect(r.linf[i]!).toBeLessThanOrEqual(0.1 + 1e-6);
      for (let d = 0; d < r.dim; d++) {
        const v = r.adversarial[i * r.dim + d]!;
        expect(v >= 0 && v <= 1).toBe(true);
      }
    }
    expect(r.linf[0]).toBe(0);
    tf.dispose([x, labels]);
    model.dispose();
  });

  it('return an empty result for an empty batch', async () => {
    const model = build(zoo, 'mlp');
    const x = tf.zeros([0, 784]) as Tensor2D;
    const labels = tf.zeros([0], 'int32') as Tensor1D;
    const r = await parseAttackSpec('pgd:steps=2').run(model, x, labels, { seed: 0 });
    expect([r.count, r.adversarial.length, r.success.length]).toEqual([0, 0, 0]);
    tf.dispose([x, labels]);
    model.dispose();
  });

  it('reject inputs of the wrong shape or type', async () => {
    const model = build(zoo, 'mlp');
    const { x, labels } = tensors(test);
    const pgd = new LinfPgd({ steps: 1 });
    const narrow = tf.zeros([6, 10]) as Tensor2D;
    const floats = tf.zeros([6]) as Tensor1D;
    const short = tf.zeros([5], 'int32') as Tensor1D;
    const cases: [string, () => Promise<unknown>][] = [
      ['x width', () => pgd.run(model, narrow, labels, { seed: 0 })],
      ['float labels', () => pgd.run(model, x, floats, { seed: 0 })],
      ['label count', () => pgd.run(model, x, short, { seed: 0 })],
      ['epsilons', () => pgd.run(model, x, labels, { seed: 0, epsilons: new Float32Array(2) })],
    ];
    for (const [what, call] of cases) {
      const e = await call().catch((err: unknown) => err);
      expect(isAdvstreamError(e) && e.code, what).toBe('BAD_ARGUMENT');
    }
    tf.dispose([x, labels, narrow, floats, short]);
    model.dispose();
  });
});

describe('distances and criteria', () => {
  it('measure and project in L0, L2 and L∞', () => {
    const x0 = tf.tensor2d([0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5], [2, 4]);
    const x = tf.tensor2d([0.3, -0.4, 0, 0.1, 0.5, 0.9, 0.5, 0.5], [2, 4]);
    const eps = tf.tensor2d([0.25, 2], [2, 1]);
    const out = tf.tidy(() => ({
      l0: L0.measure(x0, x).arraySync(),
      l2: L2.measure(x0, x).arraySync(),
      linf: Linf.measure(x0, x).arraySync(),
      pl0: L0.project(x0, x, tf.tensor2d([2, 0], [2, 1])).arraySync(),
      pl2: L2.project(x0, x, eps).arraySync(),
      plinf: Linf.project(x0, x, eps).arraySync(),
    }));
    expect(out.l0).toEqual([3, 1]);
    expect(out.l2[0]).toBeCloseTo(Math.sqrt(0.26), 6);
    expect(out.linf[0]).toBeCloseTo(0.4, 6);
    expect(out.pl0[0]).toEqual([expect.closeTo(0.3, 6), expect.closeTo(-0.4, 6), 0, 0]);
    expect(out.pl0[1]).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(Math.hypot(...out.pl2[0]!)).toBeCloseTo(0.25, 6);
    expect(out.pl2[1]).toEqual([0.5, expect.closeTo(0.9, 6), 0.5, 0.5]);
    expect(out.plinf[0]).toEqual([expect.closeTo(0.25, 6), expect.closeTo(-0.25, 6), 0, expect.closeTo(0.1, 6)]);
    tf.dispose([x0, x, eps]);
  });

  it('judge misclassification and targets by the argmax, with margins that go negative on success', () => {
    const scores = tf.tensor2d([3, 1, 0, 1, 4, 2], [2, 3]);
    const labels = tf.tensor1d([0, 2], 'int32');
    const targets = tf.tensor1d([1, 1], 'int32');
    const out = tf.tidy(() => ({
      miss: misclassification(labels).isAdversarial(scores).arraySync(),
      missMargin: misclassification(labels).margin(scores).arraySync(),
      hit: targetedMisclassification(targets).isAdversarial(scores).arraySync(),
      hitMargin: targetedMisclassification(targets).margin(scores).arraySync(),
    }));
    expect(out.miss).toEqual([0, 1]);
    expect(out.missMargin).toEqual([2, -2]);
    expect(out.hit).toEqual([0, 1]);
    expect(out.hitMargin).toEqual([2, -2]);
    tf.dispose([scores, labels, targets]);
  });
});
