import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor2D } from '../../src/backend/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { buildClassifier, loadArtifact, loadClassifier, saveArtifact } from '../../src/models/artifact.js';
import { getFamily } from '../../src/models/registry.js';

let dir: string;
let good: string;
const server = setupServer();

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = await mkdtemp(path.join(tmpdir(), 'advstream-artifact-'));
  good = path.join(dir, 'good');
  const f = getFamily('mlp');
  const config = f.configure({ hidden: [8] });
  await saveArtifact(good, { family: 'mlp', config, weights: f.init(config, 1) });
  server.listen({ onUnhandledRequest: 'error' });
});
afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

async function variant(name: string, edit: (json: Record<string, unknown>) => unknown, weights?: Uint8Array): Promise<string> {
  const out = path.join(dir, name);
  await mkdir(out, { recursive: true });
  const json = JSON.parse(await readFile(path.join(good, 'model.json'), 'utf8')) as Record<string, unknown>;
  const edited = edit(json);
  await writeFile(path.join(out, 'model.json'), typeof edited === 'string' ? edited : JSON.stringify(edited));
  await writeFile(path.join(out, 'weights.bin'), weights ?? (await readFile(path.join(good, 'weights.bin'))));
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  return isAdvstreamError(e) ? `${e.code}: ${e.message}` : `not an advstream error: ${String(e)}`;
}

