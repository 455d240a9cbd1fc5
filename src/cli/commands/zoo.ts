import { spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { Errors } from '../../errors.js';
import { PACKAGE_ROOT, ZOO_DIR } from '../../paths.js';
import { zooModels, zooRecipes, type ZooRecipe } from '../../models/zoo.js';
import { positiveInt } from '../args.js';
import { writeJson } from '../output.js';
import { gitCommit } from '../provenance.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

async function list(json: boolean): Promise<void> {
  const models = await zooModels();
  const notes = new Map((await zooRecipes()).map((r) => [r.name, r.note]));
  const rows = models.map(({ name, ref, manifest: m }) => ({
    name,
    ref,
    family: m.family,
    parameters: m.parameters,
    clean_acc: m.accuracy.clean,
    test_images: m.accuracy.testImages,
    bytes: m.weightBytes,
    train_seconds: m.training.wallTimeSeconds,
    epochs: m.training.epochs,
    target: m.targets?.clean,
    target_met: m.targets?.met,
    ...(notes.get(name) ? { note: notes.get(name) } : {}),
  }));
  if (json) {
    writeJson(rows);
    return;
  }
  const header = `${pad('model', 12)}${pad('family', 11)}${pad('params', 10)}${pad('clean acc', 11)}${pad('target', 9)}${pad('size', 10)}train time`;
  process.stdout.write(`${header}\n`);
  for (const r of rows) {
    const target = r.target === undefined ? '-' : `${(r.target * 100).toFixed(1)}%${r.target_met ? '' : ' ✗'}`;
    process.stdout.write(
      `${pad(r.name, 12)}${pad(r.family, 11)}${pad(String(r.parameters), 10)}${pad(`${(r.clean_acc * 100).toFixed(2)}%`, 11)}${pad(target, 9)}${pad(`${(r.bytes / 1e6).toFixed(2)} MB`, 10)}${(r.train_seconds / 60).toFixed(1)} min\n`,
    );
  }
  if (!rows.length) process.stdout.write('(no trained models in fixtures/models; run `advstream zoo build`)\n');
}

/** Trains one recipe in a child process, its NDJSON progress appended to a log. */
async function buildOne(recipe: ZooRecipe, logDir: string, commit: string): Promise<number> {
  const out = path.join(ZOO_DIR, recipe.name);
  const log = await open(path.join(logDir, `${recipe.name}.log`), 'a');
  const args = [MAIN, 'train', '--family', recipe.family, '--out', out, '--name', recipe.name, '--target', String(recipe.target), '--json', ...recipe.args];
  const env = { ...process.env, ADVSTREAM_COMMIT: commit };
  const child = spawn(process.execPath, args, { cwd: PACKAGE_ROOT, env, stdio: ['ignore', log.fd, log.fd] });
  const code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
  await log.close();
  return code;
}

async function build(names: string[], jobs: number, force: boolean): Promise<void> {
  const recipes = await zooRecipes();
  const unknown = names.filter((n) => !recipes.some((r) => r.name === n));
  if (unknown.length) throw Errors.badArgument(`unknown zoo models: ${unknown.join(', ')}; recipes: ${recipes.map((r) => r.name).join(', ')}`);
  const todo = recipes.filter(
    (r) => (names.length === 0 || names.includes(r.name)) && (force || !existsSync(path.join(ZOO_DIR, r.name, 'manifest.json'))),
  );
  const logDir = path.join(PACKAGE_ROOT, '.cache', 'zoo-logs');
  await mkdir(logDir, { recursive: true });
  process.stderr.write(`training ${todo.length} models with ${jobs} parallel jobs; logs in ${logDir}\n`);
  // One commit for every model of this build, even if the checkout moves on while it runs.
  const commit = gitCommit();
  const queue = [...todo];
  const failed: string[] = [];
  await Promise.all(
    Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        process.stderr.write(`  start ${r.name}\n`);
        const code = await buildOne(r, logDir, commit);
        process.stderr.write(`  ${code === 0 ? 'done ' : `FAILED (exit ${code})`} ${r.name}\n`);
        if (code !== 0) failed.push(r.name);
      }
    }),
  );
  if (failed.length) throw Errors.badModel('zoo build', `training failed for ${failed.join(', ')}; see the logs`);
}

export function registerZoo(program: Command): void {
  const zoo = program.command('zoo').description('the shipped model zoo (fixtures/models)');
  zoo
    .command('list')
    .description('list the shipped models: family, parameters, clean test accuracy, size, training time')
    .option('--json', 'print a JSON array')
    .action((flags: { json?: boolean }) => list(Boolean(flags.json)));
  zoo
    .command('build')
    .description('train the zoo from fixtures/zoo.json (models without a manifest, or those named); resumable')
    .argument('[names...]', 'recipes to train (default: every missing one)')
    .option('--jobs <n>', 'models trained in parallel, one process each', '2')
    .option('--force', 'retrain models that already have a manifest')
    .action((names: string[], flags: { jobs: string; force?: boolean }) => build(names, positiveInt('--jobs', flags.jobs)!, Boolean(flags.force)));
}
