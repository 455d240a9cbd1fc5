/**
 * Calibration: thresholds that hold their false-positive rate on held-out clean data, for single
 * detectors and the combined score; files that round-trip to identical verdicts and refuse other
 * plans; accumulators that merge exactly.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Rng } from '../../src/attacks/index.js';
import { initBackend, tf } from '../../src/backend/index.js';
import {
  CalibrationAccumulator,
  ExceedanceTable,
  bindPlan,
  calibrationAccumulator,
  calibrationDifferences,
  checkCalibration,
  detectionRate,
  finishCalibration,
  loadCalibration,
  planDetectors,
  runDetectors,
  saveCalibration,
  verdict,
  type Calibration,
  type DetectorPlan,
  type ScoresByDetector,
} from '../../src/detect/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import type { Classifier } from '../../src/models/classifier.js';
import { getFamily } from '../../src/models/registry.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { QuantileSketch, wilson } from '../../src/stats/index.js';
import { loadModel, mnist, rows, tensors, type Slice } from './helpers.js';

const SCRATCH = path.join(PACKAGE_ROOT, 'test-artifacts', 'detect', 'scratch');

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isAdvstreamError(e) ? e.code : `not an AdvstreamError: ${String(e)}`;
  }
  return undefined;
}

async function codeOfAsync(f: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await f();
  } catch (e) {
    return isAdvstreamError(e) ? e.code : `not an AdvstreamError: ${String(e)}`;
  }
  return undefined;
}

/** An untrained MLP answering to the zoo id the detectors default to: enough to bind plans. */
function stubMlp(): Classifier {
  const family = getFamily('mlp');
  const config = family.configure({ hidden: [8] });
  return family.build('zoo:mlp-relu', config, family.init(config, 1));
}

