/**
 * Small models for the pipeline tests, trained here (the shipped zoo may still be training) and
 * kept in test-artifacts/ across test files and runs: each is written to a temp folder and renamed
 * into place, so parallel test files never see half a model.
 */
import { saveCachedModel } from '../helpers/model-cache.js';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { firstValueFrom, lastValueFrom, toArray, type Observable } from 'rxjs';
import { initBackend, tf } from '../../src/backend/index.js';
import { collect, openSource } from '../../src/data/index.js';
import { getFamily } from '../../src/models/registry.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { EVAL_TASKS, type EvalEvent, type FinalEvent, type TaskKind } from '../../pipelines/index.js';
import type { EvalReady, EvalSetup, EvalTask, EvalTaskResult } from '../../workers/eval-task.js';

export const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'pipelines');
/** Bump when the recipe below changes, so stale models are not reused. */
const RECIPE = 'v1';

interface Recipe {
  name: string;
  hidden: number[];
  steps: number;
  seed: number;
}

const RECIPES: Recipe[] = [
  { name: 'mlp32', hidden: [32], steps: 300, seed: 11 },
  { name: 'softmax', hidden: [], steps: 200, seed: 12 },
];

async function trainOne(dir: string, r: Recipe): Promise<void> {
  await initBackend({ backend: 'wasm' });
  const data = await collect(openSource('mnist:train', { limit: 3000 }));
  const family = getFamily('mlp');
  const config = family.configure({ hidden: r.hidden, lr: 0.005 });
  const trainer = family.trainer(config, family.init(config, r.seed));
  const batch = 100;
  for (let s = 0; s < r.steps; s++) {
    const from = (s * batch) % data.count;
    const x = tf.tensor2d(data.x.subarray(from * 784, (from + batch) * 784), [batch, 784]);
    const y = tf.tensor1d(data.y.subarray(from, from + batch), 'int32');
    trainer.step(x, y, r.seed * 1000 + s);
    tf.dispose([x, y]);
  }
  await saveCachedModel(dir, 'mlp', config, trainer.variables);
  trainer.dispose();
}

/** Folders of two small MNIST models (a 784-32-10 ReLU MLP and softmax regression), trained once. */
export async function testModels(): Promise<string[]> {
  const root = path.join(ARTIFACTS, `models-${RECIPE}`);
  await mkdir(root, { recursive: true });
  const dirs: string[] = [];
  for (const r of RECIPES) {
    const dir = path.join(root, r.name);
    if (!existsSync(path.join(dir, 'model.json'))) await trainOne(dir, r);
    dirs.push(dir);
  }
  return dirs;
}

/** A fresh folder under test-artifacts/. */
export async function scratchDir(name: string): Promise<string> {
  const dir = path.join(ARTIFACTS, 'scratch', `${name}-${process.pid}-${Date.now()}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** How the test task file misbehaves; see fixtures/flaky-eval-worker.mjs. */
export interface Flaky {
  /** The thread exits mid-task (a crash) when a batch holds this record id… */
  crashOnId?: string;
  /** …on attempts below this number (default 1: only the first attempt crashes). */
  crashAttempts?: number;
  /** Each task waits this long before working (stopping early when the pool closes): a slow worker. */
  delayMs?: number;
  /** Each task blocks its thread this long, deaf to the stop flag: a stuck worker. */
  stuckMs?: number;
}

/**
 * The evaluation as a task kind whose task file misbehaves on purpose; pass it as `evaluate`'s
 * `tasks`. Pool mode only: in the main thread it is the plain evaluation.
 */
export function flakyEvalTasks(flaky: Flaky): TaskKind<EvalSetup, EvalTask, EvalTaskResult, EvalReady> {
  return {
    ...EVAL_TASKS,
    name: 'flaky evaluation',
    file: path.join(PACKAGE_ROOT, 'test', 'pipelines', 'fixtures', 'flaky-eval-worker.mjs'),
    send(task) {
      const sent = EVAL_TASKS.send(task);
      return { task: Object.assign(sent.task, { flaky }), transfer: sent.transfer };
    },
  };
}

export async function allEvents(events$: Observable<EvalEvent>): Promise<EvalEvent[]> {
  return lastValueFrom(events$.pipe(toArray()));
}

export function finalOf(events: EvalEvent[]): FinalEvent {
  const last = events[events.length - 1];
  if (last?.type !== 'final') throw new Error(`the last event is ${last?.type}, not final`);
  return last;
}

export { firstValueFrom };

/** The built CLI the end-to-end tests run. */
export const CLI_MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI in `cwd` with no standard input and collects its output. */
export function runCli(args: string[], cwd: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The JSON objects of NDJSON text, blank lines skipped. */
export function ndjsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

