import { createReadStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { parseAttackSpec } from '../../attacks/index.js';
import { openRejectFile, SOURCE_KINDS, type OnBadRecord, type RejectFile } from '../../data/index.js';
import { Errors } from '../../errors.js';
import { buildReport, writeReport, type ReportTargets } from '../../report/index.js';
import {
  DEFAULT_ATTACKS,
  evaluate,
  imagePixels,
  readCheckpoint,
  SamplesFile,
  sampleLine,
  webhookSink,
  isWorstCase,
  type EvalEvent,
  type FinalEvent,
  type SampleLine,
  type StartEvent,
  type StatsEvent,
  type StatsEvery,
  type WebhookSink,
} from '../../../pipelines/index.js';
import { parseEngineChoice } from '../../engine/build.js';
import { finiteNumber, nonNegativeInt, positiveInt } from '../args.js';
import { commandLine, gitCommit } from '../provenance.js';
import { drainWithSignals } from '../signals.js';
import { attacksHelp } from '../help.js';
import { lineWriter } from '../output.js';
import { etaText, finalSummaryLines, headerLines, LEGEND } from '../summary.js';
import { defaultZooRefs } from '../../models/zoo.js';

interface EvalFlags {
  data: string;
  model?: string[];
  attack?: string[];
  workers?: string;
  batch: string;
  limit?: string;
  offset?: string;
  statsEvery: string;
  samples?: string;
  samplePixels?: string;
  html?: string;
  md?: string;
  pngDir?: string;
  out?: string;
  untilCi?: string;
  checkpoint?: string;
  seed: string;
  backend?: string;
  engine?: string;
  onBadRecord: string;
  rejects?: string;
  webhook?: string;
}

const repeat = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Images with pixels when `--sample-pixels` is not given but something shows them (`--samples`, `--html`, `--png-dir`). */
export const DEFAULT_SAMPLE_PIXELS = 16;

/** `2s`, `500ms`, `1.5m` → seconds; `10batches`, `1batch` → batches. */
export function parseStatsEvery(text: string): StatsEvery {
  const time = /^(\d+(?:\.\d+)?)\s*(ms|s|m)$/.exec(text.trim());
  if (time) {
    const seconds = Number(time[1]) * (time[2] === 'ms' ? 0.001 : time[2] === 'm' ? 60 : 1);
    if (seconds > 0) return { seconds };
  }
  const count = /^(\d+)\s*batch(?:es)?$/.exec(text.trim());
  if (count && Number(count[1]) > 0) return { batches: Number(count[1]) };
  throw Errors.badArgument(`--stats-every must be a time (2s, 500ms, 1m) or a batch count (10batches), got '${text}'`);
}

const pct = (p: number | null) => (p === null ? '-' : `${(p * 100).toFixed(1)}%`);
const half = ([lo, hi]: [number, number]) => `±${(((hi - lo) / 2) * 100).toFixed(1)}`;

function modelLabel(id: string): string {
  if (id.startsWith('zoo:')) return id.slice(4);
  if (/^https?:\/\//.test(id)) return id.replace(/\/model\.json$/, '').split('/').pop() ?? id;
  return path.basename(id.replace(/[\\/]model\.json$/, '')) || id;
}

/** The compact table: one row per model, clean accuracy and robust accuracy under each attack, with 95% half-widths. */
function tableLines(e: StatsEvent | FinalEvent, attacks: { id: string; label: string }[]): string[] {
  const worst = Object.keys(Object.values(e.models)[0]?.attacks ?? {}).filter(isWorstCase);
  const columns = [...attacks, ...worst.map((id) => ({ id, label: id.replace(/^worst-case:/, 'worst ') }))];
  const rows: string[][] = [['model', 'clean', ...columns.map((c) => c.label)]];
  for (const [id, m] of Object.entries(e.models)) {
    rows.push([
      modelLabel(id),
      `${pct(m.clean.acc)} ${half(m.clean.ci)}`,
      ...columns.map((c) => {
        const a = m.attacks[c.id];
        return a ? `${pct(a.robust_acc)} ${half(a.ci)}` : '-';
      }),
    ]);
  }
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  const lines = rows.map((r) => r.map((cell, j) => cell.padEnd(widths[j]!)).join('  ').trimEnd());
  const t = e.throughput;
  lines.push(
    `${e.images} images · ${t.images_per_s === null ? '-' : t.images_per_s.toFixed(1)} img/s · ` +
      `${t.grad_evals_per_s === null ? '-' : Math.round(t.grad_evals_per_s)} grad/s · ` +
      `utilisation ${t.utilisation === null ? '-' : pct(t.utilisation)} · widest CI ${(e.max_ci_width * 100).toFixed(1)} pts` +
      (e.progress.retries ? ` · ${e.progress.retries} retried` : ''),
  );
  return lines;
}

/** The live view on a terminal: a table redrawn on each stats event, and a progress bar under it. */
function terminalView(attacks: { id: string; label: string }[]) {
  const multi = new cliProgress.MultiBar(
    { stream: process.stderr, clearOnComplete: false, hideCursor: true, format: '{line}', autopadding: false },
    cliProgress.Presets.shades_classic,
  );
  const lines: cliProgress.SingleBar[] = [];
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(e: StatsEvent | FinalEvent) {
      const text = [...tableLines(e, attacks), ...LEGEND];
      while (lines.length < text.length) lines.push(multi.create(1, 0, { line: '' }, { format: '{line}' }));
      text.forEach((line, i) => lines[i]!.update(0, { line }));
      const total = e.progress.total;
      if (!bar) {
        bar = multi.create(total ?? 0, 0, {}, {
          format: total === null ? '{value} images read' : '[{bar}] {value}/{total} images · {percentage}% · {eta_at}',
        });
      }
      bar.update(e.progress.consumed, { eta_at: etaText(e.progress.consumed, total, e.type === 'stats' ? e.elapsed_s : e.throughput.elapsed_s, new Date()) });
    },
    stop: () => multi.stop(),
  };
}

/**
 * A stats event as the end-of-run report keeps it: a report takes its statistics from the final
 * event and only the throughput over time from stats events, so a long run need not hold every
 * stats event's tables in memory.
 */
function throughputOnly(e: StatsEvent): Record<string, unknown> {
  const { images, images_per_s, wall_s } = e.throughput;
  return { type: 'stats', images: e.images, models: {}, transfer: {}, elapsed_s: e.elapsed_s, throughput: { images, images_per_s, wall_s } };
}

/** The first `n` lines of a `--samples` file, parsed: the ones with pixels. */
async function* firstLines(file: string, n: number): AsyncGenerator<unknown> {
  if (n === 0) return;
  const input = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let read = 0;
  try {
    for await (const text of lines) {
      if (text.trim() === '') continue;
      yield JSON.parse(text) as unknown;
      if (++read >= n) break;
    }
  } finally {
    lines.close();
    input.destroy();
  }
}

function sourcesHelp(): string {
  const width = Math.max(...SOURCE_KINDS.map((k) => k.form.length));
  return `\nSources:\n${SOURCE_KINDS.map((k) => `  ${k.form.padEnd(width)}  ${k.summary}`).join('\n')}\n`;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('stream a robustness evaluation: clean and robust accuracy with 95% intervals, attack success, norms, transfer')
    .requiredOption('--data <source>', 'the images: a source URI (see below)')
    .option('--model <ref>', 'a model: folder, zoo:NAME, URL or FILE.onnx (sidecar FILE.onnx.json); repeat for several (default: the default zoo models)', repeat)
    .option('--attack <spec>', `an attack spec, e.g. pgd:eps=0.3,steps=40; repeat for several (default: ${DEFAULT_ATTACKS.join(' and ')})`, repeat)
    .option('--workers <n>', 'worker threads (default: the number of cores)')
    .option('--batch <n>', 'images per batch', '32')
    .option('--limit <n>', 'evaluate at most n images')
    .option('--offset <n>', 'skip the first n images')
    .option('--stats-every <when>', 'a stats line every time span (2s) or batch count (10batches)', '2s')
    .option('--samples <file>', 'one JSON line per image: predictions, success and norms per attack and source model')
    .option(
      '--sample-pixels <n>',
      `the first n images carry their pixels, clean and adversarial, in --samples lines and the report's image grids ` +
        `(default: ${DEFAULT_SAMPLE_PIXELS} with --samples, --html or --png-dir; 0 for none)`,
    )
    .option('--html <file>', 'at the end, write a report of the run: one self-contained HTML page with tables, charts and image grids')
    .option('--md <file>', "at the end, write the report's tables in Markdown")
    .option('--png-dir <dir>', "at the end, write the report's image grids as PNG files in DIR")
    .option('--out <file>', 'NDJSON stats and final lines (default: stdout when it is not a terminal)')
    .option('--until-ci <width>', 'stop reading once every 95% interval is narrower than this (e.g. 0.02)')
    .option('--checkpoint <file>', 'save progress here periodically; rerunning the same command resumes from it')
    .option('--seed <n>', 'seed of every attack', '0')
    .option('--backend <name>', 'force a backend: wasm, cpu, or tensorflow (tfjs-node; runs in the main thread)')
    .option('--engine <name>', 'auto (ONNX Runtime where it has the model, tfjs otherwise), tfjs, or onnx', 'auto')
    .option('--on-bad-record <policy>', 'fail (stop at the first bad or unlabelled record) or skip (count it, go on)', 'fail')
    .option('--rejects <file>', 'write each rejected record to FILE as a JSON line')
    .option('--webhook <url>', 'POST each stats line and the final line as JSON (failures are reported, never fatal)')
    .addHelpText('after', () => sourcesHelp() + attacksHelp())
    .action(async (flags: EvalFlags) => {
      const onBadRecord = flags.onBadRecord;
      if (onBadRecord !== 'fail' && onBadRecord !== 'skip') {
        throw Errors.badArgument(`--on-bad-record must be fail or skip, got '${onBadRecord}'`);
      }
      const untilCi = finiteNumber('--until-ci', flags.untilCi);
      const specs = flags.attack ?? [...DEFAULT_ATTACKS];
      const attacks = specs.map((spec) => ({ id: parseAttackSpec(spec).id, label: spec.trim() }));
      const limit = nonNegativeInt('--limit', flags.limit);
      const offset = nonNegativeInt('--offset', flags.offset);
      const statsEvery = parseStatsEvery(flags.statsEvery);
      const targets: ReportTargets = {
        ...(flags.html !== undefined && { html: flags.html }),
        ...(flags.md !== undefined && { markdown: flags.md }),
        ...(flags.pngDir !== undefined && { pngDir: flags.pngDir }),
      };
      const wantsReport = Object.keys(targets).length > 0;
      for (const [flag, value] of [['--html', flags.html], ['--md', flags.md]] as const) {
        if (value === '-') throw Errors.badArgument(`${flag} needs a file: eval keeps stdout for its NDJSON (advstream report can write to stdout)`);
      }
      const shown = flags.samples !== undefined || flags.html !== undefined || flags.pngDir !== undefined;
      const pixelsFlag = nonNegativeInt('--sample-pixels', flags.samplePixels);
      // Where a resumed run's samples file is cut back to; it is cut only once the checkpoint is accepted (at `start`).
      const previous = flags.checkpoint !== undefined && flags.samples !== undefined ? await readCheckpoint(flags.checkpoint) : undefined;
      const samplesAt = previous?.annotations.samplesBytes;
      const recordedPixels = typeof samplesAt === 'number' ? previous?.annotations.samplePixels : undefined;
      // A resumed samples file keeps its pixel lines only if the rest is written with the same count.
      if (typeof recordedPixels === 'number' && pixelsFlag !== undefined && pixelsFlag !== recordedPixels) {
        throw Errors.checkpointMismatch(flags.checkpoint!, [`--sample-pixels: checkpoint has ${recordedPixels}, this run ${pixelsFlag}`]);
      }
      const samplePixels = typeof recordedPixels === 'number' ? recordedPixels : (pixelsFlag ?? (shown ? DEFAULT_SAMPLE_PIXELS : 0));
      const hook: WebhookSink | undefined = flags.webhook
        ? webhookSink(flags.webhook, { onFailure: (m) => process.stderr.write(`advstream: ${m}\n`) })
        : undefined;

      let rejectFile: RejectFile | undefined;
      if (flags.rejects !== undefined) rejectFile = await openRejectFile(flags.rejects);
      // On a terminal without --out, the live view replaces the NDJSON.
      const out = flags.out === undefined && process.stdout.isTTY ? undefined : lineWriter(flags.out);
      const view = process.stderr.isTTY ? terminalView(attacks) : undefined;
      const workers = positiveInt('--workers', flags.workers) ?? os.availableParallelism();
      if (view) {
        const models = flags.model ?? (await defaultZooRefs());
        const header = { data: flags.data, models, attacks: specs, backend: flags.backend ?? 'auto', engine: flags.engine ?? 'auto', workers };
        process.stderr.write(`${headerLines(limit === undefined ? header : { ...header, limit }).join('\n')}\n`);
      }
      let samples: SamplesFile | undefined;
      const stop = new AbortController();

      const events = evaluate(
        { uri: flags.data, ...(limit !== undefined && { limit }), ...(offset !== undefined && { offset }) },
        {
          ...(flags.model ? { models: flags.model } : {}),
          attacks: specs,
          workers,
          batch: positiveInt('--batch', flags.batch),
          seed: nonNegativeInt('--seed', flags.seed),
          ...(flags.backend !== undefined && { backend: flags.backend }),
          engine: parseEngineChoice(flags.engine ?? 'auto'),
          statsEvery,
          ...(untilCi !== undefined && { untilCi }),
          stop: stop.signal,
          onBadRecord: onBadRecord satisfies OnBadRecord,
          ...(rejectFile && { rejects: rejectFile }),
          ...(flags.checkpoint !== undefined && {
            checkpoint: { file: flags.checkpoint, annotate: () => (samples ? { samplesBytes: samples.bytes, samplePixels } : {}) },
          }),
          samplePixels,
          provenance: { command: commandLine(), commit: gitCommit() },
        },
      );

      const openSamples = (resumed: boolean) => {
        if (flags.samples === undefined) return;
        if (resumed && typeof samplesAt !== 'number') {
          process.stderr.write(`advstream: the checkpoint did not record ${flags.samples}; it will hold only the images evaluated from now on\n`);
        }
        samples = SamplesFile.open(flags.samples, resumed && typeof samplesAt === 'number' ? samplesAt : undefined);
      };

      let final: FinalEvent | undefined;
      // What the end-of-run report is built from: the events as --out has them, and (without --samples) the lines with pixels.
      let start: StartEvent | undefined;
      const reportEvents: unknown[] = [];
      const pixelLines: SampleLine[] = [];
      const handle = (e: EvalEvent) => {
        switch (e.type) {
          case 'start':
            start = e;
            if (wantsReport) reportEvents.push(e);
            out?.write(e);
            if (!view) {
              process.stderr.write(
                `advstream eval: ${e.models.length} model(s) × ${e.attacks.length} attack(s) on ${e.source}, backend ${e.backend}${e.simd ? ' (SIMD)' : ''}, engine ${e.engine}, ` +
                  `${e.mode === 'pool' ? `${e.workers} worker(s)` : 'main thread'}${e.resumed ? `, resumed after ${e.resumed.consumed} records` : ''}\n`,
              );
            }
            break;
          case 'batch':
            e.samples.forEach((s, i) => {
              const line = sampleLine(e.ids[i]!, s, imagePixels(e.pixels, i));
              samples?.writeLine(line);
              if (wantsReport && !samples && line.pixels !== undefined) pixelLines.push(line);
            });
            break;
          case 'stats':
            if (wantsReport) reportEvents.push(throughputOnly(e));
            out?.write(e);
            hook?.post(e, true);
            view?.update(e);
            break;
          case 'final':
            final = e;
            view?.update(e);
            break;
        }
      };

      let interrupted: NodeJS.Signals | undefined;
      try {
        const next = (e: EvalEvent) => {
          if (e.type === 'start') openSamples(e.resumed !== null);
          handle(e);
        };
        interrupted = await drainWithSignals(events, next, { stop, stopping: 'finishing the batches in flight', lost: 'no final line' });
      } finally {
        view?.stop();
        samples?.close();
        await rejectFile?.close();
      }
      if (final) {
        const line = hook ? { ...final, webhook: hook.report() } : final;
        out?.write(line);
        hook?.post(line);
        // A terminal with no --out and no live view still gets the answer.
        if (!out && !view) process.stdout.write(`${tableLines(final, attacks).join('\n')}\n`);
        if (wantsReport) reportEvents.push(line);
      }
      out?.close();
      try {
        if (final && wantsReport) {
          const resumedImages = start?.resumed?.images ?? 0;
          if (flags.samples === undefined && samplePixels > 0 && resumedImages > 0) {
            process.stderr.write(
              `advstream: this run resumed after ${resumedImages} images: the image grids show only images evaluated since (give --samples to keep them all)\n`,
            );
          }
          // With --samples, the grids come from that file (it holds the resumed images too), exactly as `advstream report` would read it.
          const report = await buildReport(reportEvents, {
            source: flags.out ?? 'advstream eval',
            ...(targets.pngDir !== undefined && { pngDir: targets.pngDir }),
            ...(samplePixels > 0 && {
              samples: flags.samples !== undefined ? firstLines(flags.samples, samplePixels) : pixelLines,
              samplesSource: flags.samples ?? 'samples',
            }),
          });
          for (const w of report.warnings) process.stderr.write(`advstream: warning: ${w}\n`);
          for (const f of await writeReport(report, targets)) process.stderr.write(`advstream: wrote ${f}\n`);
        }
      } finally {
        if (hook) {
          const report = await hook.drain();
          if (report.failed) process.stderr.write(`advstream: webhook: ${report.failed} of ${report.posted + report.failed} POSTs failed\n`);
        }
      }
      if (final && view) {
        const outputs = {
          stdoutIsTerminal: !!process.stdout.isTTY,
          ...(flags.out !== undefined && { out: flags.out }),
          ...(flags.samples !== undefined && { samples: flags.samples }),
          ...(flags.html !== undefined && { html: flags.html }),
          ...(flags.md !== undefined && { md: flags.md }),
          ...(flags.pngDir !== undefined && { pngDir: flags.pngDir }),
          ...(flags.checkpoint !== undefined && { checkpoint: flags.checkpoint }),
        };
        process.stderr.write(`${finalSummaryLines(final, outputs).join('\n')}\n`);
      }
      if (interrupted) process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
    });
}