describe('on trained models and MNIST', () => {
  let models: Classifier[];
  let plan: DetectorPlan;
  let planMinP: DetectorPlan;
  const batches = new Map<string, ScoresByDetector[]>();

  async function scoreSlice(key: string, s: Slice): Promise<ScoresByDetector[]> {
    if (!batches.has(key)) {
      const out: ScoresByDetector[] = [];
      for (let from = 0; from < s.count; from += 500) {
        const { x, y } = tensors(rows(s, from, Math.min(500, s.count - from)));
        out.push((await runDetectors(plan, models, x)).scores);
        tf.dispose([x, y]);
      }
      batches.set(key, out);
    }
    return batches.get(key)!;
  }

  /**
   * Three disjoint, exchangeable clean sets: mnist:test[0:8000] shuffled, then cut 3000 / 3000 / 2000.
   * Calibration and evaluation records must come from one distribution: the models were trained on
   * mnist:train[0:3000] (more confident there than on new images), and the two halves of mnist:test
   * differ too (its second 5000, from NIST's SD-1, score lower on every detector here).
   */
  async function split(part: 'calibrate' | 'combine' | 'held-out'): Promise<Slice> {
    const all = await mnist('test', 0, 8000);
    const order = Array.from({ length: all.count }, (_, i) => i);
    const rng = new Rng(2024);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const [from, count] = { calibrate: [0, 3000], combine: [3000, 3000], 'held-out': [6000, 2000] }[part] as [number, number];
    const out: Slice = { x: new Float32Array(count * 784), y: new Int32Array(count), count };
    for (let k = 0; k < count; k++) {
      const src = order[from + k]!;
      out.x.set(all.x.subarray(src * 784, (src + 1) * 784), k * 784);
      out.y[k] = all.y[src]!;
    }
    return out;
  }

  /** Stage 1 on one clean set, stage 2 on another: the records are disjoint, as the stages need. */
  async function calibrate(p: DetectorPlan, fpr: number): Promise<Calibration> {
    const stage1 = calibrationAccumulator(p);
    for (const b of await scoreSlice('calibrate', await split('calibrate'))) stage1.add(b);
    const stage2 = calibrationAccumulator(p, { base: finishCalibration(stage1, { fpr }) });
    for (const b of await scoreSlice('combine', await split('combine'))) stage2.add(b);
    return finishCalibration(stage2, { fpr, source: 'mnist:test[0:8000] shuffled, 3000 + 3000' });
  }

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    const [mlp, dam20, dam30] = [await loadModel('mlp'), await loadModel('dam-n20'), await loadModel('dam-n30')];
    models = [mlp, dam20, dam30];
    const specs = [
      `order-disagreement:low=${mlp.id},high=${dam20.id}+${dam30.id}`,
      `feature-squeezing:model=${mlp.id}`,
      `noise-instability:model=${mlp.id}`,
    ];
    plan = bindPlan(planDetectors([...specs, 'combined']), models);
    planMinP = bindPlan(planDetectors([...specs, 'combined:method=min-p']), models);
  });

  afterAll(() => {
    for (const m of models) m.dispose();
  });

  it.each([
    ['fisher', () => plan],
    ['min-p', () => planMinP],
  ])('holds fpr = 0.05 on 2000 held-out clean images, per detector and combined (%s)', async (_, p) => {
    const calibration = await calibrate(p(), 0.05);
    const heldOut = await scoreSlice('held-out', await split('held-out'));
    const flagged: Record<string, number> = {};
    let n = 0;
    for (const b of heldOut) {
      const v = verdict(calibration, b);
      for (const [name, f] of [...Object.entries(v.flags), ['combined', v.flagged] as const]) {
        flagged[name] = (flagged[name] ?? 0) + f.reduce((s, q) => s + q, 0);
      }
      n += v.count;
    }
    expect(n).toBe(2000);
    expect(Object.keys(flagged).sort()).toEqual(['combined', 'feature-squeezing', 'noise-instability', 'order-disagreement']);
    for (const [name, k] of Object.entries(flagged)) {
      const rate = k / n;
      const { lo, hi } = wilson(k, n);
      const within = (lo <= 0.05 && 0.05 <= hi) || Math.abs(rate - 0.05) <= 0.025;
      expect(within, `${name}: ${k}/${n} flagged`).toBe(true);
    }
    // On its own calibration data the rate is exact and never above the target.
    for (const c of [...Object.values(calibration.detectors), calibration.combined!]) {
      expect(c.rate).toBeLessThanOrEqual(0.05);
      expect(c.rate).toBeGreaterThan(0.04);
      expect(c.n).toBe(3000);
    }
  });

  it('flags at the calibrated rate by the same rule that detectionRate measures', async () => {
    const calibration = await calibrate(plan, 0.05);
    const heldOut = await scoreSlice('held-out', await split('held-out'));
    const fs = heldOut.flatMap((b) => Array.from(b['feature-squeezing']!));
    const rate = detectionRate(fs, calibration.detectors['feature-squeezing']!.threshold);
    const flags = heldOut.reduce((s, b) => s + verdict(calibration, b).flags['feature-squeezing']!.reduce((u, q) => u + q, 0), 0);
    expect(rate.flagged).toBe(flags);
  });

  it('saves and loads to identical verdicts, and refuses other plans', async () => {
    const calibration = await calibrate(plan, 0.05);
    await mkdir(SCRATCH, { recursive: true });
    const file = path.join(SCRATCH, `calibration-${process.pid}.json`);
    await saveCalibration(file, calibration);
    onTestFinished(() => rm(file, { force: true }));
    const loaded = await loadCalibration(file, { plan });
    expect(loaded).toEqual(calibration);
    for (const b of await scoreSlice('held-out', await split('held-out'))) {
      expect(verdict(loaded, b)).toEqual(verdict(calibration, b));
    }

    const [mlp, dam20] = models as [Classifier, Classifier];
    const others: [string, DetectorPlan][] = [
      ['other parameters', bindPlan(planDetectors([`order-disagreement:low=${mlp.id},high=${dam20.id}+${models[2]!.id}`, `feature-squeezing:model=${mlp.id}`, `noise-instability:model=${mlp.id},sigma=0.05`, 'combined']), models)],
      ['other models', bindPlan(planDetectors([`order-disagreement:low=${mlp.id},high=${dam20.id}`, `feature-squeezing:model=${mlp.id}`, `noise-instability:model=${mlp.id}`, 'combined']), models)],
      ['fewer detectors', bindPlan(planDetectors([`feature-squeezing:model=${mlp.id}`, `noise-instability:model=${mlp.id}`, 'combined']), models)],
      ['no combined score', bindPlan(planDetectors(plan.detectors.map((d) => d.id)), models)],
      ['another combination', planMinP],
      ['an unbound plan', { ...plan, bound: false }],
    ];
    for (const [why, other] of others) {
      expect(await codeOfAsync(() => loadCalibration(file, { plan: other })), why).toBe('CALIBRATION_MISMATCH');
      expect(calibrationDifferences(calibration, other).length, why).toBeGreaterThan(0);
    }
    expect(calibrationDifferences(calibration, plan)).toEqual([]);
    expect(calibrationDifferences(calibration, others[0]![1]).join()).toMatch(/noise-instability.*sigma=0\.05/);
  });
});

