/**
 * The native engine against tfjs, family by family, on the shipped zoo and 100 MNIST test images:
 * scores, and the input gradients of the attacks' cross-entropy (targeted and untargeted), of the
 * family's own loss, and of a DLR objective through the vector–Jacobian program.
 *
 * Metric: max |native − tfjs| / max |tfjs| over the whole array (scores `[B, C]`, gradients
 * `[B, D]`, values `[B]`): relative to the largest magnitude. An element-wise relative error is
 * undefined at the many exact zeros (ReLU, black pixels) and meaningless next to them; a per-sample
 * scale fails by design on the plain cross-entropy gradient p − e_y of confident samples, which
 * float32 rounds to noise in both engines (the reason the attacks rescale CE).
 *
 * Dense Associative Memories are different: relu(s/T)^n multiplies the rounding of s (a 784-term dot
 * product with cancellation) by n = 20 or 30, so two float32 engines that sum in different orders
 * differ by up to ~1e-4 on the scores however carefully each computes. For them the test asks the
 * right question against a float64 reference: the native engine is as accurate as tfjs (its error
 * at most twice tfjs's, or within the 1e-5 / 1e-4 tolerances).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { ceObjective, dlrLoss } from '../../src/attacks/losses.js';
import { loadArtifact, buildClassifier, type ModelArtifact } from '../../src/models/artifact.js';
import { tfjsGradient, type Objective } from '../../src/models/runner.js';
import { buildRunner, plainWeights } from '../../src/engine/build.js';
import { EXPORTABLE_FAMILIES } from '../../src/engine/export.js';
import { FamilyRunner } from '../../src/engine/native.js';
import { zooModels } from '../../src/models/zoo.js';
import { mnist } from '../models/helpers.js';

/** max|a − b| / max|b| over the whole array. */
async function globalRelative(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const t = tf.tidy(() => tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.maximum(tf.max(tf.abs(b)), 1e-30)));
  const v = (await t.data())[0]!;
  t.dispose();
  return v;
}

/**
 * DAM's scores and the attacks' CE input gradient in float64, straight from the definitions in
 * `families/dam.ts` and `attacks/losses.ts`.
 */
function damFloat64(artifact: ModelArtifact, data: { x: Float32Array; y: Int32Array; count: number }): { scores: Float64Array; ceGrad: Float64Array } {
  const json = artifact.modelJson as { config: Record<string, unknown> };
  const n = Number(json.config.n);
  const T = Number(json.config.tEnd);
  const w = plainWeights(artifact);
  const xiV = w.xi_v!.data;
  const xiC = w.xi_c!.data;
  const [C, K] = w.xi_c!.shape as [number, number];
  const D = w.xi_v!.shape[0]!;
  const scores = new Float64Array(data.count * C);
  const ceGrad = new Float64Array(data.count * D);
  const s = new Float64Array(K);
  for (let b = 0; b < data.count; b++) {
    for (let mu = 0; mu < K; mu++) {
      let acc = 0;
      for (let i = 0; i < D; i++) acc += (2 * data.x[b * D + i]! - 1) * xiV[i * K + mu]!;
      for (let a = 0; a < C; a++) acc -= xiC[a * K + mu]!;
      s[mu] = acc;
    }
    const relu = (u: number) => Math.max(u / T, 0);
    const logits = new Float64Array(C);
    for (let a = 0; a < C; a++) {
      let acc = 0;
      for (let mu = 0; mu < K; mu++) acc += relu(s[mu]! + 2 * xiC[a * K + mu]!) ** n - relu(s[mu]!) ** n;
      logits[a] = acc;
      scores[b * C + a] = acc;
    }
    // q − e_y, q the softmax over the wrong classes.
    const y = data.y[b]!;
    let top = -Infinity;
    for (let a = 0; a < C; a++) if (a !== y) top = Math.max(top, logits[a]!);
    let z = 0;
    const dScores = new Float64Array(C);
    for (let a = 0; a < C; a++) if (a !== y) z += Math.exp(logits[a]! - top);
    for (let a = 0; a < C; a++) dScores[a] = a === y ? -1 : Math.exp(logits[a]! - top) / z;
    let dSum = 0;
    for (let a = 0; a < C; a++) dSum += dScores[a]!;
    const ds = new Float64Array(K);
    for (let mu = 0; mu < K; mu++) {
      let acc = -dSum * (n * relu(s[mu]!) ** (n - 1)) / T;
      for (let a = 0; a < C; a++) acc += (dScores[a]! * (n * relu(s[mu]! + 2 * xiC[a * K + mu]!) ** (n - 1))) / T;
      ds[mu] = acc;
    }
    for (let i = 0; i < D; i++) {
      let acc = 0;
      for (let mu = 0; mu < K; mu++) acc += ds[mu]! * xiV[i * K + mu]!;
      ceGrad[b * D + i] = 2 * acc;
    }
  }
  return { scores, ceGrad };
}

const zoo = await zooModels();
const exportable = zoo.filter((z) => EXPORTABLE_FAMILIES.includes(z.manifest.family));