describe('model artifacts', () => {
  it('load from a folder, a model.json path and a URL, with identical scores', async () => {
    const files = new Map<string, Buffer>([
      ['model.json', await readFile(path.join(good, 'model.json'))],
      ['weights.bin', await readFile(path.join(good, 'weights.bin'))],
    ]);
    server.use(
      http.get('https://models.example.test/mlp/:file', ({ params }) => {
        const body = files.get(String(params.file));
        return body ? new HttpResponse(new Uint8Array(body)) : new HttpResponse(null, { status: 404 });
      }),
    );
    const x = tf.randomUniform([4, 784], 0, 1, 'float32', 3) as Tensor2D;
    const models = [
      await loadClassifier(good),
      await loadClassifier(path.join(good, 'model.json')),
      await loadClassifier('https://models.example.test/mlp/model.json'),
    ];
    const scores = models.map((m) => Array.from(m.scores(x).dataSync()));
    expect(scores[1]).toEqual(scores[0]);
    expect(scores[2]).toEqual(scores[0]);
    for (const m of models) m.dispose();
    x.dispose();
  });

  it.each([
    ['malformed model.json', () => variant('malformed', () => '{"format": "advstream", '), /BAD_MODEL: .*model\.json: not JSON/],
    ['a weight path escaping the folder', () => variant('escape', (j) => ({ ...j, weightsManifest: [{ ...(j.weightsManifest as object[])[0], paths: ['../good/weights.bin'] }] })), /BAD_MODEL: .*escapes the model folder/],
    ['weights of the wrong size', () => variant('short', (j) => j, new Uint8Array(100)), /BAD_MODEL: .*hold 100 bytes but the manifest's weights need/],
    ['a missing weight file', () => variant('missing', (j) => ({ ...j, weightsManifest: [{ ...(j.weightsManifest as object[])[0], paths: ['nope.bin'] }] })), /BAD_MODEL: .*weight file 'nope\.bin' not found/],
    ['an unknown family', () => variant('family', (j) => ({ ...j, family: 'resnet' })), /BAD_MODEL: .*model\.json: unknown model family 'resnet'/],
    ['a manifest entry of the wrong type', () => variant('shape', (j) => ({ ...j, weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'x', shape: [-1], dtype: 'float32' }] }] })), /BAD_MODEL: .*weightsManifest/],
  ])('rejects %s with a clear error', async (_label, make, pattern) => {
    const folder = await make();
    expect(await codeOf(loadClassifier(folder))).toMatch(pattern);
  });

  it('rejects a malformed manifest.json and a missing folder', async () => {
    const folder = await variant('bad-manifest', (j) => j);
    await writeFile(path.join(folder, 'manifest.json'), JSON.stringify({ name: 'x' }));
    expect(await codeOf(loadArtifact(folder))).toMatch(/BAD_MODEL: .*manifest\.json: /);
    expect(await codeOf(loadArtifact(path.join(dir, 'nowhere')))).toMatch(/BAD_MODEL: .*no such model folder/);
    expect(await codeOf(loadArtifact('zoo:../etc'))).toMatch(/BAD_MODEL: zoo:\.\.\/etc: zoo names/);
  });

  it("loads a user's tfjs LayersModel through the same interface", async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [784], units: 16, activation: 'relu' }), tf.layers.dense({ units: 10 })],
    });
    const saved = (await model.save(tf.io.withSaveHandler(async (a) => ({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' }, ...a })))) as unknown as tf.io.ModelArtifacts;
    const folder = path.join(dir, 'layers');
    await mkdir(folder, { recursive: true });
    await writeFile(
      path.join(folder, 'model.json'),
      JSON.stringify({ format: 'layers-model', modelTopology: saved.modelTopology, weightsManifest: [{ paths: ['w.bin'], weights: saved.weightSpecs }] }),
    );
    await writeFile(path.join(folder, 'w.bin'), new Uint8Array(saved.weightData as ArrayBuffer));
    const loaded = await buildClassifier(await loadArtifact(folder));
    expect(loaded).toMatchObject({ family: 'tfjs-layers', numClasses: 10, inputShape: [28, 28, 1] });
    const x = tf.randomUniform([3, 784], 0, 1, 'float32', 5) as Tensor2D;
    const expected = (model.predict(x) as tf.Tensor).dataSync();
    const got = loaded.scores(x).dataSync();
    expected.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5));
    const g = tf.grad((input) => tf.sum(loaded.loss('ce', input as Tensor2D, tf.tensor1d([1, 2, 3], 'int32'))))(x);
    expect(tf.norm(g).dataSync()[0]).toBeGreaterThan(0);
    loaded.dispose();
    model.dispose();
  });

  it("loads a user's tfjs GraphModel (a classifier with logits) through the same interface", async () => {
    const w = tf.randomNormal([784, 10], 0, 0.05, 'float32', 9);
    const folder = path.join(dir, 'graph');
    await mkdir(folder, { recursive: true });
    const dims = (...d: number[]) => ({ dim: d.map((size) => ({ size: String(size) })) });
    const modelTopology = {
      node: [
        { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: dims(-1, 784) } } },
        { name: 'w', op: 'Const', attr: { dtype: { type: 'DT_FLOAT' }, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims(784, 10) } } } },
        { name: 'logits', op: 'MatMul', input: ['x', 'w'], attr: { T: { type: 'DT_FLOAT' }, transpose_a: { b: false }, transpose_b: { b: false } } },
      ],
      library: {},
      versions: { producer: 1 },
    };
    await writeFile(
      path.join(folder, 'model.json'),
      JSON.stringify({ format: 'graph-model', modelTopology, weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'w', shape: [784, 10], dtype: 'float32' }] }] }),
    );
    await writeFile(path.join(folder, 'w.bin'), new Uint8Array((await w.data()).buffer));
    const loaded = await buildClassifier(await loadArtifact(folder));
    expect(loaded).toMatchObject({ family: 'tfjs-graph', numClasses: 10, inputShape: [28, 28, 1] });
    const x = tf.randomUniform([3, 784], 0, 1, 'float32', 5) as Tensor2D;
    const expected = tf.matMul(x, w).dataSync();
    const got = loaded.scores(x).dataSync();
    expected.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 4));
    const g = tf.grad((input) => tf.sum(loaded.loss('ce', input as Tensor2D, tf.tensor1d([1, 2, 3], 'int32'))))(x);
    expect(tf.norm(g).dataSync()[0]).toBeGreaterThan(0);
    loaded.dispose();
  });
});
