/**
 * The recorded small run under fixtures/: hand-made per-image results fed to the real `EvalStats`,
 * written as the events `advstream eval` prints (start, stats after every batch, final) and its
 * `--samples` lines, the first five with pixels. `fixture.test.ts` checks that the files are what
 * this makes now (UPDATE_FIXTURES=1 rewrites them).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePixels } from '../../src/report/index.js';
import { EvalStats, maxIntervalWidth, type AdversarialResult, type SampleResult } from '../../src/stats/index.js';
import { rng } from '../stats/helpers.js';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const RUN_FILE = path.join(FIXTURES, 'run.ndjson');
export const SAMPLES_FILE = path.join(FIXTURES, 'samples.ndjson');

export const MODELS = ['zoo:dam-n20', 'zoo:mlp'];
const FGSM = [0.1, 0.2, 0.3].map((eps) => ({ id: `fgsm:eps=${eps},loss=ce`, eps }));
const MINEPS = 'mineps:attack=pgd,eps=0.3,loss=ce,max=1,norm=linf,tol=0.005';
const GRID = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];
export const ATTACKS = [...FGSM.map((a) => a.id), MINEPS];
const WORST_CASE = 'worst-case';
const IMAGES = 30;
const WITH_PIXELS = 5;
const BATCH = 5;
const T0 = 1_700_000_000_000;

/** How often FGSM at each ε fools each model (the DAM resists), and how often it transfers. */
const FOOLS: Record<string, number[]> = { 'zoo:dam-n20': [0.1, 0.3, 0.6], 'zoo:mlp': [0.5, 0.85, 0.97] };
const TRANSFERS: Record<string, number> = { 'zoo:dam-n20': 0.8, 'zoo:mlp': 0.1 };

/** Seven-segment strokes, a digit-like 28×28 image. */
function digit(d: number): Float32Array {
  const segments = ['abcdef', 'bc', 'abdeg', 'abcdg', 'bcfg', 'acdfg', 'acdefg', 'abc', 'abcdefg', 'abcdfg'][d]!;
  const img = new Float32Array(784);
  const stroke = (x0: number, y0: number, x1: number, y1: number) => {
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) img[y * 28 + x] = 1;
  };
  const [l, r, t, m, b] = [8, 18, 5, 13, 21];
  if (segments.includes('a')) stroke(l, t, r, t + 2);
  if (segments.includes('b')) stroke(r - 2, t, r, m + 1);
  if (segments.includes('c')) stroke(r - 2, m, r, b + 1);
  if (segments.includes('d')) stroke(l, b - 1, r, b + 1);
  if (segments.includes('e')) stroke(l, m, l + 2, b + 1);
  if (segments.includes('f')) stroke(l, t, l + 2, m + 1);
  if (segments.includes('g')) stroke(l, m - 1, r, m + 1);
  return img;
}

/**
 * An illustrative adversarial: on the DAM, a push of ε toward the digit it is now read as (what the
 * DAM paper shows); on the MLP, ε-sized speckle.
 */
function adversarialPixels(clean: Float32Array, eps: number, source: string, shownAs: number, rand: () => number): Float32Array {
  const other = digit(shownAs);
  return clean.map((v, i) => {
    const step = source === 'zoo:dam-n20' ? Math.sign(other[i]! - v) : rand() < 0.5 ? -1 : 1;
    return Math.min(1, Math.max(0, v + eps * step));
  });
}

/** Four decimals keep the fixture small. */
function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

interface Made {
  sample: SampleResult;
  id: string;
  pixels?: { clean: Float32Array; adversarial: Map<string, Float32Array> };
}

function makeSamples(): Made[] {
  const rand = rng(2024);
  return Array.from({ length: IMAGES }, (_, i) => {
    const label = i % 10;
    const wrong = (label + 3) % 10;
    const clean: Record<string, number> = {};
    clean['zoo:dam-n20'] = rand() < 0.97 ? label : wrong;
    clean['zoo:mlp'] = rand() < 0.92 ? label : wrong;
    const adversarials: AdversarialResult[] = [];
    const pixels = i < WITH_PIXELS ? { clean: digit(label), adversarial: new Map<string, Float32Array>() } : undefined;
    const entry = (attack: string, source: string, eps: number, success: boolean, minEps?: number) => {
      const right = clean[source] === label;
      const preds: Record<string, number> = {};
      for (const m of MODELS) {
        if (!right) preds[m] = clean[m]!;
        else if (m === source) preds[m] = success ? wrong : label;
        else preds[m] = success && rand() < TRANSFERS[source]! ? wrong : clean[m]!;
      }
      const linf = right ? eps : 0;
      const a: AdversarialResult = {
        attack,
        source,
        success: right && success,
        linf,
        l2: round(linf * Math.sqrt(784 * (0.3 + 0.4 * rand()))),
        confidence: round(0.5 + 0.5 * rand()),
        preds,
        ...(minEps !== undefined && { minEps }),
      };
      adversarials.push(a);
      if (pixels) {
        const adv = right ? adversarialPixels(pixels.clean, eps, source, wrong, rand) : pixels.clean;
        pixels.adversarial.set(JSON.stringify([attack, source]), adv);
      }
    };
    FGSM.forEach(({ id, eps }, k) => {
      for (const source of MODELS) entry(id, source, eps, rand() < FOOLS[source]![k]!);
    });
    for (const source of MODELS) {
      const never = rand() < (source === 'zoo:dam-n20' ? 0.3 : 0.05);
      const minEps = never ? Infinity : round(source === 'zoo:dam-n20' ? 0.15 + 0.3 * rand() : 0.03 + 0.17 * rand());
      entry(MINEPS, source, Number.isFinite(minEps) ? minEps : 0.3, !never, minEps);
    }
    for (const source of MODELS) {
      const entries = adversarials.filter((a) => a.source === source);
      const chosen = entries.find((a) => a.preds[source] !== label) ?? entries.find((a) => a.success) ?? entries[0]!;
      const { minEps: _minEps, ...rest } = chosen;
      adversarials.push({ ...rest, attack: WORST_CASE, success: entries.some((a) => a.success) });
    }
    return { sample: { label, clean, adversarials }, id: String(1000 + i), ...(pixels && { pixels }) };
  });
}

