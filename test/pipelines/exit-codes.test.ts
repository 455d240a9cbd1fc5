/**
 * The CLI's one exit-code rule (README): 2 for bad usage, 1 for bad input or a failed run. On the old
 * code a corrupt checkpoint and an unknown model family in a model.json exited 2 as BAD_ARGUMENT.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdvstreamError, exitCodeOf } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { scratchDir, testModels } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
let dir: string;
let model: string;

beforeAll(async () => {
  model = (await testModels())[0]!;
  dir = await scratchDir('exit-codes');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
const evalArgs = (m: string) => ['eval', '--data', 'mnist:test', '--limit', '16', '--model', m, '--attack', 'fgsm:eps=0.1', '--workers', '1', '--backend', 'wasm'];

describe('exit codes', () => {
  it('maps codes to the rule: usage 2, everything else 1', () => {
    expect(exitCodeOf(new AdvstreamError('BAD_ARGUMENT', 'x'))).toBe(2);
    expect(exitCodeOf(new AdvstreamError('BAD_SPEC', 'x'))).toBe(2);
    expect(exitCodeOf(new AdvstreamError('UNKNOWN_BACKEND', 'x'))).toBe(2);
    for (const code of ['BAD_RECORD', 'BAD_MODEL', 'CHECKPOINT_CORRUPT', 'MODEL_UNREACHABLE', 'WORKER_FAILED'] as const) {
      expect(exitCodeOf(new AdvstreamError(code, 'x'))).toBe(1);
    }
    expect(exitCodeOf(new Error('internal'))).toBe(1);
  });

  it('exits 1 for a corrupt checkpoint', async () => {
    const ckpt = path.join(dir, 'corrupt.ckpt');
    await writeFile(ckpt, '{"version": 1, "config_hash": "0123');
    const run = cli([...evalArgs(model), '--checkpoint', ckpt]);
    expect(run.stderr).toContain('[CHECKPOINT_CORRUPT]');
    expect(run.status).toBe(1);
  });

  it('exits 1 for a model.json naming an unknown family', async () => {
    const folder = path.join(dir, 'resnet');
    await mkdir(folder, { recursive: true });
    const json = JSON.parse(await readFile(path.join(model, 'model.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(folder, 'model.json'), JSON.stringify({ ...json, family: 'resnet' }));
    await writeFile(path.join(folder, 'weights.bin'), await readFile(path.join(model, 'weights.bin')));
    const run = cli(evalArgs(folder));
    expect(run.stderr).toMatch(/\[BAD_MODEL\]: .*model\.json: unknown model family 'resnet'/);
    expect(run.status).toBe(1);
  });

  it('exits 2 for a bad flag value and an unknown option', () => {
    expect(cli([...evalArgs(model), '--batch', '0']).status).toBe(2);
    expect(cli([...evalArgs(model), '--no-such-flag']).status).toBe(2);
  });
});
