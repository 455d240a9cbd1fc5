/** Seeded randomness and exact references for the stats tests. */

/** A small seeded generator, uniform in [0, 1): the one the training shuffles use. */
export { seededRandom as rng } from '../../pipelines/train.js';

export function randInt(rand: () => number, n: number): number {
  return Math.floor(rand() * n);
}

/** Standard normal (Box–Muller). */
export function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

export function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randInt(rand, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Splits `xs` into `parts` groups of random sizes (some may be empty), each in random order. */
export function randomPartition<T>(xs: readonly T[], parts: number, rand: () => number): T[][] {
  const groups: T[][] = Array.from({ length: parts }, () => []);
  for (const x of shuffle(xs, rand)) groups[randInt(rand, parts)]!.push(x);
  return groups;
}

/**
 * The exact sum of doubles with |x| ≥ 2^-147 (or 0) and no overflow, correctly rounded: every such
 * double is an integer multiple of 2^-200, so BigInt arithmetic is exact.
 */
export function referenceSum(xs: readonly number[]): number {
  const scale = 2 ** 200;
  let total = 0n;
  for (const x of xs) total += BigInt(x * scale);
  return Number(total) / scale;
}

/** The lower quantile as the sketch defines it: the value of rank max(1, ⌈q·n⌉). */
export function exactQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

/** #{x ≤ v} in a sorted array. */
export function countAtMost(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Reduces with `merge` in a balanced tree: a grouping different from a left fold. */
export function treeMerge<T>(items: T[], merge: (a: T, b: T) => T): T {
  let level = items;
  while (level.length > 1) {
    const next: T[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? merge(level[i]!, level[i + 1]!) : level[i]!);
    level = next;
  }
  return level[0]!;
}
