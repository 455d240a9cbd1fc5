/**
 * `advstream audit`, `serve` and `audit-bench` end to end, through the compiled CLI (run
 * `npx tsc -p .` first; `npm test` does), on the small test models.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/attacks/index.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { auditDetectors, auditModels, jsonRecord, mnistRecords, type AuditModels } from './audit-helpers.js';
import { runCli, ndjsonLines, scratchDir, testModels } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

let dir: string;
let m: AuditModels;
let input: string;
let flags: string[];

const cli = (args: string[]) => runCli(args, dir);

const lines = ndjsonLines;

beforeAll(async () => {
  for (const f of [MAIN, path.join(PACKAGE_ROOT, 'dist', 'workers', 'audit-worker.js')]) {
    expect(existsSync(f), `${f} is not built: run npx tsc -p .`).toBe(true);
  }
  dir = await scratchDir('audit-cli');
  m = await auditModels();
  const rng = new Rng(5);
  const good = (await mnistRecords((p) => p % 2 === 1, 20)).map((r) => JSON.stringify(jsonRecord(r)));
  const noise = Array.from({ length: 4 }, (_, i) => JSON.stringify({ id: `noise-${i}`, pixels: Array.from(rng.uniforms(784)) }));
  input = path.join(dir, 'in.ndjson');
  await writeFile(input, [...good.slice(0, 10), 'not json', ...noise, JSON.stringify({ id: 'dim', pixels: [0.5] }), ...good.slice(10)].join('\n') + '\n');
  flags = [
    ...auditDetectors(m).flatMap((d) => ['--detector', d]),
    '--fpr',
    '0.05',
    '--calibration',
    path.join(dir, 'calibration.json'),
    '--calibration-limit',
    '300',
    '--workers',
    '2',
  ];
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('advstream audit', () => {
  it('writes a start line, one verdict per good record, summaries, the rejects, and exits 0', async () => {
    const rejects = path.join(dir, 'rejects.ndjson');
    const run = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--rejects', rejects, '--batch', '8']);
    expect(run.code, run.stderr).toBe(0);
    const out = lines(run.stdout);
    expect(out[0]).toMatchObject({ type: 'start', source: `ndjson:${input}`, fpr: 0.05, workers: 2 });
    const verdicts = out.filter((l) => l.type === 'verdict');
    expect(verdicts).toHaveLength(24);
    expect(verdicts.slice(10, 14).map((v) => v.id)).toEqual(['noise-0', 'noise-1', 'noise-2', 'noise-3']);
    for (const v of verdicts) expect(Object.keys(v)).toEqual(expect.arrayContaining(['id', 'flagged', 'combined', 'scores', 'flags', 'predictions', 'evidence']));
    const final = out.at(-1)!;
    expect(final).toMatchObject({ type: 'summary', final: true, records: 24, rejected: 2, stop_reason: 'end' });
    expect((final.flagged as { k: number }).k).toBe(verdicts.filter((v) => v.flagged).length);
    expect(lines(readFileSync(rejects, 'utf8')).map((r) => [r.line, r.code])).toEqual([
      [11, 'BAD_RECORD'],
      [16, 'BAD_RECORD'],
    ]);
    expect(run.stderr).toMatch(/calibration saved to .*calibration\.json/);
    expect(run.stderr).toMatch(/advstream audit: 24 records · flagged \d+/);
  });

  it('writes only the flagged verdicts with --flagged-only, summaries still, and reuses the calibration', async () => {
    const outFile = path.join(dir, 'flagged.ndjson');
    const run = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--flagged-only', '--out', outFile]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/calibration: reusing .*calibration\.json/);
    const out = lines(readFileSync(outFile, 'utf8'));
    const verdicts = out.filter((l) => l.type === 'verdict');
    const final = out.at(-1)!;
    expect(final).toMatchObject({ type: 'summary', final: true, records: 24 });
    expect(verdicts.length).toBe((final.flagged as { k: number }).k);
    expect(verdicts.every((v) => v.flagged === true)).toBe(true);
    expect(verdicts.length).toBeLessThan(24);
  });

  it('stops at the first unreadable record under --on-bad-record fail', async () => {
    const run = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--on-bad-record', 'fail']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/BAD_RECORD.*line 11: not JSON/);
  });
});

describe('advstream serve', () => {
  it('listens on loopback, audits with the token, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', ...flags], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ADVSTREAM_TOKEN: 'tok' },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('close', () => reject(new Error(`serve exited: ${stderr}`)));
    });
    const { url } = JSON.parse(first) as { url: string };
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const records = (await mnistRecords((p) => p % 2 === 1, 2)).map(jsonRecord);
    const denied = await fetch(`${url}/v1/audit`, { method: 'POST', body: JSON.stringify({ records }) });
    expect(denied.status).toBe(401);
    const res = await fetch(`${url}/v1/audit`, { method: 'POST', body: JSON.stringify({ records }), headers: { authorization: 'Bearer tok' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { verdicts: { id: string }[] }).verdicts.map((v) => v.id)).toEqual(records.map((r) => r.id));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/token required/);
  });
});

describe('advstream audit-bench', () => {
  it('writes the JSON and the roc lines, which advstream report reads', async () => {
    const [, softmax] = await testModels();
    const out = path.join(dir, 'bench.json');
    const run = await cli([
      'audit-bench',
      ...flags,
      '--limit',
      '24',
      '--attack',
      'fgsm:eps=0.2',
      '--source',
      m.mlp,
      '--surrogate',
      softmax!,
      '--adaptive',
      'pgd:eps=0.3,steps=5',
      '--out',
      out,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8')) as { results: { kind: string }[]; clean: { n: number } };
    expect(result.results.map((r) => r.kind)).toEqual(['white-box', 'transfer', 'adaptive']);
    expect(result.clean.n).toBe(24);
    const roc = path.join(dir, 'bench.roc.ndjson');
    expect(lines(readFileSync(roc, 'utf8'))[0]).toMatchObject({ type: 'roc' });
    expect(run.stderr).toMatch(/attack @ source/);
    const report = await cli(['report', roc, '--md', '-']);
    expect(report.code, report.stderr).toBe(0);
    expect(report.stdout).toMatch(/## Detectors/);
  });
});
