/**
 * Model URLs under hostile servers (msw, in process): on the old code an endless body was read
 * without limit, a silent server hung the load with "fetch failed" after minutes, and a redirect to
 * another origin was followed and its weights used.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { delay, http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { loadArtifact, saveArtifact } from '../../src/models/artifact.js';
import { getFamily } from '../../src/models/registry.js';

const server = setupServer();
let dir: string;
let modelJson: Buffer;
let weights: Buffer;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = await mkdtemp(path.join(tmpdir(), 'advstream-artifact-url-'));
  const f = getFamily('mlp');
  const config = f.configure({ hidden: [8] });
  await saveArtifact(dir, { family: 'mlp', config, weights: f.init(config, 1) });
  modelJson = await readFile(path.join(dir, 'model.json'));
  weights = await readFile(path.join(dir, 'weights.bin'));
  server.listen({ onUnhandledRequest: 'error' });
});
afterEach(() => server.resetHandlers());
afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  return isAdvstreamError(e) ? `${e.code}: ${e.message}` : `no coded error: ${String(e)}`;
}

const ORIGIN = 'https://models.example.test';
const modelRoute = (json: Buffer = modelJson) => http.get(`${ORIGIN}/m/model.json`, () => new HttpResponse(new Uint8Array(json)));
const notFound = () => http.get(`${ORIGIN}/m/manifest.json`, () => new HttpResponse(null, { status: 404 }));

describe('model URLs', () => {
  it('stops reading a weight file past the bytes its manifest declares', async () => {
    let sent = 0;
    server.use(
      modelRoute(),
      http.get(`${ORIGIN}/m/weights.bin`, () => {
        const chunk = new Uint8Array(64 * 1024);
        // An endless body: it only ends when the reader stops reading.
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            sent += chunk.length;
            controller.enqueue(chunk);
          },
        });
        return new HttpResponse(body);
      }),
    );
    expect(await failure(loadArtifact(`${ORIGIN}/m/model.json`))).toBe(
      `BAD_MODEL: ${ORIGIN}/m/weights.bin: the server sends more than the ${weights.length} bytes expected`,
    );
    expect(sent).toBeLessThan(weights.length + 4 * 64 * 1024);
  });

  it('refuses a declared Content-Length over the manifest before reading the body', async () => {
    server.use(modelRoute(), http.get(`${ORIGIN}/m/weights.bin`, () => new HttpResponse(new Uint8Array(weights.length + 4), { headers: { 'content-length': String(weights.length + 4) } })));
    expect(await failure(loadArtifact(`${ORIGIN}/m/model.json`))).toMatch(/^BAD_MODEL: .*weights\.bin: the server sends \d+ bytes, more than the \d+ expected$/);
  });

  it('times out a silent server with MODEL_UNREACHABLE', async () => {
    server.use(
      modelRoute(),
      http.get(`${ORIGIN}/m/weights.bin`, async () => {
        await delay('infinite');
        return new HttpResponse(null);
      }),
    );
    const t0 = performance.now();
    expect(await failure(loadArtifact(`${ORIGIN}/m/model.json`, { timeoutMs: 300 }))).toBe(`MODEL_UNREACHABLE: ${ORIGIN}/m/weights.bin: no complete answer within 300 ms`);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('names a network failure with a code, not as an internal error', async () => {
    server.use(modelRoute(), http.get(`${ORIGIN}/m/weights.bin`, () => HttpResponse.error()));
    expect(await failure(loadArtifact(`${ORIGIN}/m/model.json`))).toMatch(/^MODEL_UNREACHABLE: https:\/\/models\.example\.test\/m\/weights\.bin: /);
  });

  it('refuses a redirect to another origin unless allowed, and follows one within the origin', async () => {
    const evil = new Uint8Array(weights.length).fill(7);
    server.use(
      modelRoute(),
      notFound(),
      http.get(`${ORIGIN}/m/weights.bin`, () => new HttpResponse(null, { status: 302, headers: { location: 'https://elsewhere.example.test/w.bin' } })),
      http.get('https://elsewhere.example.test/w.bin', () => new HttpResponse(evil)),
    );
    expect(await failure(loadArtifact(`${ORIGIN}/m/model.json`))).toBe(
      `BAD_MODEL: ${ORIGIN}/m/weights.bin: redirected to another origin (https://elsewhere.example.test); set ADVSTREAM_MODEL_CROSS_ORIGIN=1 to allow it`,
    );
    const allowed = await loadArtifact(`${ORIGIN}/m/model.json`, { allowCrossOrigin: true });
    expect(new Uint8Array(allowed.weightData)).toEqual(evil);
    server.use(http.get(`${ORIGIN}/m/weights.bin`, () => new HttpResponse(null, { status: 301, headers: { location: '/mirror/w.bin' } })), http.get(`${ORIGIN}/mirror/w.bin`, () => new HttpResponse(new Uint8Array(weights))));
    expect(new Uint8Array((await loadArtifact(`${ORIGIN}/m/model.json`)).weightData)).toEqual(new Uint8Array(weights));
  });

  it('checks the weights against a SHA-256 that model.json declares', async () => {
    const declare = (sha: string) => Buffer.from(JSON.stringify({ ...JSON.parse(modelJson.toString()), weightsSha256: sha }));
    const good = createHash('sha256').update(weights).digest('hex');
    const tampered = Buffer.from(weights);
    tampered[0]! ^= 1;
    server.use(modelRoute(declare(good)), notFound(), http.get(`${ORIGIN}/m/weights.bin`, () => new HttpResponse(new Uint8Array(tampered))));
    expect(await failure(loadArtifact(`${ORIGIN}/m/model.json`))).toBe(
      `BAD_MODEL: ${ORIGIN}/m/: the weights' SHA-256 is ${createHash('sha256').update(tampered).digest('hex')}, not the ${good} model.json declares`,
    );
    server.use(http.get(`${ORIGIN}/m/weights.bin`, () => new HttpResponse(new Uint8Array(weights))));
    expect((await loadArtifact(`${ORIGIN}/m/model.json`)).weightData.byteLength).toBe(weights.length);
  });
});