describe('calibration files', () => {
  let plan: DetectorPlan;
  let calibration: Calibration;
  let file: string;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    plan = bindPlan(planDetectors(['feature-squeezing', 'noise-instability']), [stubMlp()]);
    const acc = calibrationAccumulator(plan);
    const rng = new Rng(5);
    acc.add({ 'feature-squeezing': rng.uniforms(500), 'noise-instability': rng.uniforms(500, -1, 1) });
    calibration = finishCalibration(acc, { fpr: 0.1 });
    await mkdir(SCRATCH, { recursive: true });
    file = path.join(SCRATCH, `bad-${process.pid}.json`);
  });

  afterAll(() => rm(file, { force: true }));

  it.each([
    ['not JSON', () => '{"format": "advstream-calibration",'],
    ['another format', () => JSON.stringify({ ...calibration, format: 'other' })],
    ['a sketch that does not hold n', () => JSON.stringify({ ...calibration, detectors: { ...calibration.detectors, 'feature-squeezing': { ...calibration.detectors['feature-squeezing']!, n: 7 } } })],
    ['a missing detector', () => JSON.stringify({ ...calibration, detectors: { 'feature-squeezing': calibration.detectors['feature-squeezing'] } })],
    ['an unknown detector', () => JSON.stringify({ ...calibration, plan: { ...calibration.plan, detectors: [{ ...calibration.plan.detectors[0]!, name: 'nope' }, calibration.plan.detectors[1]] } })],
  ])('rejects %s as BAD_CALIBRATION', async (_, text) => {
    await writeFile(file, text());
    expect(await codeOfAsync(() => loadCalibration(file))).toBe('BAD_CALIBRATION');
  });

  it('reads back what it wrote', async () => {
    await saveCalibration(file, calibration);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(calibration);
    expect(await loadCalibration(file, { plan })).toEqual(calibration);
  });
});

describe('accumulators', () => {
  let plan: DetectorPlan;
  const rng = new Rng(11);
  // Scores of three shapes: uniform, heavy-tailed with negatives, and many exact ties at zero.
  const make = (n: number): ScoresByDetector => ({
    'feature-squeezing': rng.uniforms(n, 0, 2),
    'noise-instability': Float32Array.from(rng.normals(n), (v) => Math.sign(v) * Math.exp(3 * Math.abs(v))),
    'order-disagreement': Float32Array.from(rng.uniforms(n), (u) => (u < 0.6 ? 0 : u)),
  });
  const data = [make(300), make(1), make(700), make(250)];

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    const fakes = [stubMlp(), ...['zoo:dam-n20', 'zoo:dam-n30'].map((id) => ({ ...stubMlp(), id }))];
    plan = bindPlan(planDetectors(['order-disagreement', 'feature-squeezing', 'noise-instability', 'combined']), fakes);
  });

  /** Through JSON and a structured clone, as across a worker thread. */
  const overThread = (acc: CalibrationAccumulator) => CalibrationAccumulator.fromJSON(structuredClone(acc.toJSON()));

  it('merging split accumulators equals accumulating everything at once, in both stages', () => {
    const whole = calibrationAccumulator(plan);
    for (const b of data) whole.add(b);
    const parts = [calibrationAccumulator(plan), calibrationAccumulator(plan), calibrationAccumulator(plan)];
    parts[0]!.add(data[2]!);
    parts[1]!.add(data[0]!).add(data[3]!);
    parts[2]!.add(data[1]!);
    const merged = overThread(parts[2]!).merge(overThread(parts[0]!)).merge(parts[1]!);
    expect(merged.count).toBe(1251);
    const base = finishCalibration(whole, { fpr: 0.05 });
    expect(finishCalibration(merged, { fpr: 0.05 })).toEqual(base);
    expect(base.combined).toBeNull();

    const more = [make(400), make(333)];
    const whole2 = calibrationAccumulator(plan, { base });
    for (const b of more) whole2.add(b);
    const a = calibrationAccumulator(plan, { base }).add(more[1]!);
    const b = overThread(calibrationAccumulator(plan, { base }).add(more[0]!));
    const done = finishCalibration(b.merge(a), { fpr: 0.05 });
    expect(done).toEqual(finishCalibration(whole2, { fpr: 0.05 }));
    expect(done.combined!.n).toBe(733);
    expect(done.detectors).toEqual(base.detectors);
  });

  it('refuses to merge other plans or stages, and to finish empty', () => {
    const other = bindPlan(planDetectors(['feature-squeezing']), [stubMlp()]);
    const acc = calibrationAccumulator(plan).add(data[0]!);
    expect(codeOf(() => acc.merge(calibrationAccumulator(other)))).toBe('BAD_ARGUMENT');
    const base = finishCalibration(acc, { fpr: 0.05 });
    expect(codeOf(() => acc.merge(calibrationAccumulator(plan, { base })))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => finishCalibration(calibrationAccumulator(plan)))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => finishCalibration(calibrationAccumulator(plan, { base }).add(data[1]!), { fpr: 0.01 }))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => calibrationAccumulator({ ...plan, bound: false }))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => calibrationAccumulator(plan).add({ 'feature-squeezing': [1] }))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => calibrationAccumulator(other).add({ 'feature-squeezing': [Number.NaN] }))).toBe('BAD_ARGUMENT');
  });

  it('verdicts need a calibrated combined score and every detector\'s scores', () => {
    const acc = calibrationAccumulator(plan);
    for (const b of data) acc.add(b);
    const stage1 = finishCalibration(acc, { fpr: 0.05 });
    expect(codeOf(() => verdict(stage1, data[0]!))).toBe('BAD_ARGUMENT');
    const full = finishCalibration(calibrationAccumulator(plan, { base: stage1 }).add(data[2]!), { fpr: 0.05 });
    const v = verdict(full, data[0]!);
    expect(v.count).toBe(300);
    expect(Object.keys(v.pValues).sort()).toEqual(['feature-squeezing', 'noise-instability', 'order-disagreement']);
    expect(codeOf(() => verdict(full, { 'feature-squeezing': data[0]!['feature-squeezing']! }))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => checkCalibration(full, plan))).toBeUndefined();
  });

  it('combines p-values by Fisher\'s method and flags by the combined threshold alone', () => {
    const acc = calibrationAccumulator(plan);
    for (const b of data) acc.add(b);
    const stage1 = finishCalibration(acc, { fpr: 0.05 });
    const full = finishCalibration(calibrationAccumulator(plan, { base: stage1 }).add(data[2]!), { fpr: 0.05 });
    const v = verdict(full, data[3]!);
    for (let i = 0; i < v.count; i++) {
      const fisher = -2 * Object.values(v.pValues).reduce((s, p) => s + Math.log(p[i]!), 0);
      expect(v.combined![i]).toBeCloseTo(fisher, 10);
      expect(v.flagged[i]).toBe(v.combined![i]! > full.combined!.threshold ? 1 : 0);
    }
  });

  it('without a combined score flags a record that any detector flags', () => {
    const noCombined = bindPlan(planDetectors(['feature-squeezing', 'noise-instability']), [stubMlp()]);
    const acc = calibrationAccumulator(noCombined);
    for (const b of data) acc.add(b);
    const v = verdict(finishCalibration(acc, { fpr: 0.05 }), data[0]!);
    for (let i = 0; i < v.count; i++) expect(v.flagged[i]).toBe(v.flags['feature-squeezing']![i]! | v.flags['noise-instability']![i]!);
    expect(v.combined).toBeNull();
  });
});

