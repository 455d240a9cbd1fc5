import { describe, expect, it } from 'vitest';
import { Throughput, type ThroughputTask } from '../../src/stats/index.js';
import { shuffle, rng, treeMerge } from './helpers.js';

const tasks: ThroughputTask[] = [
  { workerId: 'h/0', images: 32, gradEvals: 1280, forwardEvals: 1312, startMs: 1000, endMs: 1400 },
  { workerId: 'h/1', images: 32, gradEvals: 1280, forwardEvals: 1312, startMs: 1000.25, endMs: 1500.25 },
  { workerId: 'h/0', images: 16, gradEvals: 640, forwardEvals: 656, startMs: 1400, endMs: 1800 },
  { workerId: 'h/1', images: 16, gradEvals: 640, forwardEvals: 656, startMs: 1600, endMs: 2000 },
];

describe('Throughput', () => {
  const all = tasks.reduce((t, x) => t.add(x), new Throughput());

  it('reports rates over the wall span and utilisation per worker', () => {
    const s = all.summary();
    expect(s).toMatchObject({ images: 96, grad_evals: 3840, forward_evals: 3936, wall_s: 1 });
    expect(s.images_per_s).toBe(96);
    expect(s.grad_evals_per_s).toBe(3840);
    expect(s.workers['h/0']).toEqual({ busy_s: 0.8, utilisation: 0.8 });
    expect(s.workers['h/1']).toEqual({ busy_s: 0.9, utilisation: 0.9 });
    expect(s.utilisation).toBeCloseTo(0.85, 15);
  });

  it('merges to the same state in any grouping and round-trips through JSON text', () => {
    const singles = shuffle(tasks, rng(1)).map((t) => new Throughput().add(t));
    const restored = singles.map((t) => Throughput.fromJSON(JSON.parse(JSON.stringify(t.toJSON()))));
    const merged = treeMerge(restored, (a, b) => a.merge(b));
    expect(merged.toJSON()).toEqual(all.toJSON());
    expect(merged.summary()).toEqual(all.summary());
  });

  it('has no rates before any wall time', () => {
    expect(new Throughput().summary()).toMatchObject({ images: 0, wall_s: 0, images_per_s: null, utilisation: null });
    expect(() => new Throughput().add({ ...tasks[0]!, endMs: 0 })).toThrow(/before it starts/);
  });
});
