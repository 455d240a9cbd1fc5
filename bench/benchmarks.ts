/**
 * Every benchmark, registered in this one list. Each returns plain JSON.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../src/backend/index.js';
import { collect, openSource } from '../src/data/index.js';
import { parseAttackSpec } from '../src/attacks/index.js';
import { buildClassifier, loadArtifact, type ModelArtifact } from '../src/models/artifact.js';
import { getFamily } from '../src/models/registry.js';
import { ZOO_DIR } from '../src/paths.js';
import { lastValueFrom } from 'rxjs';
import { evaluate, type FinalEvent } from '../pipelines/index.js';
import { Worker } from 'node:worker_threads';
import { PACKAGE_ROOT } from '../src/paths.js';
import { GraphBuilder } from '../src/engine/graph.js';
import { createSession, floatTensor, selectProvider } from '../src/engine/ort.js';
import { buildRunner } from '../src/engine/build.js';
import type { EngineBenchJob, EngineBenchReport } from './engine-worker.js';
import { attackStrength } from './attack-strength.js';

export interface BenchOptions {
  /** Test images for benchmarks that take a sample size (`--images`); each has its own default. */
  images?: number;
}

export interface Benchmark {
  name: string;
  summary: string;
  run(log: (line: string) => void, options: BenchOptions): Promise<unknown>;
}

/** The shipped model, or an untrained one of the same architecture when the zoo is not built yet. */
async function zooOrFresh(name: string, family: string, options: Record<string, unknown>): Promise<{ artifact?: ModelArtifact; fresh?: { family: string; options: Record<string, unknown> } }> {
  if (existsSync(path.join(ZOO_DIR, name, 'manifest.json'))) return { artifact: await loadArtifact(`zoo:${name}`) };
  return { fresh: { family, options } };
}

async function modelFor(source: Awaited<ReturnType<typeof zooOrFresh>>, name: string) {
  if (source.artifact) return buildClassifier(source.artifact);
  const f = getFamily(source.fresh!.family);
  const config = f.configure(source.fresh!.options);
  return f.build(`fresh:${name}`, config, f.init(config, 1));
}

const attackSteps: Benchmark = {
  name: 'attack-steps',
  summary: 'PGD gradient steps per second per worker at batch 256, ReLU MLP and DAM n=20, wasm and cpu',
  async run(log) {
    const batch = 256;
    const data = await collect(openSource('mnist:test', { limit: batch }));
    const models = [
      { name: 'mlp-relu', source: await zooOrFresh('mlp-relu', 'mlp', { hidden: [1000] }) },
      { name: 'dam-n20', source: await zooOrFresh('dam-n20', 'dam', { n: 20, K: 200 }) },
    ];
    const spec = 'pgd:eps=0.01,steps=10,random=false';
    const rows: Record<string, unknown>[] = [];
    for (const backend of ['wasm', 'cpu'] as const) {
      await initBackend({ backend });
      for (const { name, source } of models) {
        const model = await modelFor(source, name);
        const x = tf.tensor2d(data.x, [batch, 784]) as Tensor2D;
        // Labels are the model's own predictions, so that every row is attacked, and ε is small,
        // so that few rows break early: the figure is the steady-state cost of a step.
        const y = tf.tidy(() => tf.cast(tf.argMax(model.scores(x), 1), 'int32')) as Tensor1D;
        const attack = parseAttackSpec(spec);
        await attack.run(model, tf.slice(x, [0, 0], [8, 784]) as Tensor2D, tf.slice(y, [0], [8]) as Tensor1D, { seed: 1 });
        const t0 = performance.now();
        const result = await attack.run(model, x, y, { seed: 1 });
        const seconds = (performance.now() - t0) / 1000;
        const gradients = result.gradients.reduce((a, b) => a + b, 0);
        const row = {
          backend,
          model: name,
          trained: Boolean(source.artifact),
          batch,
          spec: attack.id,
          seconds,
          batchGradientSteps: gradients / batch,
          gradientStepsPerSecond: gradients / batch / seconds,
          imageGradientsPerSecond: gradients / seconds,
        };
        log(`${backend} ${name}: ${row.gradientStepsPerSecond.toFixed(2)} batch-256 gradient steps/s (${row.imageGradientsPerSecond.toFixed(0)} image gradients/s)`);
        rows.push(row);
        tf.dispose([x, y]);
        model.dispose();
      }
    }
    const speedup = Object.fromEntries(
      models.map(({ name }) => {
        const get = (b: string) => rows.find((r) => r.backend === b && r.model === name)!.gradientStepsPerSecond as number;
        return [name, get('wasm') / get('cpu')];
      }),
    );
    return { rows, wasmOverCpu: speedup };
  },
};