describe('p-values', () => {
  it('are the conformal (1 + #{clean ≥ s}) / (n + 1), as the sketch\'s own rank bounds give them', () => {
    const rng = new Rng(3);
    // Bucket edges of the default sketch (α = 0.005): γ^k above zero, −γ^k below.
    const gamma = 1.005 / 0.995;
    const edges = Array.from({ length: 40 }, (_, i) => (i % 2 ? -1 : 1) * Math.pow(gamma, i - 20));
    const values = [
      ...Array.from(rng.normals(2000), (v) => v * 10 ** rng.int(-12, 6)),
      ...new Array<number>(300).fill(0),
      ...new Array<number>(200).fill(2.5),
      ...edges,
    ];
    const sketch = new QuantileSketch();
    for (const v of values) sketch.add(v);
    const table = new ExceedanceTable(sketch.toJSON());
    const probes = [...values.slice(0, 400), ...edges, 0, 2.5, -0, sketch.min, sketch.max, sketch.max + 1, sketch.min - 1, 1e-300, -1e-300, 1e300];
    const nextDown = (x: number) => {
      const f = new Float64Array([x]);
      const b = new BigInt64Array(f.buffer);
      if (x === 0) return -Number.MIN_VALUE;
      b[0] = b[0]! + (x > 0 ? -1n : 1n);
      return f[0]!;
    };
    const got = table.pValues(probes);
    probes.forEach((s, i) => {
      const below = sketch.rank(nextDown(s)).lo;
      expect(got[i], `s = ${s}`).toBe((1 + sketch.count - below) / (sketch.count + 1));
    });
    // Exact where no bucket is in doubt: above the max, at or below the min.
    expect(table.pValues([sketch.max + 1])[0]).toBe(1 / 2541);
    expect(table.pValues([sketch.min])[0]).toBe(1);
    // Never below the exact conformal p-value: ties at 2.5 count as ≥ 2.5.
    const exact = (1 + values.filter((v) => v >= 2.5).length) / 2541;
    expect(table.pValues([2.5])[0]).toBeGreaterThanOrEqual(exact);
  });
});
