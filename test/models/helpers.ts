import { collect, openSource } from '../../src/data/index.js';
import type { DenseData } from '../../pipelines/train.js';

const cache = new Map<string, Promise<DenseData>>();

/** The first `limit` images of an MNIST split as dense arrays, read once per test file. */
export function mnist(split: 'train' | 'test', limit: number): Promise<DenseData> {
  const key = `${split}:${limit}`;
  if (!cache.has(key)) {
    cache.set(
      key,
      collect(openSource(`mnist:${split}`, { limit })).then((c) => ({ x: c.x, y: c.y, count: c.count, dim: 784 })),
    );
  }
  return cache.get(key)!;
}

/** A small configuration of each family: fast enough for unit tests, same code paths as the zoo. */
export const TINY: ReadonlyArray<{
  label: string;
  family: string;
  options: Record<string, unknown>;
  /** Overrides for the gradient check only. */
  gradOptions?: Record<string, unknown>;
  batch: number;
  minAcc: number;
}> = [
  // DAM's normalised steps from its N(−0.3, 0.3) init need ~100 updates to break the symmetry
  // between classes; one epoch of 2,000 images at batch 20 gives 100.
  // For the gradient check, T = 250 keeps u = s/T near 1 at initialisation, so that the power-20
  // model is not flat (the zoo's T = 540 gives gradients of 1e-9 there, which no check can see).
  {
    label: 'dam n=20',
    family: 'dam',
    options: { n: 20, K: 20, eps0: 0.1 },
    gradOptions: { 't-start': 250, 't-end': 250, 't-ramp': 0 },
    batch: 20,
    minAcc: 0.2,
  },
  { label: 'dam n=3', family: 'dam', options: { n: 3, K: 20, eps0: 0.2 }, batch: 20, minAcc: 0.18 },
  { label: 'softmax', family: 'mlp', options: { hidden: [] }, batch: 50, minAcc: 0.6 },
  { label: 'relu mlp', family: 'mlp', options: { hidden: [32] }, batch: 50, minAcc: 0.7 },
  // The recipe's uniform(±0.005) init needs several hundred updates before its signal grows; a
  // wider init starts at once.
  { label: 'maxout', family: 'maxout', options: { units: [32, 32], pieces: 3, 'init-range': 0.05 }, batch: 10, minAcc: 0.5 },
  { label: 'maxout adv', family: 'maxout', options: { units: [32, 32], pieces: 3, 'init-range': 0.05, 'adv-eps': 0.1 }, batch: 10, minAcc: 0.3 },
  { label: 'drp', family: 'drp', options: { dim: 10, 'proto-iterations': 20 }, batch: 50, minAcc: 0.5 },
  { label: 'isometric', family: 'isometric', options: { hidden: [32, 32], beta: 0.1 }, batch: 50, minAcc: 0.5 },
];