/** Samples this process's RSS (worker threads included) until stopped, keeping the peak. */
function rssPeak(): { stop(): number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss);
    },
  };
}

const evalThroughput: Benchmark = {
  name: 'eval-throughput',
  summary: 'end-to-end eval of 1,000 MNIST test images, ReLU MLP and DAM n=20, FGSM and PGD-10, with 1 and 2 workers',
  async run(log) {
    const models = ['mlp-relu', 'dam-n20'];
    const missing = models.filter((m) => !existsSync(path.join(ZOO_DIR, m, 'manifest.json')));
    if (missing.length) return { skipped: `the zoo lacks ${missing.join(', ')}; run \`advstream zoo build\`` };
    const rows: Record<string, unknown>[] = [];
    for (const workers of [1, 2]) {
      const memory = rssPeak();
      const t0 = performance.now();
      const final = (await lastValueFrom(
        evaluate(
          { uri: 'mnist:test', limit: 1000 },
          { models: models.map((m) => `zoo:${m}`), attacks: ['fgsm:eps=0.1', 'pgd:eps=0.3,steps=10'], workers, batch: 50, seed: 1, statsEvery: { seconds: 3600 } },
        ),
      )) as FinalEvent;
      const wall = (performance.now() - t0) / 1000;
      const row = {
        workers,
        images: final.images,
        wallSeconds: wall,
        imagesPerSecond: final.images / wall,
        gradientEvalsPerSecond: final.throughput.grad_evals_per_s,
        utilisation: final.throughput.utilisation,
        peakRssMiB: memory.stop() / 2 ** 20,
        backend: final.backend,
      };
      log(`${workers} worker(s): ${row.imagesPerSecond.toFixed(1)} images/s, peak RSS ${row.peakRssMiB.toFixed(0)} MiB`);
      rows.push(row);
    }
    const [one, two] = rows as { imagesPerSecond: number }[];
    return { rows, scaling2over1: two!.imagesPerSecond / one!.imagesPerSecond };
  },
};

/** One large single-threaded MatMul through ONNX Runtime: this core's SGEMM ceiling, in GFLOP/s. */
async function sgemmCeiling(): Promise<{ n: number; gflops: number; runs: number }> {
  const n = 1024;
  const g = new GraphBuilder('sgemm');
  const a = g.input('a', [n, n]);
  const b = new Float32Array(n * n);
  for (let i = 0; i < b.length; i++) b[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  g.output(g.op('MatMul', [a, g.weight('b', [n, n], b)]), 'c', [n, n]);
  const session = await createSession(g.encode(), 'cpu', 'sgemm');
  const feeds = { a: floatTensor(b.slice(), [n, n]) };
  for (let i = 0; i < 3; i++) await session.run(feeds);
  // The best of three one-second windows, as for every figure of this benchmark (a shared machine).
  let best = 0;
  let runs = 0;
  for (let w = 0; w < 3; w++) {
    let k = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 1000) {
      await session.run(feeds);
      k++;
    }
    runs += k;
    best = Math.max(best, (2 * n ** 3 * k) / ((performance.now() - t0) / 1000) / 1e9);
  }
  await session.release();
  return { n, gflops: best, runs };
}

/** Runs `workers` benchmark threads at once on one job; images (or image-gradients) per second, summed. */
async function threads(job: Omit<EngineBenchJob, 'pixels'> & { pixels: Float32Array }, workers: number): Promise<{ perSecond: number; engine: string }> {
  const file = path.join(PACKAGE_ROOT, 'dist', 'bench', 'engine-worker.js');
  const pool = Array.from({ length: workers }, () => new Worker(file, { workerData: job }));
  try {
    await Promise.all(pool.map((w) => new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
    })));
    const reports = pool.map((w) => new Promise<EngineBenchReport>((resolve, reject) => {
      w.once('message', (r: EngineBenchReport) => resolve(r));
      w.once('error', reject);
    }));
    for (const w of pool) w.postMessage('go');
    const done = await Promise.all(reports);
    return { perSecond: done.reduce((acc, r) => acc + r.count / r.seconds, 0), engine: done[0]!.engine };
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
}

/** Dense-layer FLOPs of one image's forward pass (multiply-adds × 2); a gradient step costs twice that. */
const FORWARD_FLOPS: Record<string, number> = {
  'mlp-relu': 2 * (784 * 1000 + 1000 * 10),
  // s = v·ξ_v; the K×C rectified powers are element-wise work, not counted.
  'dam-n20': 2 * 784 * 200,
};

