/**
 * Sparse-RS for the L0 threat model (Croce, Andriushchenko, Singh, Flammarion & Hein, "Sparse-RS: a
 * versatile framework for query-efficient sparse black-box adversarial attacks", AAAI 2022).
 */
import { tf } from '../backend/index.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { L0 } from './distances.js';
import { configure, epsilonParam, type ParamSchema, type ParamValues } from './params.js';
import { openRows } from './runs.js';
import type { Rng } from './rng.js';
import { marginQuery, squareFraction } from './square.js';

export const SPARSE_RS_PARAMS = {
  eps: epsilonParam(10),
  queries: { type: 'int', min: 1, max: 1_000_000, default: 10_000, doc: 'score queries per sample, the initial one included' },
  pinit: {
    type: 'number',
    min: 0,
    max: 1,
    exclusiveMin: true,
    default: 0.3,
    doc: 'α_init: the first proposals resample this fraction of the perturbed pixels',
  },
} as const satisfies ParamSchema;

/** One row's perturbation: which input values it sets (distinct indices) and to what. */
interface Sparse {
  at: Int32Array;
  to: Float32Array;
}

/** A value at a corner of [0,1] that differs from the clean one: random, or the other corner. */
function corner(clean: number, rng: Rng): number {
  const v = rng.uniform() < 0.5 ? 0 : 1;
  return v === clean ? 1 - v : v;
}

function place(clean: Float32Array, s: Sparse): Float32Array {
  const x = clean.slice();
  s.at.forEach((i, j) => {
    x[i] = s.to[j]!;
  });
  return x;
}

/** `k` distinct indices out of `dim`, none of them in `taken`. */
function drawOutside(k: number, dim: number, taken: Uint8Array, rng: Rng): Int32Array {
  const out = new Int32Array(k);
  for (let j = 0; j < k; j++) {
    let i: number;
    do i = rng.int(0, dim - 1);
    while (taken[i]);
    taken[i] = 1;
    out[j] = i;
  }
  return out;
}

/**
 * Sparse-RS, L0: random search over perturbations of exactly `⌊ε⌋` input values, each set to a
 * corner of [0,1] (0 or 1, never the clean value). Each iteration moves `max(⌈α·k⌉, 1)` of them to
 * fresh positions with fresh values and keeps the proposal when it lowers the margin `z_y −
 * max_{i≠y} z_i` (for a target t: `max_{i≠t} z_i − z_t`); α follows AutoAttack's Square schedule
 * from `pinit`. Score-based black box: it calls only `scores`. Croce et al., AAAI 2022. Norm L0:
 * ε counts changed input values (pixels of a grayscale image; each channel of a colour one).
 * Defaults: ε = 10, 10,000 queries, α_init = 0.3. A sample stops querying once broken.
 *
 * @example
 *   new SparseRs({ eps: 12, queries: 1000 }).id; // 'sparse-rs:eps=12,pinit=0.3,queries=1000'
 */
export class SparseRs extends FixedEpsilonAttack {
  readonly name = 'sparse-rs';
  override get gradientFree(): boolean {
    return true;
  }
  readonly id: string;
  readonly params: ParamValues<typeof SPARSE_RS_PARAMS>;
  readonly epsilon: number;
  readonly distance = L0;

  constructor(options: Partial<ParamValues<typeof SPARSE_RS_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, SPARSE_RS_PARAMS, options));
    this.epsilon = this.params.eps;
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const { queries, pinit } = this.params;
    const rng = ctx.rng;
    const clean = Float32Array.from(await ctx.x.data());
    const labels = Int32Array.from(await ctx.criterion.labels.data());
    const cleanRow = (r: number): Float32Array => clean.subarray(r * dim, (r + 1) * dim);

    const query = marginQuery(ctx, labels, dim);

    const best = clean.slice();
    const state = new Map<number, Sparse>();
    const margin = new Float32Array(count).fill(Infinity);
    const broken = new Uint8Array(count);
    // Each sample's own budget (a minimal-ε search or a cascade gives per-sample ε).
    const budget = (r: number): number => Math.min(Math.floor(ctx.epsilons[r]! + 1e-6), dim);
    let open = Int32Array.from(openRows(ctx)).filter((r) => budget(r) > 0);
    if (open.length > 0) {
      const starts = Array.from(open, (r) => {
        const at = drawOutside(budget(r), dim, new Uint8Array(dim), rng);
        const s: Sparse = { at, to: Float32Array.from(at, (i) => corner(clean[r * dim + i]!, rng)) };
        state.set(r, s);
        return place(cleanRow(r), s);
      });
      const first = await query(open, starts);
      open.forEach((r, i) => {
        best.set(starts[i]!, r * dim);
        margin[r] = first.margin[i]!;
        broken[r] = first.hit[i]!;
      });
    }
    open = open.filter((r) => !broken[r]);
    for (let it = 0; it < queries - 1 && open.length > 0; it++) {
      const alpha = squareFraction(pinit, it, queries);
      const proposals = Array.from(open, (r) => {
        const s = state.get(r)!;
        const k = s.at.length;
        const moved = Math.min(Math.max(Math.ceil(alpha * k), 1), k, dim - k);
        const taken = new Uint8Array(dim);
        s.at.forEach((i) => {
          taken[i] = 1;
        });
        const at = s.at.slice();
        const to = s.to.slice();
        // Which of the k perturbed values move: a partial Fisher–Yates shuffle of 0..k-1.
        const order = Int32Array.from({ length: k }, (_, j) => j);
        for (let j = 0; j < moved; j++) {
          const pick = rng.int(j, k - 1);
          [order[j], order[pick]] = [order[pick]!, order[j]!];
        }
        const fresh = drawOutside(moved, dim, taken, rng);
        for (let j = 0; j < moved; j++) {
          const slot = order[j]!;
          at[slot] = fresh[j]!;
          to[slot] = corner(clean[r * dim + fresh[j]!]!, rng);
        }
        return { r, s: { at, to } };
      });
      const answer = await query(
        open,
        proposals.map((p) => place(cleanRow(p.r), p.s)),
      );
      proposals.forEach(({ r, s }, k) => {
        if (answer.margin[k]! < margin[r]! || answer.hit[k]) {
          state.set(r, s);
          best.set(place(cleanRow(r), s), r * dim);
          margin[r] = answer.margin[k]!;
          broken[r] = answer.hit[k]!;
        }
      });
      open = open.filter((r) => !broken[r]);
    }
    return { adversarial: tf.tensor2d(best, [count, dim]) };
  }
}
