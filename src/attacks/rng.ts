/**
 * The one source of randomness for attacks: a small seeded generator (sfc32, seeded through
 * splitmix32), so that a seed fixes a run bit for bit on every backend. tf's own random ops are not
 * used: their streams are an implementation detail of tfjs.
 */

function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/**
 * A seed for a sub-task (a restart, a bisection step, a cascade stage) that depends only on the
 * parent seed and the path to it, never on the order in which sub-tasks happen to run.
 *
 * @example
 *   deriveSeed(42, 3) === deriveSeed(42, 3); // true; deriveSeed(42, 4) differs
 */
export function deriveSeed(seed: number, ...path: number[]): number {
  let state = Math.floor(seed) | 0;
  let out = 0;
  [state, out] = splitmix32(state ^ Math.floor(seed / 2 ** 32));
  for (const p of path) [state, out] = splitmix32(state ^ Math.imul(p + 1, 0x27d4eb2d) ^ out);
  return out;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = deriveSeed(seed);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      let w: number;
      [s, w] = splitmix32(s);
      words.push(w);
    }
    [this.a, this.b, this.c, this.d] = words as [number, number, number, number];
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer uniform in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  /** `n` values uniform in [lo, hi). */
  uniforms(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** `n` standard normal values (Box–Muller). */
  normals(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - this.uniform()));
      const theta = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(theta);
      if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }

  /** `n` values, each -1 or +1 with equal probability. */
  signs(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform() < 0.5 ? -1 : 1;
    return out;
  }
}