const nativeEngine: Benchmark = {
  name: 'native-engine',
  summary: 'tfjs-wasm vs ONNX Runtime at batch 256 (scoring, PGD steps; 1 and 2 workers) against the SGEMM ceiling, and a 10k-image PGD-40 eval',
  async run(log) {
    const missing = ['mlp-relu', 'dam-n20'].filter((m) => !existsSync(path.join(ZOO_DIR, m, 'manifest.json')));
    if (missing.length) return { skipped: `the zoo lacks ${missing.join(', ')}; run \`advstream zoo build\`` };
    const provider = await selectProvider();
    const ceiling = await sgemmCeiling();
    log(`SGEMM ceiling (one thread, ${ceiling.n}³ MatMul through ONNX Runtime): ${ceiling.gflops.toFixed(1)} GFLOP/s`);
    const batch = 256;
    const data = await collect(openSource('mnist:test', { limit: batch }));
    const rows: Record<string, unknown>[] = [];
    for (const name of ['mlp-relu', 'dam-n20']) {
      const artifact = await loadArtifact(`zoo:${name}`);
      for (const mode of ['score', 'grad', 'pgd'] as const) {
        for (const engine of ['tfjs', 'onnx'] as const) {
          for (const workers of [1, 2]) {
            const r = await threads({ artifact, engine, mode, batch, pixels: data.x.slice(0, batch * 784), seconds: mode === 'pgd' ? 6 : 3 }, workers);
            const flops = FORWARD_FLOPS[name]! * (mode === 'score' ? 1 : 2) * r.perSecond;
            const perBatch = r.perSecond / batch;
            const row = {
              model: name,
              mode,
              engine: r.engine,
              workers,
              batch,
              imagesPerSecond: mode === 'score' ? r.perSecond : undefined,
              gradientStepsPerSecond: mode === 'score' ? undefined : perBatch,
              gflops: flops / 1e9,
              fractionOfCeiling: flops / 1e9 / (ceiling.gflops * workers),
            };
            log(
              `${name} ${mode} ${r.engine} ${workers}w: ${mode === 'score' ? `${r.perSecond.toFixed(0)} images/s` : `${perBatch.toFixed(2)} batch-256 ${mode === 'pgd' ? 'PGD steps' : 'gradients'}/s`}` +
                `, ${row.gflops.toFixed(1)} GFLOP/s = ${(row.fractionOfCeiling * 100).toFixed(1)}% of ${workers}× ceiling`,
            );
            rows.push(row);
          }
        }
      }
    }
    const rate = (model: string, mode: string, engine: string, workers: number) => {
      const r = rows.find((x) => x.model === model && x.mode === mode && String(x.engine).startsWith(engine) && x.workers === workers)!;
      return (mode === 'score' ? r.imagesPerSecond : r.gradientStepsPerSecond) as number;
    };
    const fraction = (model: string, mode: string, engine: string, workers: number) =>
      rows.find((x) => x.model === model && x.mode === mode && String(x.engine).startsWith(engine) && x.workers === workers)!.fractionOfCeiling as number;

    // End to end: all 10,000 test images, the ReLU MLP under PGD-40, 2 workers, each engine.
    const e2e: Record<string, unknown>[] = [];
    for (const engine of ['tfjs', 'onnx'] as const) {
      const t0 = performance.now();
      const final = (await lastValueFrom(
        evaluate(
          { uri: 'mnist:test' },
          { models: ['zoo:mlp-relu'], attacks: ['pgd:eps=0.3,steps=40'], workers: 2, batch: 256, seed: 1, engine, statsEvery: { seconds: 3600 } },
        ),
      )) as FinalEvent;
      const wall = (performance.now() - t0) / 1000;
      const attacks = final.models['zoo:mlp-relu']?.attacks ?? {};
      const robust = Object.entries(attacks).find(([id]) => id.startsWith('pgd:'))?.[1];
      e2e.push({ engine: final.engine, images: final.images, wallSeconds: wall, robust: robust ?? null });
      log(`eval 10k mlp-relu PGD-40, 2 workers, ${final.engine}: ${wall.toFixed(1)} s`);
    }
    const e2eSpeedup = (e2e[0]!.wallSeconds as number) / (e2e[1]!.wallSeconds as number);

    const targets = {
      nativeScoringAtLeastHalfCeiling: Object.fromEntries(['mlp-relu', 'dam-n20'].map((m) => [m, { fraction: fraction(m, 'score', 'onnx', 1), met: fraction(m, 'score', 'onnx', 1) >= 0.5 }])),
      nativeGradientOverWasm: Object.fromEntries(['mlp-relu', 'dam-n20'].map((m) => [m, rate(m, 'grad', 'onnx', 1) / rate(m, 'grad', 'tfjs', 1)])),
      nativePgdAtLeast5xWasm: Object.fromEntries(
        ['mlp-relu', 'dam-n20'].map((m) => {
          const ratio = rate(m, 'pgd', 'onnx', 1) / rate(m, 'pgd', 'tfjs', 1);
          return [m, { ratio, met: ratio >= 5 }];
        }),
      ),
      twoWorkersAtLeast1_8x: Object.fromEntries(
        ['mlp-relu', 'dam-n20'].flatMap((m) =>
          (['score', 'grad', 'pgd'] as const).flatMap((mode) =>
            (['tfjs', 'onnx'] as const).map((engine) => {
              const ratio = rate(m, mode, engine, 2) / rate(m, mode, engine, 1);
              return [`${m} ${mode} ${engine}`, { ratio, met: ratio >= 1.8 }];
            }),
          ),
        ),
      ),
      eval10kAtLeast5xFaster: { ratio: e2eSpeedup, met: e2eSpeedup >= 5 },
    };
    return { provider: { engine: provider.engine, candidates: provider.candidates }, ceiling, rows, endToEnd: e2e, targets };
  },
};

