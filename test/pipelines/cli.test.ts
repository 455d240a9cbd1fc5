/**
 * `advstream eval` end to end, through the compiled CLI (run `npx tsc -p .` first; `npm test` does).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { scratchDir, testModels } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

let models: string[];
let dir: string;

beforeAll(async () => {
  for (const f of [MAIN, path.join(PACKAGE_ROOT, 'dist', 'workers', 'eval-worker.js')]) {
    expect(existsSync(f), `${f} is not built: run npx tsc -p .`).toBe(true);
  }
  models = await testModels();
  dir = await scratchDir('cli');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  lines: Record<string, unknown>[];
  stderr: string;
}

/** Runs the CLI; with `signal`, sends it once `afterStats` stats lines are out and `ready()` holds. */
function evalCli(args: string[], signal?: NodeJS.Signals, afterStats = 1, ready: () => boolean = () => true): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'eval', ...args], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    let stdout = '';
    let stderr = '';
    let sent = false;
    let stats = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      let nl: number;
      while ((nl = stdout.indexOf('\n')) >= 0) {
        const line = JSON.parse(stdout.slice(0, nl)) as Record<string, unknown>;
        stdout = stdout.slice(nl + 1);
        lines.push(line);
        if (line.type === 'stats') stats++;
        if (signal && !sent && stats >= afterStats && ready()) {
          sent = true;
          child.kill(signal);
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines, stderr }));
  });
}

/** Pixels for more than two batches: the pixel lines likely straddle where the interrupted runs below stop. */
const PIXELS = ['--sample-pixels', '40'];

/** The uninterrupted run the resumed ones must equal, computed once. */
let whole: Promise<{ final: Record<string, unknown>; samples: string }> | undefined;
function wholeRun() {
  whole ??= evalCli([...common(320, 10), ...PIXELS, '--samples', path.join(dir, 'whole.ndjson')]).then((run) => {
    expect(run.code).toBe(0);
    return { final: run.lines[run.lines.length - 1]!, samples: readFileSync(path.join(dir, 'whole.ndjson'), 'utf8') };
  });
  return whole;
}

const statistics = (final: Record<string, unknown>) => ({ images: final.images, models: final.models, transfer: final.transfer });

function common(limit: number, steps: number): string[] {
  return [
    '--data', 'mnist:test', '--limit', String(limit), '--model', models[0]!, '--model', models[1]!,
    '--attack', 'fgsm:eps=0.1', '--attack', `pgd:eps=0.3,steps=${steps}`, '--workers', '2', '--batch', '16',
    '--stats-every', '1batches', '--backend', 'wasm', '--seed', '3',
  ];
}

describe('advstream eval', () => {
  it('on SIGINT stops reading, finishes the batches in flight, writes the final line and exits 130', async () => {
    const run = await evalCli(common(2000, 20), 'SIGINT');
    expect(run.code).toBe(130);
    const final = run.lines[run.lines.length - 1]!;
    expect(final.type).toBe('final');
    expect(final.stop_reason).toBe('stopped');
    const images = final.images as number;
    expect(images).toBeGreaterThan(0);
    expect(images).toBeLessThan(2000);
    expect(images % 16).toBe(0);
    expect(run.lines[0]!.type).toBe('start');
    expect(run.stderr).toContain('SIGINT: stopping');
  });

  it('resumes from --checkpoint after SIGTERM (exit 143): same statistics, samples file cut back and continued', async () => {
    const ckpt = path.join(dir, 'run.ckpt');
    const samples = path.join(dir, 'samples.ndjson');
    const args = [...common(320, 10), ...PIXELS, '--checkpoint', ckpt, '--samples', samples];
    const first = await evalCli(args, 'SIGTERM');
    expect(first.code).toBe(143);
    const stopped = first.lines[first.lines.length - 1]!;
    expect(stopped.stop_reason).toBe('stopped');
    const stoppedAt = stopped.images as number;
    expect(stoppedAt).toBeLessThan(320);

    const second = await evalCli(args);
    expect(second.code).toBe(0);
    expect(second.lines[0]).toMatchObject({ type: 'start', resumed: { consumed: stoppedAt } });
    const resumed = second.lines[second.lines.length - 1]!;
    expect(resumed).toMatchObject({ type: 'final', stop_reason: 'end', images: 320 });

    const lines = readFileSync(samples, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; pixels?: string });
    expect(lines.map((l) => l.id)).toEqual(Array.from({ length: 320 }, (_, i) => `mnist:test/${i}`));
    expect(lines.map((l) => l.pixels !== undefined)).toEqual(Array.from({ length: 320 }, (_, i) => i < 40));

    const reference = await wholeRun();
    expect(statistics(resumed)).toEqual(statistics(reference.final));
    expect(readFileSync(samples, 'utf8')).toBe(reference.samples);

    // Its pixel lines were written for 40 images: another count would leave the file half one, half the other.
    const other = await evalCli([...args, '--sample-pixels', '8']);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('CHECKPOINT_MISMATCH');
    expect(other.stderr).toContain('--sample-pixels');
  });

  it('resumes exactly after SIGKILL: the samples file is cut back to the last checkpoint', async () => {
    const ckpt = path.join(dir, 'killed.ckpt');
    const samples = path.join(dir, 'killed.ndjson');
    const args = [...common(320, 10), ...PIXELS, '--checkpoint', ckpt, '--samples', samples];
    // Checkpoints are written after each stats line, asynchronously: kill once one is on disk.
    const killed = await evalCli(args, 'SIGKILL', 4, () => existsSync(ckpt));
    expect(killed.code).toBe(null);
    expect(killed.lines.some((l) => l.type === 'final')).toBe(false);
    const second = await evalCli(args);
    expect(second.code).toBe(0);
    expect((second.lines[0]!.resumed as { consumed: number }).consumed).toBeGreaterThan(0);
    const reference = await wholeRun();
    expect(readFileSync(samples, 'utf8')).toBe(reference.samples);
    expect(statistics(second.lines[second.lines.length - 1]!)).toEqual(statistics(reference.final));
  });

  it('refuses a checkpoint of another configuration', async () => {
    const ckpt = path.join(dir, 'other.ckpt');
    expect((await evalCli([...common(32, 2), '--checkpoint', ckpt])).code).toBe(0);
    const run = await evalCli([...common(32, 3), '--checkpoint', ckpt]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('CHECKPOINT_MISMATCH');
    expect(run.stderr).toContain('attacks:');
  });

  it('reports bad flags with exit code 2', () => {
    const run = spawnSync(process.execPath, [MAIN, 'eval', '--data', 'mnist:test', '--stats-every', 'often'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--stats-every');
  });
});
