import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { initBackend } from '../../backend/index.js';
import { collect, openSource } from '../../data/index.js';
import { Errors } from '../../errors.js';
import type { TrainOption } from '../../models/family.js';
import { FAMILIES, getFamily } from '../../models/registry.js';
import { train, type DenseData, type TrainEvent } from '../../../pipelines/train.js';
import { camelCase, finiteNumber, nonNegativeInt, positiveInt } from '../args.js';
import { writeJson } from '../output.js';
import { commandLine, gitCommit } from '../provenance.js';

/** Every family option, once, with the families that take it. */
function familyOptions(): Map<string, { option: TrainOption; families: string[] }> {
  const all = new Map<string, { option: TrainOption; families: string[] }>();
  for (const f of FAMILIES) {
    for (const option of f.options) {
      const seen = all.get(option.name);
      if (seen) seen.families.push(f.name);
      else all.set(option.name, { option, families: [f.name] });
    }
  }
  return all;
}

function parseOption(option: TrainOption, text: string): unknown {
  const flag = `--${option.name}`;
  switch (option.type) {
    case 'int':
      return nonNegativeInt(flag, text);
    case 'float':
      return finiteNumber(flag, text);
    case 'bool':
      return text === 'true' || text === '1';
    case 'ints':
      return text.trim() === '' ? [] : text.split(',').map((t) => positiveInt(flag, t.trim()));
    default:
      return text;
  }
}

async function dense(uri: string, limit: number | undefined): Promise<DenseData> {
  const c = await collect(openSource(uri, { shape: [28, 28, 1], ...(limit !== undefined && { limit }) }));
  if (!c.count) throw Errors.badArgument(`${uri} holds no records`);
  if (c.y.some((y) => y < 0)) throw Errors.badArgument(`${uri} has unlabeled records; training needs labels`);
  return { x: c.x, y: c.y, count: c.count, dim: 784 };
}

interface TrainFlags {
  family: string;
  out: string;
  name?: string;
  epochs?: string;
  batch?: string;
  seed: string;
  trainData: string;
  testData: string;
  trainLimit?: string;
  target?: string;
  backend?: string;
  json?: boolean;
  [option: string]: unknown;
}

function progressView(json: boolean): (e: TrainEvent) => void {
  if (json || !process.stderr.isTTY) {
    return (e) => {
      if (e.type === 'epoch' || e.type === 'start') writeJson(e);
      if (e.type === 'done') writeJson({ type: 'done', dir: e.dir, accuracy: e.manifest.accuracy, training: e.manifest.training });
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: 'epoch {epoch}/{epochs} [{bar}] {value}/{total} batches | loss {loss} | eta {eta_formatted}', stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  let epochs = 0;
  return (e) => {
    if (e.type === 'start') {
      epochs = e.epochs;
      process.stderr.write(`training ${e.name} (${e.family}), ${e.epochs} epochs of batch ${e.batch}${e.resumedFrom ? `, resumed after epoch ${e.resumedFrom}` : ''}\n`);
    } else if (e.type === 'batch') {
      if (e.batch === 1) bar.start(e.batches, 0, { epoch: e.epoch, epochs, loss: '-' });
      bar.update(e.batch, { loss: e.loss.toFixed(4) });
    } else if (e.type === 'epoch') {
      bar.stop();
      const eta = e.etaSeconds >= 60 ? `${(e.etaSeconds / 60).toFixed(1)} min` : `${e.etaSeconds.toFixed(0)} s`;
      process.stderr.write(
        `epoch ${e.epoch}/${e.epochs}: loss ${e.loss.toFixed(4)}, train acc ${(e.trainAcc * 100).toFixed(2)}%, test acc ${(e.testAcc * 100).toFixed(2)}%, ${e.seconds.toFixed(1)} s, ETA ${eta}\n`,
      );
    } else {
      process.stderr.write(`saved ${e.dir}: clean test accuracy ${(e.manifest.accuracy.clean * 100).toFixed(2)}% in ${e.manifest.training.wallTimeSeconds} s\n`);
    }
  };
}

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description('train a model of the zoo on MNIST; resumable from <out>/checkpoint, deterministic under --seed')
    .requiredOption('--family <name>', `model family: ${FAMILIES.map((f) => f.name).join(', ')}`)
    .requiredOption('--out <dir>', 'folder for model.json, weights.bin and manifest.json')
    .option('--name <name>', 'model name in the manifest (default: the folder name)')
    .option('--epochs <n>', 'epochs (default: the family\'s)')
    .option('--batch <n>', 'minibatch size (default: the family\'s)')
    .option('--seed <n>', 'random seed', '1')
    .option('--train-data <source>', 'training source', 'mnist:train')
    .option('--test-data <source>', 'test source for the measured accuracy', 'mnist:test')
    .option('--train-limit <n>', 'use only the first n training images')
    .option('--target <acc>', 'clean-accuracy target in [0,1], recorded in the manifest')
    .option('--backend <name>', 'force a backend: tensorflow, wasm or cpu')
    .option('--json', 'NDJSON progress on stdout (the default when stderr is not a terminal)');
  const options = familyOptions();
  for (const [name, { option, families }] of options) {
    cmd.option(`--${name} <value>`, `${option.help} [${families.join(', ')}]`);
  }
  cmd.action(async (flags: TrainFlags) => {
    const family = getFamily(flags.family);
    const familyValues: Record<string, unknown> = {};
    for (const [name, { option, families }] of options) {
      const text = flags[camelCase(name)];
      if (text === undefined) continue;
      if (!families.includes(family.name)) throw Errors.badArgument(`--${name} does not apply to family ${family.name}`);
      familyValues[name] = parseOption(family.options.find((o) => o.name === name) ?? option, String(text));
    }
    try {
      family.configure(familyValues);
    } catch (e) {
      throw Errors.badArgument((e as Error).message);
    }
    const backend = await initBackend({ backend: flags.backend });
    const trainLimit = nonNegativeInt('--train-limit', flags.trainLimit);
    const target = finiteNumber('--target', flags.target);
    const [trainData, testData] = [await dense(flags.trainData, trainLimit), await dense(flags.testData, undefined)];
    const view = progressView(Boolean(flags.json));
    const run = train({
      family: family.name,
      options: familyValues,
      out: flags.out,
      name: flags.name ?? flags.out.split(/[\\/]/).filter(Boolean).pop()!,
      train: trainData,
      test: testData,
      seed: nonNegativeInt('--seed', flags.seed)!,
      epochs: positiveInt('--epochs', flags.epochs),
      batch: positiveInt('--batch', flags.batch),
      command: commandLine(),
      commit: gitCommit(),
      backend: backend.backend,
      ...(target !== undefined && { target }),
    });
    let interrupted: NodeJS.Signals | undefined;
    await new Promise<void>((resolve, reject) => {
      const onSignal = (signal: NodeJS.Signals) => {
        interrupted = signal;
        subscription.unsubscribe();
        done();
      };
      const done = () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const subscription = run.subscribe({ next: view, error: (e: unknown) => (done(), reject(e)), complete: done });
    });
    if (interrupted) {
      process.stderr.write(`\ninterrupted: progress is checkpointed in ${flags.out}/checkpoint after each epoch; rerun the same command to resume\n`);
      process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
    }
  });
}