const MODEL_INFO = [
  {
    id: 'zoo:dam-n20',
    family: 'dam',
    num_classes: 10,
    input_shape: [28, 28, 1],
    sha256: 'd4a1c0ffee0000000000000000000000000000000000000000000000000000d4',
    manifest: {
      name: 'dam-n20',
      summary: 'dense associative memory, rectified polynomial n = 20',
      accuracy: { clean: 0.981, testImages: 10000, source: 'mnist:test' },
      commit: '5e1f00d2a7b3',
    },
  },
  {
    id: 'zoo:mlp',
    family: 'mlp',
    num_classes: 10,
    input_shape: [28, 28, 1],
    sha256: 'a11ce0000000000000000000000000000000000000000000000000000000a11c',
    manifest: { name: 'mlp', summary: 'two hidden layers of 256 ReLU units', accuracy: { clean: 0.978, testImages: 10000, source: 'mnist:test' }, commit: '5e1f00d2a7b3' },
  },
];

/** The run's events and its samples lines, as `advstream eval` would print them. */
export function makeRun(): { events: Record<string, unknown>[]; samples: Record<string, unknown>[] } {
  const made = makeSamples();
  const stats = new EvalStats({ curveGrids: { [MINEPS]: GRID } });
  const progress = (consumed: number) => ({ consumed, total: IMAGES, batches: consumed / BATCH, in_flight: 0, retries: 0, dropped: 0 });
  const start = {
    type: 'start',
    source: 'mnist:test',
    backend: 'wasm',
    simd: true,
    mode: 'pool',
    workers: 2,
    batch: BATCH,
    seed: 7,
    models: MODEL_INFO,
    attacks: ATTACKS,
    config_hash: '9c0ffee5',
    resumed: null,
  };
  const events: Record<string, unknown>[] = [start];
  for (let b = 0; b < IMAGES / BATCH; b++) {
    // Each worker slows down a little as the run goes on, so the throughput chart is not flat.
    const startMs = T0 + b * 400 + b * b * 20;
    stats.throughput.add({ workerId: `w${b % 2}`, images: BATCH, gradEvals: BATCH * 60, forwardEvals: BATCH * 80, startMs, endMs: startMs + 700 });
    for (const m of made.slice(b * BATCH, (b + 1) * BATCH)) stats.add(m.sample);
    const consumed = (b + 1) * BATCH;
    if (consumed < IMAGES) {
      const summary = stats.summary();
      events.push({
        type: 'stats',
        ...summary,
        elapsed_s: (startMs + 700 - T0) / 1000 + 0.5,
        max_ci_width: maxIntervalWidth(summary),
        throughput: stats.throughput.summary(),
        progress: progress(consumed),
      });
    }
  }
  const summary = stats.summary();
  const throughput = stats.throughput.summary();
  events.push({
    type: 'final',
    stop_reason: 'end',
    ...summary,
    backend: 'wasm',
    simd: true,
    mode: 'pool',
    workers: 2,
    max_ci_width: maxIntervalWidth(summary),
    throughput: { ...throughput, elapsed_s: throughput.wall_s + 0.5 },
    progress: progress(IMAGES),
    provenance: {
      command: `advstream eval mnist:test --limit ${IMAGES} --batch ${BATCH} --seed 7 --model zoo:dam-n20 --model zoo:mlp ${ATTACKS.map((a) => `--attack ${a}`).join(' ')} --samples samples.ndjson --out run.ndjson`,
      commit: '5e1f00d2a7b3',
      version: '0.1.0',
      seed: 7,
      batch: BATCH,
      data: { uri: 'mnist:test', offset: 0, limit: IMAGES },
      models: MODEL_INFO,
      attacks: ATTACKS,
      config_hash: '9c0ffee5',
      resumed_from: null,
    },
  });
  const samples = made.map(({ sample, id, pixels }) => ({
    id,
    label: sample.label,
    clean: sample.clean,
    ...(pixels && { shape: [28, 28, 1], pixels: encodePixels(pixels.clean) }),
    adversarials: sample.adversarials
      .filter((a) => a.attack !== WORST_CASE)
      .map(({ minEps, ...a }) => {
        const adv = pixels?.adversarial.get(JSON.stringify([a.attack, a.source]));
        return {
          ...a,
          ...(minEps !== undefined && { min_eps: Number.isFinite(minEps) ? minEps : null }),
          ...(adv && { adversarial: encodePixels(adv) }),
        };
      }),
  }));
  return { events, samples };
}

export function ndjson(values: readonly unknown[]): string {
  return values.map((v) => `${JSON.stringify(v)}\n`).join('');
}