describe('native programs agree with tfjs on the shipped zoo', () => {
  let x: Tensor2D;
  let labels: Tensor1D;
  let targets: Tensor1D;
  let data: { x: Float32Array; y: Int32Array; count: number };
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
    data = await mnist('test', 100);
    x = tf.tensor2d(data.x, [data.count, 784]);
    labels = tf.tensor1d(data.y, 'int32');
    targets = tf.tensor1d(Int32Array.from(data.y, (y) => (y + 3) % 10), 'int32');
  });

  it('covers every exportable family of the zoo', () => {
    expect(new Set(exportable.map((z) => z.manifest.family))).toEqual(new Set(EXPORTABLE_FAMILIES));
  });

  for (const entry of exportable) {
    it(`${entry.name}: scores within 1e-5, gradients within 1e-4`, async () => {
      const artifact = await loadArtifact(entry.ref);
      const before = tf.memory().numTensors;
      const native = await buildRunner(artifact, 'onnx');
      const reference = await buildClassifier(artifact);
      expect(native.engine).toMatch(/^onnx-/);
      try {
        const scores = await native.scores(x);
        const want = tf.tidy(() => reference.scores(x));
        const dam = entry.manifest.family === 'dam';
        const exact = dam ? damFloat64(artifact, data) : undefined;
        if (exact) {
          const truth = tf.tensor2d(Float32Array.from(exact.scores), want.shape as [number, number]);
          const wantErr = await globalRelative(want, truth);
          const gotErr = await globalRelative(scores, truth);
          truth.dispose();
          expect(gotErr, 'scores against float64').toBeLessThanOrEqual(Math.max(2 * wantErr, 1e-5));
        } else expect(await globalRelative(scores, want), 'scores').toBeLessThan(1e-5);
        tf.dispose([scores, want]);

        const objectives: [string, Objective][] = [
          ['ce', ceObjective(labels)],
          ['ce targeted', ceObjective(labels, targets)],
          ['dlr (vjp)', { kind: 'scores', fn: (s) => dlrLoss(s, labels) }],
        ];
        const iso = entry.manifest.family === 'isometric' && Number(entry.manifest.config.beta) !== 0;
        if (!iso) objectives.push(['model', { kind: 'model', labels, sign: 1 }]);
        for (const [what, objective] of objectives) {
          const got = await native.gradient(objective, x);
          const ref = tfjsGradient(reference, objective, x);
          if (exact && what === 'ce') {
            const truth = tf.tensor2d(Float32Array.from(exact.ceGrad), ref.grad.shape as [number, number]);
            const wantErr = await globalRelative(ref.grad, truth);
            expect(await globalRelative(got.grad, truth), 'ce gradient against float64').toBeLessThanOrEqual(Math.max(2 * wantErr, 1e-4));
            truth.dispose();
          } else if (!dam) {
            expect(await globalRelative(got.grad, ref.grad), `${what} gradient`).toBeLessThan(1e-4);
            expect(await globalRelative(got.value, ref.value), `${what} value`).toBeLessThan(1e-4);
            expect(await globalRelative(got.scores, ref.scores), `${what} scores`).toBeLessThan(1e-5);
          } else {
            // The other DAM objectives: the same float32 conditioning, bounded loosely.
            expect(await globalRelative(got.grad, ref.grad), `${what} gradient`).toBeLessThan(2e-3);
          }
          tf.dispose([got.grad, got.value, got.scores, ref.grad, ref.value, ref.scores]);
        }
      } finally {
        native.dispose();
        reference.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    }, 120_000);
  }

  it('--engine onnx refuses the isometric penalty (it couples the batch), --engine auto computes it on tfjs', async () => {
    const artifact = await loadArtifact('zoo:iso-b0.1');
    const forced = await buildRunner(artifact, 'onnx');
    await expect(forced.gradient({ kind: 'model', labels, sign: 1 }, x)).rejects.toMatchObject({ code: 'ATTACK_UNSUPPORTED' });
    forced.dispose();
    const auto = await buildRunner(artifact, 'auto');
    const got = await auto.gradient({ kind: 'model', labels, sign: 1 }, x);
    expect(got.grad.shape).toEqual([100, 784]);
    tf.dispose([got.grad, got.value, got.scores]);
    auto.dispose();
  });

  it("drp: its own loss ‖f(x) − p_y‖∞, over the embedding, runs natively under --engine onnx (targeted too)", async () => {
    const artifact = await loadArtifact('zoo:drp');
    const forced = await buildRunner(artifact, 'onnx');
    const reference = await buildClassifier(artifact);
    expect(forced).toBeInstanceOf(FamilyRunner);
    expect((forced as FamilyRunner).programs).toContain('model');
    const objective: Objective = { kind: 'model', labels: targets, sign: -1 };
    const got = await forced.gradient(objective, x);
    const ref = tfjsGradient(reference, objective, x);
    expect(await globalRelative(got.grad, ref.grad)).toBeLessThan(1e-4);
    expect(await globalRelative(got.value, ref.value)).toBeLessThan(1e-5);
    const loss = await forced.loss('model', x, labels);
    const want = tf.tidy(() => reference.loss('model', x, labels));
    expect(await globalRelative(loss, want)).toBeLessThan(1e-5);
    tf.dispose([got.grad, got.value, got.scores, ref.grad, ref.value, ref.scores, loss, want]);
    reference.dispose();
    forced.dispose();
  });

  it('a family without an export is an error under --engine onnx, before anything runs', async () => {
    const artifact = await loadArtifact('zoo:mlp-relu');
    const foreign: ModelArtifact = { ...artifact, id: 'foreign', modelJson: { ...artifact.modelJson, family: 'unexported' } as ModelArtifact['modelJson'] };
    await expect(buildRunner(foreign, 'onnx')).rejects.toMatchObject({ code: 'BAD_MODEL', message: expect.stringMatching(/has no ONNX export/) });
  });
});
