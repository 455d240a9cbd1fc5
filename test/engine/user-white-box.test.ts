/**
 * Users' ONNX models attacked white-box: FGSM, PGD, APGD-CE and the AutoAttack cascade on both
 * PyTorch-exported fixtures (`fixtures/onnx/`), directly (inside the ε ball and [0,1], accuracy
 * lowered, no tensors left) and through `evaluate` (the start record names the gradient engine;
 * nothing is skipped), and the CLI on a folder of colour PNGs; no tensor or session leaks over 30
 * batches of a worker runtime.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { lastValueFrom, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/backend/index.js';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { openSource } from '../../src/data/index.js';
import { buildRunner } from '../../src/engine/build.js';
import { ort } from '../../src/engine/ort.js';
import { loadArtifact } from '../../src/models/artifact.js';
import { evaluate, type FinalEvent, type StartEvent } from '../../pipelines/index.js';
import { EvalRuntime, type EvalTask } from '../../workers/eval-task.js';
import { isBlackBox } from '../../pipelines/eval-plan.js';
import { runningPairs } from '../../pipelines/samples.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

const DIR = path.join(import.meta.dirname, '..', '..', 'fixtures', 'onnx');
const FIXTURES = [
  { name: 'cnn', data: 'mnist:test', eps: 0.1, dim: 784 },
  { name: 'resnet', data: 'tinted-mnist:test', eps: 8 / 255, dim: 32 * 32 * 3 },
] as const;
const ATTACKS = (eps: number) => [`fgsm:eps=${eps}`, `pgd:eps=${eps},steps=10`, `apgd-ce:eps=${eps},steps=10`, `autoattack:eps=${eps},steps=5,targets=2,queries=20`];

async function batchOf(uri: string, count: number, dim: number): Promise<{ pixels: Float32Array; labels: Int32Array }> {
  const pixels = new Float32Array(count * dim);
  const labels = new Int32Array(count);
  let i = 0;
  for await (const r of openSource(uri, { limit: count })) {
    pixels.set(r.pixels, i * dim);
    labels[i++] = r.label!;
  }
  return { pixels, labels };
}

describe('user ONNX models, white-box', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  for (const f of FIXTURES) {
    it(`${f.name}: every gradient attack stays in the ε ball and [0,1] and lowers accuracy`, async () => {
      const runner = await buildRunner(await loadArtifact(path.join(DIR, `${f.name}.onnx`)), 'onnx');
      const { pixels, labels } = await batchOf(f.data, 32, f.dim);
      const x = tf.tensor2d(pixels, [32, f.dim]);
      const y = tf.tensor1d(labels, 'int32');
      const before = tf.memory().numTensors;
      for (const spec of ATTACKS(f.eps)) {
        const res = await parseAttackSpec(spec).run(runner, x, y, { seed: 1 });
        let lo = Infinity;
        let hi = -Infinity;
        let linf = 0;
        for (let i = 0; i < res.adversarial.length; i++) {
          lo = Math.min(lo, res.adversarial[i]!);
          hi = Math.max(hi, res.adversarial[i]!);
          linf = Math.max(linf, Math.abs(res.adversarial[i]! - pixels[i]!));
        }
        expect(lo, spec).toBeGreaterThanOrEqual(0);
        expect(hi, spec).toBeLessThanOrEqual(1);
        expect(linf, spec).toBeLessThanOrEqual(f.eps + 1e-6);
        const robust = Array.from(res.predicted).filter((p, i) => p === labels[i]).length;
        const clean = Array.from(res.success).length;
        expect(robust, `${spec}: still correct out of ${clean}`).toBeLessThan(clean * 0.9);
      }
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, y]);
      runner.dispose();
    }, 180_000);
  }

  it('evaluate attacks both fixtures white-box, skipping nothing', async () => {
    for (const f of FIXTURES) {
      const file = path.join(DIR, `${f.name}.onnx`);
      const attacks = [`fgsm:eps=${f.eps}`, `pgd:eps=${f.eps},steps=5`];
      const events = await lastValueFrom(evaluate({ uri: f.data, limit: 32 }, { models: [file], attacks, workers: 1, batch: 16, seed: 2, statsEvery: { seconds: 3600 } }).pipe(toArray()));
      const start = events[0] as StartEvent;
      expect(start.models[0]).toMatchObject({ family: 'onnx', engine: 'onnx-cpu', gradient_engine: 'onnx-cpu', input_shape: [f.name === 'cnn' ? 28 : 32, f.name === 'cnn' ? 28 : 32, f.name === 'cnn' ? 1 : 3] });
      const final = events.at(-1) as FinalEvent;
      const model = final.models[file]!;
      const results = Object.entries(model.attacks).filter(([id]) => attacks.some((a) => id.startsWith(a.split(':')[0]!)));
      expect(results).toHaveLength(2);
      for (const [, r] of results) {
        expect(r.robust_acc!).toBeLessThan(model.clean.acc!);
        expect(r.mean_linf!).toBeLessThanOrEqual(f.eps + 1e-6);
      }
    }
  }, 300_000);

  it('the CLI: eval --data png:DIR --model resnet.onnx --attack autoattack:eps=8/255 runs white-box on colour PNGs', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'advstream-png-'));
    for await (const r of openSource('tinted-mnist:test', { limit: 8 })) {
      const png = new PNG({ width: 32, height: 32 });
      for (let p = 0; p < 32 * 32; p++) {
        for (let k = 0; k < 3; k++) png.data[p * 4 + k] = Math.round(r.pixels[p * 3 + k]! * 255);
        png.data[p * 4 + 3] = 255;
      }
      await mkdir(path.join(dir, String(r.label)), { recursive: true });
      await writeFile(path.join(dir, String(r.label), `${r.id.split('/').pop()}.png`), PNG.sync.write(png));
    }
    const model = path.join(DIR, 'resnet.onnx');
    const out = spawnSync(process.execPath, [MAIN, 'eval', '--data', `png:${dir}`, '--model', model, '--attack', 'autoattack:eps=8/255,steps=3,targets=2,queries=10', '--workers', '1'], {
      cwd: PACKAGE_ROOT,
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string } & Record<string, unknown>);
    const start = lines[0] as unknown as StartEvent;
    expect(start.models[0]).toMatchObject({ input_shape: [32, 32, 3], gradient_engine: 'onnx-cpu' });
    const final = lines.at(-1) as unknown as FinalEvent;
    const [id, r] = Object.entries(final.models[model]!.attacks)[0]!;
    expect(id).toMatch(/^autoattack:eps=0\.0313/);
    expect(r.robust_acc!).toBeLessThan(final.models[model]!.clean.acc!);
    expect(r.mean_linf!).toBeLessThanOrEqual(8 / 255 + 1e-6);
  }, 300_000);

  it('leaks no tensors and no sessions over 30 batches', async () => {
    const artifacts = [await loadArtifact(path.join(DIR, 'resnet.onnx'))];
    const attacks = ['fgsm:eps=0.03', 'pgd:eps=0.03,steps=2', 'apgd-ce:eps=0.03,steps=2'];
    const pairs = runningPairs(attacks.map((a) => parseAttackSpec(a)), artifacts.map(isBlackBox));
    const rt = await EvalRuntime.create({ models: artifacts, attacks, pairs, backend: 'wasm', engine: 'onnx' }, 'main');
    const { pixels, labels } = await batchOf('tinted-mnist:test', 8, 3072);
    const task = (index: number): EvalTask => ({ index, attempt: 0, seed: index, ids: Array.from({ length: 8 }, (_, k) => `i${k}`), count: 8, dim: 3072, pixels, labels });
    const first = await rt.run(task(0));
    const created = countSessions();
    let last = first;
    for (let b = 1; b < 30; b++) last = await rt.run(task(b));
    expect(last.tensors).toBe(first.tensors);
    expect(created()).toBe(0);
  }, 300_000);
});

/** Sessions created from now on (onnxruntime-node has no registry of live sessions; runs must create none). */
function countSessions(): () => number {
  const original = ort.InferenceSession.create;
  let n = 0;
  ort.InferenceSession.create = ((...args: Parameters<typeof original>) => {
    n++;
    return original(...args);
  }) as typeof original;
  return () => {
    ort.InferenceSession.create = original;
    return n;
  };
}
