/**
 * The reproduction dataflow and `advstream reproduce`: evaluations run once and are kept, a rerun
 * reads them back, a stop leaves nothing half-written, and the command writes the document.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reproduce, type ReproduceEvent } from '../../pipelines/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { judgeNumber, type Experiment } from '../../src/report/index.js';
import { scratchDir, testModels } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

let dir: string;
let experiment: Experiment;

beforeAll(async () => {
  dir = await scratchDir('reproduce');
  const models = await testModels();
  experiment = {
    id: 'tiny',
    title: 'Tiny',
    source: 'A test experiment.',
    setup: [],
    runs: [{ id: 'tiny-run', models, attacks: ['fgsm:eps=0.1'] }],
    judge: (r) => ({
      claims: [judgeNumber({ claim: 'error', paper: 0.5, ours: r.error('tiny-run', models[0]!, 'fgsm:eps=0.1'), tolerance: 0.5, stronger: 'higher', direction: { holds: true, text: 't' } })],
      tables: [],
      figures: [],
      findings: [],
    }),
  };
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const drain = (workDir: string, limit: number, stop?: AbortSignal) =>
  lastValueFrom(reproduce({ workDir, limit, workers: 1, ...(stop && { stop }) }, [experiment]).pipe(toArray()));

const types = (events: ReproduceEvent[]) => events.map((e) => e.type).filter((t) => t !== 'run-stats');

describe('reproduce', () => {
  it('runs each evaluation once and reads it back on a rerun', async () => {
    const workDir = path.join(dir, 'cache');
    const first = await drain(workDir, 24);
    expect(types(first)).toEqual(['plan', 'run-start', 'run-done']);
    const done = first.find((e) => e.type === 'run-done')!;
    expect(done.type === 'run-done' && done.run.fresh).toBe(true);
    expect(done.type === 'run-done' && done.run.outcome.images).toBe(24);
    expect(done.type === 'run-done' && done.run.command).toMatch(/^npx advstream eval --data mnist:test --limit 24 --engine tfjs --model .+ --attack fgsm:eps=0\.1$/);

    const second = await drain(workDir, 24);
    expect(types(second)).toEqual(['plan', 'run-done']);
    const plan = second[0]!;
    expect(plan.type === 'plan' && plan.runs.map((r) => [r.cached, r.compute])).toEqual([[true, false]]);
    const again = second[1]!;
    expect(again.type === 'run-done' && !again.run.fresh && again.run.outcome).toEqual(done.type === 'run-done' && done.run.outcome);
    // Nothing but the finished evaluation is left: its checkpoint is gone.
    expect(readdirSync(workDir)).toEqual(['tiny-run-24.json']);
  });

  it('keeps evaluations of different sizes apart', async () => {
    const workDir = path.join(dir, 'sizes');
    await drain(workDir, 16);
    const other = await drain(workDir, 20);
    expect(types(other)).toEqual(['plan', 'run-start', 'run-done']);
    expect(readdirSync(workDir).sort()).toEqual(['tiny-run-16.json', 'tiny-run-20.json']);
  });

  it('starts nothing once stopped, and keeps no result', async () => {
    const workDir = path.join(dir, 'stopped');
    const stop = new AbortController();
    stop.abort();
    expect(types(await drain(workDir, 16, stop.signal))).toEqual(['plan', 'stopped']);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it('rejects an unknown experiment id with BAD_ARGUMENT', () => {
    try {
      reproduce({ workDir: dir, only: ['nope'] });
      expect.unreachable();
    } catch (e) {
      expect(isAdvstreamError(e) && e.code).toBe('BAD_ARGUMENT');
    }
  });
});

describe('advstream reproduce', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, 'reproduce', ...args], { cwd: PACKAGE_ROOT, encoding: 'utf8' });

  it('writes the document and its figures, and reuses finished evaluations', () => {
    const out = path.join(dir, 'doc', 'reproduction.md');
    const args = ['--only', 'fgsm', '--limit', '8', '--workers', '1', '--work-dir', path.join(dir, 'cli-cache'), '--out', out];
    const run = cli(args);
    expect(run.status, run.stderr).toBe(0);
    const md = readFileSync(out, 'utf8');
    expect(md).toContain('## 1. FGSM and adversarial training (Goodfellow et al. 2015)');
    expect(md).toContain('npx advstream eval --data mnist:test --limit 8 --engine tfjs --model zoo:softmax --model zoo:maxout --model zoo:maxout-adv');
    expect(md).toContain('](reproduction/fgsm-transfer.svg)');
    expect(md).toContain('backend, engine tfjs-wasm, with 1 worker');
    expect(existsSync(path.join(dir, 'doc', 'reproduction', 'fgsm-transfer.svg'))).toBe(true);
    expect(run.stderr).toMatch(/9 claims: /);

    const rerun = cli(args);
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(rerun.stderr).toContain('0 evaluation(s) to run; 1 finished earlier');
  });

  it('exits 2 on an unknown experiment', () => {
    const run = cli(['--only', 'nope', '--out', path.join(dir, 'x.md'), '--work-dir', path.join(dir, 'x')]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("unknown experiment 'nope'");
  });
});
