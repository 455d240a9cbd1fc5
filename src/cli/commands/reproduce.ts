import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { EXPERIMENTS, renderReproduction, type DocumentRun } from '../../report/index.js';
import { reproduce, type ReproduceEvent } from '../../../pipelines/index.js';
import { parseEngineChoice } from '../../engine/build.js';
import { positiveInt } from '../args.js';
import { commandLine, gitCommit } from '../provenance.js';
import { drainWithSignals } from '../signals.js';

interface ReproduceFlags {
  out: string;
  figures?: string;
  limit?: string;
  only?: string[];
  workDir: string;
  workers?: string;
  backend?: string;
  engine: string;
}

const list = (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter(Boolean)];

/** Progress: a bar per evaluation on a terminal, otherwise a line per evaluation and one every 30 s. */
function progressView() {
  if (process.stderr.isTTY) {
    const multi = new cliProgress.MultiBar(
      { stream: process.stderr, clearOnComplete: false, hideCursor: true, format: '{run} [{bar}] {value}/{total} images · ETA {eta_formatted}' },
      cliProgress.Presets.shades_classic,
    );
    let bar: cliProgress.SingleBar | undefined;
    return {
      event(e: ReproduceEvent) {
        if (e.type === 'run-start') bar = undefined;
        else if (e.type === 'run-stats') {
          bar ??= multi.create(e.stats.progress.total ?? 0, 0, { run: e.id.padEnd(16) });
          bar.update(e.stats.progress.consumed);
        } else if (e.type === 'run-done' && e.run.fresh) bar?.update(e.run.outcome.images);
      },
      stop: () => multi.stop(),
    };
  }
  let last = 0;
  return {
    event(e: ReproduceEvent) {
      const say = (line: string) => process.stderr.write(`advstream reproduce: ${line}\n`);
      if (e.type === 'plan') {
        const compute = e.runs.filter((r) => r.compute).map((r) => r.run.id);
        say(`${compute.length} evaluation(s) to run${compute.length ? `: ${compute.join(', ')}` : ''}; ${e.runs.filter((r) => r.cached).length} finished earlier`);
      } else if (e.type === 'run-start') {
        say(`${e.id}: started${e.start.resumed ? `, resumed after ${e.start.resumed.consumed} images` : ''}`);
      } else if (e.type === 'run-stats' && Date.now() - last > 30_000) {
        last = Date.now();
        const t = e.stats.throughput.images_per_s;
        say(`${e.id}: ${e.stats.progress.consumed}/${e.stats.progress.total ?? '?'} images${t === null ? '' : `, ${t.toFixed(1)} images/s`}`);
      } else if (e.type === 'run-done' && e.run.fresh) {
        say(`${e.run.run.id}: done, ${e.run.outcome.images} images in ${e.run.outcome.throughput.elapsed_s.toFixed(0)} s`);
      }
    },
    stop: () => {},
  };
}

export function registerReproduce(program: Command): void {
  program
    .command('reproduce')
    .description("reproduce the seed papers' claims on the shipped zoo and write the reproduction document (Markdown and SVG figures)")
    .option('--out <file>', 'the Markdown document to write', 'reproduction.md')
    .option('--figures <dir>', "where the figures go (default: a folder named after --out, beside it)")
    .option('--limit <n>', 'images per evaluation, for a quick pass (default: all 10,000 test images)')
    .option('--only <ids>', `compute only these experiments (${EXPERIMENTS.map((e) => e.id).join(', ')}); the document still shows the others finished earlier`, list)
    .option('--work-dir <dir>', 'finished evaluations and checkpoints: rerunning resumes from them', '.cache/reproduce')
    .option('--workers <n>', 'worker threads per evaluation (default: the number of cores)')
    .option('--backend <name>', 'force a backend: wasm, cpu, or tensorflow')
    .option('--engine <name>', 'tfjs (the portable reference), auto or onnx; part of what a finished evaluation is kept under', 'tfjs')
    .action(async (flags: ReproduceFlags) => {
      const limit = positiveInt('--limit', flags.limit);
      const workers = positiveInt('--workers', flags.workers);
      const stop = new AbortController();
      const view = progressView();
      const done: DocumentRun[] = [];
      let stopped: string | undefined;
      const events = reproduce({
        workDir: flags.workDir,
        ...(limit !== undefined && { limit }),
        ...(flags.only && { only: flags.only }),
        ...(workers !== undefined && { workers }),
        ...(flags.backend !== undefined && { backend: flags.backend }),
        engine: parseEngineChoice(flags.engine),
        statsEvery: { seconds: 2 },
        stop: stop.signal,
        provenance: { commit: gitCommit() },
      });
      let interrupted: NodeJS.Signals | undefined;
      try {
        interrupted = await drainWithSignals(
          events,
          (e) => {
            view.event(e);
            if (e.type === 'run-done') done.push(e.run);
            if (e.type === 'stopped') stopped = e.id;
          },
          { stop, stopping: 'finishing the batches in flight and keeping the checkpoint', lost: 'the checkpoint of the evaluation in progress may be behind' },
        );
      } finally {
        view.stop();
      }
      if (stopped !== undefined || interrupted) {
        process.stderr.write(`advstream reproduce: stopped${stopped ? ` during ${stopped}` : ''}; rerun the same command to resume from ${flags.workDir}\n`);
        process.exitCode = interrupted === 'SIGTERM' ? 143 : 130;
        return;
      }
      const figureDir = flags.figures ?? path.join(path.dirname(flags.out), path.basename(flags.out, path.extname(flags.out)));
      const doc = await renderReproduction(EXPERIMENTS, done, {
        images: limit ?? 10000,
        command: commandLine(),
        commit: gitCommit(),
        generatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        figureDir: path.relative(path.dirname(flags.out), figureDir).split(path.sep).join('/') || '.',
      });
      await mkdir(figureDir, { recursive: true });
      for (const [name, svg] of doc.figures) await writeFile(path.join(figureDir, name), svg);
      await mkdir(path.dirname(path.resolve(flags.out)), { recursive: true });
      await writeFile(flags.out, doc.markdown);
      const verdicts = new Map<string, number>();
      for (const c of doc.claims) verdicts.set(c.verdict, (verdicts.get(c.verdict) ?? 0) + 1);
      process.stderr.write(
        `advstream reproduce: wrote ${flags.out} and ${doc.figures.size} figure(s) in ${figureDir}; ` +
          `${doc.claims.length} claims: ${[...verdicts].map(([v, n]) => `${n} ${v}`).join(', ')}\n`,
      );
    });
}
