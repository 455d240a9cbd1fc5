/**
 * Square attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
 * black-box adversarial attack via random search", ECCV 2020), with AutoAttack's schedule.
 */
import { tf, type Tensor2D } from '../backend/index.js';
import { FixedEpsilonAttack, type FixedEpsilonContext, type SearchOutput } from './base.js';
import { misclassification, targetedMisclassification } from './criteria.js';
import { L2, Linf, type NormDistance } from './distances.js';
import { configure, epsilonParam, NORM_PARAM, type ParamSchema, type ParamValues } from './params.js';
import { openRows } from './runs.js';
import type { Rng } from './rng.js';

export const SQUARE_PARAMS = {
  norm: NORM_PARAM,
  eps: epsilonParam(),
  queries: { type: 'int', min: 1, max: 1_000_000, default: 5000, doc: 'score queries per sample, the initial one included' },
  pinit: {
    type: 'number',
    min: 0,
    max: 1,
    exclusiveMin: true,
    default: 0.8,
    doc: 'p_init: the first squares cover this fraction of the image',
  },
} as const satisfies ParamSchema;

/**
 * AutoAttack's schedule for the fraction p of pixels a square covers: p_init halved after iterations
 * 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10,000-query run, rescaled to `queries`.
 *
 * @example
 *   squareFraction(0.8, 100, 5000); // 0.2 (iteration 100 of 5000 is 200 of 10,000)
 */
export function squareFraction(pInit: number, iteration: number, queries: number): number {
  const it = Math.floor((iteration / queries) * 10000);
  const bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  const halvings = bounds.filter((b) => it > b).length;
  return pInit / 2 ** halvings;
}

/**
 * The L2 attack's `s × s` pattern (the paper's M(r, s)): concentric rectangles weighted 1/(k+1)²,
 * positive in the top half and negative in the bottom half, unit L2 norm; row-major.
 */
function rectangles(rowsN: number, cols: number): Float64Array {
  const out = new Float64Array(rowsN * cols);
  const rc = Math.floor(rowsN / 2) + 1;
  const cc = Math.floor(cols / 2) + 1;
  let r0 = rc - 1;
  let c0 = cc - 1;
  for (let k = 0; k < Math.max(rc, cc); k++) {
    for (let r = Math.max(r0, 0); r < Math.min(r0 + 2 * k + 1, rowsN); r++) {
      for (let c = Math.max(c0, 0); c < Math.min(c0 + 2 * k + 1, cols); c++) out[r * cols + c]! += 1 / (k + 1) ** 2;
    }
    r0--;
    c0--;
  }
  return unit(out);
}

function unit(v: Float64Array): Float64Array {
  let sq = 0;
  for (const e of v) sq += e * e;
  const n = Math.sqrt(sq);
  return n > 0 ? v.map((e) => e / n) : v;
}

const patterns = new Map<number, [Float64Array, Float64Array]>();

/** The pattern of side `s` and its transpose. */
function pattern(s: number): [Float64Array, Float64Array] {
  let p = patterns.get(s);
  if (!p) {
    const half = Math.floor(s / 2);
    const top = rectangles(half, s);
    const bottom = rectangles(s - half, s);
    const eta = new Float64Array(s * s);
    eta.set(top, 0);
    for (let i = 0; i < bottom.length; i++) eta[half * s + i] = -bottom[i]!;
    const flat = unit(eta);
    const transposed = new Float64Array(s * s);
    for (let r = 0; r < s; r++) for (let c = 0; c < s; c++) transposed[c * s + r] = flat[r * s + c]!;
    p = [flat, transposed];
    patterns.set(s, p);
  }
  return p;
}

interface Geometry {
  h: number;
  w: number;
  c: number;
  dim: number;
}

/** Flat index of pixel (row, col, channel) in a row-major H × W × C image. */
function at(g: Geometry, row: number, col: number, ch: number): number {
  return (row * g.w + col) * g.c + ch;
}

/** L∞ start: vertical stripes, each column and channel at x ± ε. */
function linfStart(g: Geometry, x0: Float32Array, eps: number, rng: Rng): Float32Array {
  const x = new Float32Array(x0.length);
  const signs = rng.signs(g.w * g.c);
  for (let r = 0; r < g.h; r++) {
    for (let col = 0; col < g.w; col++) {
      for (let ch = 0; ch < g.c; ch++) {
        const i = at(g, r, col, ch);
        x[i] = Math.min(1, Math.max(0, x0[i]! + eps * signs[col * g.c + ch]!));
      }
    }
  }
  return x;
}

/** L∞ proposal: one random square of side s set to x ± ε (a random sign per channel). */
function linfPropose(g: Geometry, x0: Float32Array, best: Float32Array, eps: number, s: number, rng: Rng): Float32Array {
  const x = best.slice();
  const vh = rng.int(0, g.h - s);
  const vw = rng.int(0, g.w - s);
  const signs = rng.signs(g.c);
  for (let r = vh; r < vh + s; r++) {
    for (let col = vw; col < vw + s; col++) {
      for (let ch = 0; ch < g.c; ch++) {
        const i = at(g, r, col, ch);
        x[i] = Math.min(1, Math.max(0, x0[i]! + eps * signs[ch]!));
      }
    }
  }
  return x;
}

