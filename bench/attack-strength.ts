/**
 * The strength of the attack library on the shipped zoo, the figures issue 19 asks for: AutoAttack
 * standard against the fast cascade at ε = 0.3 on every model; FAB-T's median L∞ on mlp-relu
 * against the minimal-ε curve of PGD; HopSkipJump's robust accuracy at L2 ε = 2 on mlp-relu and
 * its queries. All 10,000 test images by default (`--images N` for fewer): hours on two cores.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../src/backend/index.js';
import { normsOf, parseAttackSpec, type AttackResult } from '../src/attacks/index.js';
import { collect, openSource } from '../src/data/index.js';
import { loadClassifier } from '../src/models/artifact.js';
import type { Classifier } from '../src/models/classifier.js';
import { zooRecipes } from '../src/models/zoo.js';
import { ZOO_DIR } from '../src/paths.js';
import { Proportion } from '../src/stats/proportion.js';

/** Images per attack call: bounds memory (a HopSkipJump gradient estimate is evals × batch probes). */
const BATCH = 250;

interface Totals {
  robust: Proportion;
  gradients: number;
  forwards: number;
  seconds: number;
  /** Per image: the perturbation size in the attack's norm where it succeeded on a clean-correct image, else NaN. */
  sizes: number[];
  minEpsilon: number[];
  correct: boolean[];
}

/** Runs one attack over the images in batches; robust accuracy counts predictions, as AutoAttack does. */
async function attackAll(model: Classifier, spec: string, x: Float32Array, y: Int32Array, log: (line: string) => void): Promise<Totals> {
  const attack = parseAttackSpec(spec);
  const totals: Totals = { robust: new Proportion(), gradients: 0, forwards: 0, seconds: 0, sizes: [], minEpsilon: [], correct: [] };
  const n = y.length;
  for (let from = 0; from < n; from += BATCH) {
    const count = Math.min(BATCH, n - from);
    const xb = tf.tensor2d(x.subarray(from * 784, (from + count) * 784), [count, 784]) as Tensor2D;
    const yb = tf.tensor1d(y.subarray(from, from + count), 'int32') as Tensor1D;
    const clean = tf.tidy(() => tf.argMax(model.scores(xb), 1));
    const cleanPred = await clean.data();
    clean.dispose();
    const t0 = performance.now();
    let r: AttackResult;
    try {
      r = await attack.run(model, xb, yb, { seed: from + 1 });
    } finally {
      tf.dispose([xb, yb]);
    }
    totals.seconds += (performance.now() - t0) / 1000;
    const sizes = normsOf(r, attack.distance.name);
    for (let i = 0; i < count; i++) {
      const correct = cleanPred[i] === y[from + i];
      totals.correct.push(correct);
      totals.robust.add(correct && r.predicted[i] === y[from + i]);
      totals.gradients += r.gradients[i]!;
      totals.forwards += r.forwards[i]!;
      totals.sizes.push(correct && r.success[i] ? sizes[i]! : Number.NaN);
      if (r.minEpsilon) totals.minEpsilon.push(r.minEpsilon[i]!);
    }
    log(`  ${attack.id} on ${model.id}: ${from + count}/${n} images, robust ${(totals.robust.summary().p! * 100).toFixed(2)}%`);
  }
  return totals;
}

function median(values: number[]): number | null {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : null;
}

function cost(t: Totals, n: number): { gradientsPerImage: number; forwardsPerImage: number; seconds: number } {
  return { gradientsPerImage: t.gradients / n, forwardsPerImage: t.forwards / n, seconds: t.seconds };
}

/** The attack-strength benchmark's figures, as plain JSON. */
export async function attackStrength(images: number, log: (line: string) => void): Promise<unknown> {
  await initBackend({ backend: 'wasm' });
  const names = (await zooRecipes()).map((r) => r.name).filter((name) => existsSync(path.join(ZOO_DIR, name, 'manifest.json')));
  if (!names.includes('mlp-relu')) return { skipped: 'the zoo lacks mlp-relu; run `advstream zoo build`' };
  const data = await collect(openSource('mnist:test', { limit: images }));
  const n = data.y.length;
  const x = Float32Array.from(data.x);
  const y = Int32Array.from(data.y);

  // 1. AutoAttack standard (with FAB-T) against the fast cascade, ε = 0.3, every model.
  const autoattack: Record<string, unknown>[] = [];
  for (const name of names) {
    const model = await loadClassifier(`zoo:${name}`);
    try {
      const fast = await attackAll(model, 'autoattack:eps=0.3', x, y, log);
      const standard = await attackAll(model, 'autoattack:eps=0.3,version=standard', x, y, log);
      const row = {
        model: name,
        fast: { robust: fast.robust.summary(), ...cost(fast, n) },
        standard: { robust: standard.robust.summary(), ...cost(standard, n) },
        standardAtLeastAsStrong: standard.robust.successes <= fast.robust.successes,
      };
      log(`${name}: fast ${fast.robust.successes}/${n} robust, standard ${standard.robust.successes}/${n}`);
      autoattack.push(row);
    } finally {
      model.dispose();
    }
  }

  const mlp = await loadClassifier('zoo:mlp-relu');
  try {
    // 2. FAB-T's median L∞ against the minimal-ε curve of PGD-100: the curve's robust accuracy at
    // FAB-T's median, over clean-correct images, should hold 50% within its interval.
    const fabT = await attackAll(mlp, 'fab-t', x, y, log);
    const mineps = await attackAll(mlp, 'mineps:attack=pgd,steps=100', x, y, log);
    const fabMedian = median(fabT.sizes);
    const above = new Proportion();
    mineps.minEpsilon.forEach((e, i) => {
      if (mineps.correct[i]) above.add(fabMedian !== null && e > fabMedian);
    });
    const curveAtMedian = above.summary();
    // 3. HopSkipJump at L2 ε = 2: robust where it failed or needed more than 2.
    const hsjSpec = 'hsj:steps=20';
    const hsj = await attackAll(mlp, hsjSpec, x, y, log);
    const hsjRobust = new Proportion();
    hsj.correct.forEach((correct, i) => hsjRobust.add(correct && !(hsj.sizes[i]! <= 2)));
    return {
      images: n,
      autoattack,
      fabT: {
        spec: parseAttackSpec('fab-t').id,
        medianLinf: fabMedian,
        minepsMedian: median(mineps.minEpsilon.filter((_, i) => mineps.correct[i])),
        minepsRobustAtFabMedian: curveAtMedian,
        withinInterval: curveAtMedian.ci[0] <= 0.5 && 0.5 <= curveAtMedian.ci[1],
        fabCost: cost(fabT, n),
        minepsCost: cost(mineps, n),
      },
      hsj: {
        spec: parseAttackSpec(hsjSpec).id,
        robustAtL2Eps2: hsjRobust.summary(),
        medianL2: median(hsj.sizes),
        queriesPerImage: hsj.forwards / n,
        seconds: hsj.seconds,
      },
    };
  } finally {
    mlp.dispose();
  }
}
