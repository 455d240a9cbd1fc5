/**
 * `advstream data inspect` end to end, through the compiled CLI. The build runs first when the
 * compiled files are missing or older than the sources they come from.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idxImages, idxLabels, line, pngBytes, tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const COMPILED = [MAIN, join(ROOT, 'dist', 'src', 'cli', 'commands', 'data.js')];
const SOURCES = [join(ROOT, 'src', 'data'), join(ROOT, 'src', 'cli'), join(ROOT, 'src', 'errors.ts')];

function newestSource(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestSource(join(path, name))));
}

beforeAll(() => {
  const built = Math.min(...COMPILED.map((p) => (existsSync(p) ? statSync(p).mtimeMs : 0)));
  if (built < Math.max(...SOURCES.map(newestSource))) {
    // Other folders' type errors must not block this suite: tsc still emits, and the check below decides.
    spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ROOT], { stdio: 'ignore' });
  }
  for (const p of COMPILED) expect(existsSync(p), `${p} was not built`).toBe(true);
});

const tmp = tempDir();
afterAll(tmp.cleanup);

function file(name: string, bytes: Buffer | string): string {
  const path = join(tmp.dir, name);
  writeFileSync(path, bytes);
  return path;
}

function cli(args: string[], input?: string) {
  const run = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', input, cwd: tmp.dir });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function inspectJson(args: string[], input?: string) {
  const run = cli(['data', 'inspect', ...args, '--json'], input);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

describe('advstream data inspect', () => {
  it('reports mnist:test exactly: 10,000 images, 28x28x1, [0,1], the label histogram', () => {
    const run = cli(['data', 'inspect', 'mnist:test', '--json']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      '{"source":"mnist:test","count":10000,"shape":[28,28,1],"min":0,"max":1,' +
        '"labels":{"0":980,"1":1135,"2":1032,"3":1010,"4":982,"5":892,"6":958,"7":1028,"8":974,"9":1009},' +
        '"unlabeled":0,"rejected":0,"skipped":0}\n',
    );
  });

  it('prints a human-readable summary by default', () => {
    const run = cli(['data', 'inspect', 'mnist:test', '--limit', '100']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('records:   100\n');
    expect(run.stdout).toContain('shape:     28x28x1\n');
    expect(run.stdout).toMatch(/labels:    0:\d+ 1:\d+/);
  });

  it('counts mnist:train cheaply with an offset near its end', () => {
    expect(inspectJson(['mnist:train', '--offset', '59990'])).toMatchObject({ count: 10, skipped: 59990 });
  });

  it.each([
    [['--limit', '-1'], "--limit must be a non-negative integer, got '-1'"],
    [['--limit', 'ten'], "--limit must be a non-negative integer, got 'ten'"],
    [['--offset', '1.5'], "--offset must be a non-negative integer, got '1.5'"],
    [['--on-bad-record', 'maybe'], "--on-bad-record must be fail or skip, got 'maybe'"],
  ])('%j is a usage error (exit 2)', (flags, message) => {
    const run = cli(['data', 'inspect', 'mnist:test', ...flags]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`advstream: error [BAD_ARGUMENT]: ${message}\n`);
  });

  it('an unknown source kind is a usage error naming the valid ones', () => {
    const run = cli(['data', 'inspect', 'csv:x.csv']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('[BAD_SPEC]');
    expect(run.stderr).toContain('mnist:, idx:, png:, ndjson:');
  });

  describe('bad records', () => {
    const ndjson = () =>
      file(
        'mixed.ndjson',
        [
          line({ id: 'a' }),
          line({ id: 'b', label: 1 }),
          line({ id: 'abc', pixels: [0, 0.5, 2, 0] }),
          'not json at all',
          line({ id: 'nan', pixels: [0, null, 0, 0] }),
          line({ id: 'wrong', shape: [2, 3, 1] }),
          line({ id: 'c' }),
        ].join('\n'),
      );

    it('under fail: exit 1 and a message naming file, line and record', () => {
      const path = ndjson();
      const run = cli(['data', 'inspect', `ndjson:${path}`]);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(`advstream: error [BAD_RECORD]: ${path}, line 3, record abc: pixel 2 is 2, outside [0, 1]\n`);
    });

    it('under skip: counts them and writes each to --rejects as a JSON line; read + rejected = lines', () => {
      const path = ndjson();
      const rejectsPath = join(tmp.dir, 'rejects.ndjson');
      const summary = inspectJson([`ndjson:${path}`, '--on-bad-record', 'skip', '--rejects', rejectsPath]);
      expect(summary).toMatchObject({ count: 3, rejected: 4, labels: { 1: 1 }, unlabeled: 2, shape: [2, 2, 1] });
      const rejects = readFileSync(rejectsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(rejects).toEqual([
        { file: path, line: 3, id: 'abc', code: 'BAD_RECORD', reason: 'pixel 2 is 2, outside [0, 1]' },
        { file: path, line: 4, code: 'BAD_RECORD', reason: expect.stringMatching(/^not JSON: /) },
        { file: path, line: 5, id: 'nan', code: 'BAD_RECORD', reason: 'pixel 1 is NaN' },
        { file: path, line: 6, id: 'wrong', code: 'BAD_RECORD', reason: 'shape 2x3x1 needs 6 pixels, got 4' },
      ]);
    });

    it('reads NDJSON from stdin with -', () => {
      const summary = inspectJson(['-'], `${line({ id: 'a', label: 4 })}\n${line({ id: 'b', label: 4 })}\n`);
      expect(summary).toMatchObject({ source: '-', count: 2, labels: { 4: 2 } });
    });

    it('a truncated IDX: the cut record names file, byte offset and record; skip keeps the whole ones', () => {
      const path = file('cut.idx', idxImages(5, 4, 4, { images: 2.5 }));
      const run = cli(['data', 'inspect', `idx:${path}`]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(`^advstream: error \\[BAD_RECORD\\]: ${path}, byte 48, record cut\\.idx/2: truncated: record 2 of 5`),
      );
      expect(inspectJson([`idx:${path}`, '--on-bad-record', 'skip'])).toMatchObject({ count: 2, rejected: 1 });
    });

    it('a wrong magic number and a header claiming 10^9 images fail fast as bad sources', () => {
      const magic = idxImages(2, 4, 4);
      magic.writeUInt32BE(0xdeadbeef, 0);
      const wrong = cli(['data', 'inspect', `idx:${file('magic.idx', magic)}`]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain('[BAD_SOURCE]');
      expect(wrong.stderr).toContain('byte 0: wrong magic number 0xdeadbeef');
      const started = performance.now();
      const liar = cli(['data', 'inspect', `idx:${file('liar.idx', idxImages(3, 28, 28, { claim: 1e9 }))}`, '--on-bad-record', 'skip']);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(liar.code).toBe(1);
      expect(liar.stderr).toContain('[BAD_SOURCE]');
      expect(liar.stderr).toContain('claims 1000000000 images');
    });

    it('gzip IDX with labels reads like the plain file', () => {
      const images = file('g.idx.gz', gzipSync(idxImages(4, 2, 2)));
      const labels = file('g-labels.gz', gzipSync(idxLabels([2, 2, 7, 0])));
      expect(inspectJson([`idx:${images},${labels}`])).toMatchObject({ count: 4, shape: [2, 2, 1], labels: { 0: 1, 2: 2, 7: 1 } });
    });

    it('a PNG that does not decode names the file; skip writes it to --rejects', () => {
      const dir = join(tmp.dir, 'pngs');
      mkdirSync(join(dir, '3'), { recursive: true });
      writeFileSync(join(dir, '3', 'good.png'), pngBytes(2, 2));
      writeFileSync(join(dir, '3', 'bad.png'), 'GIF89a');
      const run = cli(['data', 'inspect', `png:${dir}`]);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(`advstream: error [BAD_RECORD]: ${join(dir, '3', 'bad.png')}, record 3/bad.png: the PNG does not decode: not a PNG (no PNG signature)\n`);
      const rejectsPath = join(tmp.dir, 'png-rejects.ndjson');
      expect(inspectJson([`png:${dir}`, '--on-bad-record', 'skip', '--rejects', rejectsPath])).toMatchObject({ count: 1, rejected: 1, labels: { 3: 1 } });
      expect(JSON.parse(readFileSync(rejectsPath, 'utf8'))).toMatchObject({ file: join(dir, '3', 'bad.png'), id: '3/bad.png', code: 'BAD_RECORD' });
    });
  });
});