/** `x0 + ε·δ/‖δ‖₂`, clipped to [0,1]. */
function l2Place(x0: Float32Array, delta: Float64Array, eps: number): Float32Array {
  let sq = 0;
  for (const d of delta) sq += d * d;
  const scale = eps / (Math.sqrt(sq) + 1e-12);
  return x0.map((v, i) => Math.min(1, Math.max(0, v + delta[i]! * scale)));
}

/** L2 start: a grid of patterns of side ⌊H/5⌋, each with a random sign per channel. */
function l2Start(g: Geometry, x0: Float32Array, eps: number, rng: Rng): Float32Array {
  const delta = new Float64Array(g.dim);
  const s = Math.max(1, Math.floor(g.h / 5));
  const offset = Math.floor((g.h - s * 5) / 2);
  for (let vh = offset; vh + s <= g.h; vh += s) {
    for (let vw = offset; vw + s <= g.w; vw += s) {
      const eta = pattern(s)[rng.uniform() < 0.5 ? 0 : 1];
      const signs = rng.signs(g.c);
      for (let r = 0; r < s; r++) {
        for (let col = 0; col < s; col++) {
          for (let ch = 0; ch < g.c; ch++) delta[at(g, vh + r, vw + col, ch)]! += eta[r * s + col]! * signs[ch]!;
        }
      }
    }
  }
  return l2Place(x0, delta, eps);
}

/**
 * L2 proposal: the mass of a second random window moves into the first, which gets a fresh
 * pattern plus its old content, rescaled per channel so that the whole perturbation keeps norm ε.
 */
function l2Propose(g: Geometry, x0: Float32Array, best: Float32Array, eps: number, s: number, rng: Rng): Float32Array {
  const delta = new Float64Array(g.dim);
  for (let i = 0; i < g.dim; i++) delta[i] = best[i]! - x0[i]!;
  const vh = rng.int(0, g.h - s);
  const vw = rng.int(0, g.w - s);
  const vh2 = rng.int(0, g.h - s);
  const vw2 = rng.int(0, g.w - s);
  const inFirst = (r: number, col: number): boolean => r >= vh && r < vh + s && col >= vw && col < vw + s;
  const inSecond = (r: number, col: number): boolean => r >= vh2 && r < vh2 + s && col >= vw2 && col < vw2 + s;
  let imageSq = 0;
  let windowsSq = 0;
  for (let r = 0; r < g.h; r++) {
    for (let col = 0; col < g.w; col++) {
      const both = inFirst(r, col) || inSecond(r, col);
      for (let ch = 0; ch < g.c; ch++) {
        const d = delta[at(g, r, col, ch)]!;
        imageSq += d * d;
        if (both) windowsSq += d * d;
      }
    }
  }
  const eta = pattern(s)[rng.uniform() < 0.5 ? 0 : 1];
  const signs = rng.signs(g.c);
  const budget = Math.sqrt(Math.max(eps * eps - imageSq, 0) / g.c + windowsSq);
  const fresh = new Float64Array(s * s * g.c);
  for (let ch = 0; ch < g.c; ch++) {
    let oldSq = 0;
    for (let r = 0; r < s; r++) for (let col = 0; col < s; col++) oldSq += delta[at(g, vh + r, vw + col, ch)]! ** 2;
    const oldNorm = Math.sqrt(oldSq) + 1e-12;
    let newSq = 0;
    for (let k = 0; k < s * s; k++) {
      const r = Math.floor(k / s);
      const col = k % s;
      const v = eta[k]! * signs[ch]! + delta[at(g, vh + r, vw + col, ch)]! / oldNorm;
      fresh[k * g.c + ch] = v;
      newSq += v * v;
    }
    const scale = budget / (Math.sqrt(newSq) + 1e-12);
    for (let k = 0; k < s * s; k++) fresh[k * g.c + ch]! *= scale;
  }
  for (let r = vh2; r < vh2 + s; r++) for (let col = vw2; col < vw2 + s; col++) for (let ch = 0; ch < g.c; ch++) delta[at(g, r, col, ch)] = 0;
  for (let k = 0; k < s * s; k++) {
    const r = vh + Math.floor(k / s);
    const col = vw + (k % s);
    for (let ch = 0; ch < g.c; ch++) delta[at(g, r, col, ch)] = fresh[k * g.c + ch]!;
  }
  return l2Place(x0, delta, eps);
}

/**
 * Square attack: random search over square-shaped updates, accepted when they lower the margin
 * `z_y − max_{i≠y} z_i` (for a target t: `max_{i≠t} z_i − z_t`). Score-based black box: it calls
 * only `scores`, so it attacks models without gradients. Andriushchenko et al., ECCV 2020; AutoAttack's
 * last stage. Norm L∞ or L2. Defaults: ε = 0.3 (L∞) / 2 (L2), 5000 queries, p_init = 0.8 with
 * AutoAttack's schedule, 1 restart. `queries` bounds the forward passes per sample, the initial one
 * included (AutoAttack makes one more); a sample stops querying once broken. Windows, signs and
 * pattern orientations are drawn per sample (AutoAttack shares each iteration's window across the
 * batch). The proposals are built on plain arrays: a few pixels per sample, while the queries batch.
 *
 * @example
 *   new SquareAttack({ eps: 0.3, queries: 1000 }).id; // 'square:eps=0.3,norm=linf,pinit=0.8,queries=1000'
 */