/** PGD steps per second at `batch` on one runner, labels its own predictions (every row attacked). */
async function pgdRate(runner: Awaited<ReturnType<typeof buildRunner>>, pixels: Float32Array, batch: number, dim: number, steps: number): Promise<number> {
  const x = tf.tensor2d(pixels.subarray(0, batch * dim), [batch, dim]) as Tensor2D;
  const scores = await runner.scores(x);
  const y = tf.tidy(() => tf.cast(tf.argMax(scores, 1), 'int32')) as Tensor1D;
  const attack = parseAttackSpec(`pgd:eps=0.005,steps=${steps},random=false`);
  const t0 = performance.now();
  const result = await attack.run(runner, x, y, { seed: 1 });
  const seconds = (performance.now() - t0) / 1000;
  tf.dispose([x, y, scores]);
  return result.gradients.reduce((a, b) => a + b, 0) / batch / seconds;
}

const userWhiteBox: Benchmark = {
  name: 'user-white-box',
  summary: "white-box PGD steps per second at batch 128 on users' graphs (derived gradients): the PyTorch residual CNN fixture natively (tfjs cannot run an ONNX file), and the zoo's DRP CNN natively vs tfjs-wasm",
  async run(log) {
    await initBackend({ backend: 'wasm' });
    const batch = 128;
    const steps = 10;
    const rows: Record<string, unknown>[] = [];
    const tinted = await collect(openSource('tinted-mnist:test', { limit: batch }));
    const resnet = await buildRunner(await loadArtifact(path.join(PACKAGE_ROOT, 'fixtures', 'onnx', 'resnet.onnx')), 'onnx');
    const rate = await pgdRate(resnet, tinted.x, batch, 32 * 32 * 3, steps);
    log(`resnet.onnx (32x32x3) ${resnet.engine}: ${rate.toFixed(2)} batch-${batch} PGD steps/s; tfjs: cannot run an ONNX model`);
    rows.push({ model: 'fixtures/onnx/resnet.onnx', engine: resnet.engine, batch, pgdStepsPerSecond: rate });
    rows.push({ model: 'fixtures/onnx/resnet.onnx', engine: 'tfjs-wasm', batch, pgdStepsPerSecond: null, reason: 'tfjs cannot run an ONNX model' });
    resnet.dispose();
    if (existsSync(path.join(ZOO_DIR, 'drp', 'manifest.json'))) {
      const mnist = await collect(openSource('mnist:test', { limit: batch }));
      for (const engine of ['onnx', 'tfjs'] as const) {
        const runner = await buildRunner(await loadArtifact('zoo:drp'), engine);
        const r = await pgdRate(runner, mnist.x, batch, 784, steps);
        log(`zoo:drp (28x28x1) ${runner.engine}: ${r.toFixed(2)} batch-${batch} PGD steps/s`);
        rows.push({ model: 'zoo:drp', engine: runner.engine, batch, pgdStepsPerSecond: r });
        runner.dispose();
      }
    }
    return { steps, rows };
  },
};

const strength: Benchmark = {
  name: 'attack-strength',
  summary: 'the shipped zoo under AutoAttack standard vs fast (ε = 0.3), FAB-T vs the minimal-ε curve and HopSkipJump at L2 ε = 2 on mlp-relu; all 10,000 test images unless --images',
  run: (log, options) => attackStrength(options.images ?? 10_000, log),
};

export const BENCHMARKS: readonly Benchmark[] = [attackSteps, evalThroughput, nativeEngine, userWhiteBox, strength];
