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

export interface Benchmark {
  name: string;
  summary: string;
  run(log: (line: string) => void): Promise<unknown>;
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

export const BENCHMARKS: readonly Benchmark[] = [attackSteps, evalThroughput];