export class SquareAttack extends FixedEpsilonAttack {
  readonly name = 'square';
  override get gradientFree(): boolean {
    return true;
  }
  readonly id: string;
  readonly params: ParamValues<typeof SQUARE_PARAMS>;
  readonly epsilon: number;
  readonly distance: NormDistance;

  constructor(options: Partial<ParamValues<typeof SQUARE_PARAMS>> = {}) {
    super();
    ({ params: this.params, id: this.id } = configure(this.name, SQUARE_PARAMS, options));
    this.epsilon = this.params.eps;
    this.distance = this.params.norm === 'l2' ? L2 : Linf;
  }

  protected async search(ctx: FixedEpsilonContext): Promise<SearchOutput> {
    const [count, dim] = ctx.x.shape;
    const [h, w, c] = ctx.model.inputShape;
    const g: Geometry = { h, w, c, dim };
    const { queries, pinit, norm } = this.params;
    const rng = ctx.rng;
    const clean = Float32Array.from(await ctx.x.data());
    const labels = Int32Array.from(await ctx.criterion.labels.data());
    const rowsOf = (i: number, source: Float32Array): Float32Array => source.subarray(i * dim, (i + 1) * dim);

    const best = clean.slice();
    const margin = new Float32Array(count).fill(Infinity);
    const broken = new Uint8Array(count);

    const query = marginQuery(ctx, labels, dim);

    // Each sample's own ε (per-sample ε from a minimal-ε search or a cascade).
    const eps = ctx.epsilons;
    let open = openRows(ctx);
    const starts = Array.from(open, (r) =>
      norm === 'linf' ? linfStart(g, rowsOf(r, clean), eps[r]!, rng) : l2Start(g, rowsOf(r, clean), eps[r]!, rng),
    );
    if (open.length > 0) {
      const first = await query(open, starts);
      open.forEach((r, i) => {
        best.set(starts[i]!, r * dim);
        margin[r] = first.margin[i]!;
        broken[r] = first.hit[i]!;
      });
    }
    open = Int32Array.from([...open].filter((r) => !broken[r]));
    for (let i = 0; i < queries - 1 && open.length > 0; i++) {
      const p = squareFraction(pinit, i, queries);
      const side = Math.round(Math.sqrt(p * h * w));
      const s =
        norm === 'linf'
          ? Math.min(Math.max(side, 1), h, w)
          : Math.min(Math.max(side, 3) + (Math.max(side, 3) % 2 === 0 ? 1 : 0), h, w);
      const proposals = Array.from(open, (r) =>
        norm === 'linf'
          ? linfPropose(g, rowsOf(r, clean), rowsOf(r, best), eps[r]!, s, rng)
          : l2Propose(g, rowsOf(r, clean), rowsOf(r, best), eps[r]!, s, rng),
      );
      const answer = await query(open, proposals);
      open.forEach((r, k) => {
        if (answer.margin[k]! < margin[r]! || answer.hit[k]) {
          best.set(proposals[k]!, r * dim);
          margin[r] = answer.margin[k]!;
          broken[r] = answer.hit[k]!;
        }
      });
      open = Int32Array.from([...open].filter((r) => !broken[r]));
    }
    return { adversarial: tf.tensor2d(best, [count, dim]) };
  }
}

/** A batched-query margin oracle, shared by the score-based attacks. */
export type MarginQuery = (rows: Int32Array, points: Float32Array[]) => Promise<{ margin: Float32Array; hit: Uint8Array }>;

/**
 * One batched query of `points` (one per row of `rows`, `dim` values each): the criterion's margin
 * and verdict per point, each counted as one forward evaluation of its row.
 */
export function marginQuery(ctx: FixedEpsilonContext, labels: Int32Array, dim: number): MarginQuery {
  const targeted = ctx.criterion.kind === 'targeted';
  return async (rows, points) => {
    ctx.counter.add('forwards', rows);
    const batch = new Float32Array(rows.length * dim);
    points.forEach((p, i) => batch.set(p, i * dim));
    const input = tf.tensor2d(batch, [rows.length, dim]) as Tensor2D;
    const scores = await ctx.model.scores(input);
    input.dispose();
    const t = tf.tidy(() => {
      const y = tf.tensor1d(Int32Array.from(rows, (r) => labels[r]!), 'int32');
      const criterion = targeted ? targetedMisclassification(y) : misclassification(y);
      return { margin: criterion.margin(scores), hit: criterion.isAdversarial(scores) };
    });
    scores.dispose();
    const out = { margin: Float32Array.from(await t.margin.data()), hit: Uint8Array.from(await t.hit.data()) };
    tf.dispose(t);
    return out;
  };
}
