/**
 * Building a report: read the run (and its samples), make the tables once, draw the charts, pick
 * the grid images, then render HTML, Markdown, JSON and PNGs from the same parts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Errors } from '../errors.js';
import {
  accuracySpec,
  epsSpec,
  renderSvg,
  rocSpec,
  throughputSpec,
  transferSpec,
  type Chart,
} from './charts.js';
import { collectGrids, gridFileName, gridPng, type ImageGrid } from './grids.js';
import { renderHtml } from './html.js';
import {
  fromValues,
  readNdjson,
  readRun,
  readSamples,
  type InputLine,
  type RocCurve,
  type Run,
  type RunSummary,
  type ThroughputPoint,
} from './input.js';
import { renderMarkdown } from './markdown.js';
import { maskingWarnings, type MaskingWarning } from './masking.js';
import { renameGrid, renameModels, shortModelNames } from './model-names.js';
import {
  accuracyTable,
  attackTable,
  epsSeries,
  epsTables,
  headline,
  modelsTable,
  provenanceTable,
  rocTable,
  runTable,
  throughputTable,
  transferOrder,
  transferTables,
  type EpsPoint,
} from './tables.js';

/** Images per grid when the caller does not say. */
export const DEFAULT_GRID_IMAGES = 6;

export interface ReportOptions {
  /** Names the events in messages and in the report, e.g. their file; default `events`. */
  source?: string;
  /** The run's `--samples` lines (parsed objects); the image grids need their pixels. */
  samples?: AsyncIterable<unknown> | Iterable<unknown>;
  /** Names the samples in messages; default `samples`. */
  samplesSource?: string;
  /** The page title; default `Robustness report: <the run's command>` (else `<source>`). */
  title?: string;
  /** Images per grid (default 6; 0 for no grids). */
  gridImages?: number;
  /** The folder the grid PNGs will be written to (`writeReport`'s `pngDir`), for the page to name them. */
  pngDir?: string;
}

export interface LoadReportOptions extends Omit<ReportOptions, 'source' | 'samples' | 'samplesSource'> {
  /** The `--samples` NDJSON file of the same run. */
  samples?: string;
}

/** The `--json` report: the statistics the report shows, and the series behind its charts. */
export interface ReportJSON {
  report_version: 1;
  title: string;
  /** False for an interrupted run (no final line): `summary` is then its last stats line. */
  complete: boolean;
  warnings: string[];
  /** Gradient-masking warnings on the statistics (`maskingWarnings`), with full model ids. */
  masking: MaskingWarning[];
  run: { file: string; statistics_line: number };
  /** The start line, less its type; `null` when the run has none. */
  start: Record<string, unknown> | null;
  /** The final line (or the last stats line), less its type. */
  summary: RunSummary;
  eps_curves: EpsPoint[];
  throughput: ThroughputPoint[];
  roc: RocCurve[];
  grids: {
    attack: string;
    /** The PNG's name in `--png-dir`. */
    png: string;
    sources: string[];
    images: { id: string; label: number; clean: Record<string, number>; adversarials: Record<string, { preds: Record<string, number>; success: boolean; linf: number; l2: number }> }[];
  }[];
}

export interface Report {
  complete: boolean;
  warnings: string[];
  masking: MaskingWarning[];
  html: string;
  markdown: string;
  json: ReportJSON;
  /** One PNG per image grid, by file name. */
  pngs: { name: string; data: Buffer }[];
}

/**
 * Builds a report from the events of an evaluation: the objects that `advstream eval` prints as
 * NDJSON (`start`, `stats`, `final`; `roc` lines of an audit), in order. A run without a final line
 * is reported from its last stats line and marked incomplete.
 *
 * @example
 * const report = await buildReport(events, { source: 'eval', samples: sampleLines });
 * await writeReport(report, { html: 'report.html', markdown: 'report.md' });
 */
export async function buildReport(events: AsyncIterable<unknown> | Iterable<unknown>, options: ReportOptions = {}): Promise<Report> {
  const source = options.source ?? 'events';
  const samples = options.samples === undefined ? undefined : fromValues(options.samples, options.samplesSource ?? 'samples');
  return assemble(fromValues(events, source), source, samples, options);
}

/**
 * Reads a run's NDJSON file (and its `--samples` file) and builds the report; errors name the file
 * and line.
 *
 * @example
 * const report = await loadReport('run.ndjson', { samples: 'samples.ndjson' });
 * await writeReport(report, { html: 'report.html' });
 */
export async function loadReport(file: string, options: LoadReportOptions = {}): Promise<Report> {
  const { samples, ...rest } = options;
  return assemble(readNdjson(file), file, samples === undefined ? undefined : readNdjson(samples), rest);
}

export interface ReportTargets {
  html?: string;
  markdown?: string;
  json?: string;
  /** A folder for the grid PNGs, created when missing. */
  pngDir?: string;
}

/**
 * Writes the parts of a report that `targets` name; returns the paths written.
 *
 * @example
 * await writeReport(report, { html: 'out/report.html', pngDir: 'out/grids' });
 */
export async function writeReport(report: Report, targets: ReportTargets): Promise<string[]> {
  const written: string[] = [];
  const write = async (file: string, data: string | Buffer) => {
    await mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await writeFile(file, data);
    written.push(file);
  };
  if (targets.html !== undefined) await write(targets.html, report.html);
  if (targets.markdown !== undefined) await write(targets.markdown, report.markdown);
  if (targets.json !== undefined) await write(targets.json, `${JSON.stringify(report.json, null, 2)}\n`);
  if (targets.pngDir !== undefined) {
    await mkdir(targets.pngDir, { recursive: true });
    for (const png of report.pngs) await write(path.join(targets.pngDir, png.name), png.data);
  }
  return written;
}

async function assemble(
  runLines: AsyncIterable<InputLine>,
  file: string,
  sampleLines: AsyncIterable<InputLine> | undefined,
  options: Omit<ReportOptions, 'samples' | 'source' | 'samplesSource'>,
): Promise<Report> {
  const gridImages = options.gridImages ?? DEFAULT_GRID_IMAGES;
  if (!Number.isInteger(gridImages) || gridImages < 0) {
    throw Errors.badArgument(`gridImages must be a non-negative integer, got ${gridImages}`, { gridImages });
  }
  const run = await readRun(runLines, file);
  const warnings = [...run.warnings];
  const collected = sampleLines ? await collectGrids(readSamples(sampleLines, warnings), gridImages, warnings) : [];
  const pngNames = uniqueNames(collected);
  const command = provenanceCommand(run);
  const title = options.title ?? `Robustness report: ${command ?? path.basename(file)}${run.complete ? '' : ' (incomplete)'}`;
  const masking = maskingWarnings(run.summary);
  const names = shortModelNames([
    ...Object.keys(run.summary.models),
    ...Object.values(run.summary.transfer).flatMap((sources) => [...Object.keys(sources), ...Object.values(sources).flatMap((t) => Object.keys(t))]),
    ...collected.flatMap((g) => [...g.models, ...g.sources]),
  ]);
  const s = renameModels(run.summary, names);
  const shown = { ...run, summary: s };
  const grids = collected.map((g) => renameGrid(g, names));

  const series = epsSeries(s);
  const rocGroups = groupBy(run.rocs, (r) => r.attack ?? '');
  const tables = {
    run: runTable(run),
    accuracy: [accuracyTable(s), attackTable(s)],
    eps: epsTables(series),
    transfer: transferTables(s),
    detectors: run.rocs.length ? [rocTable(run)] : [],
    throughput: run.throughput.length ? [throughputTable(run)] : [],
    provenance: [provenanceTable(run), modelsTable(run, names)].filter((t) => t.rows.length > 0),
  };
  const charts = await renderCharts(shown, series, rocGroups);
  const head = headline(s);
  const maskingLines = maskingWarnings(s).map((w) => `${w.code}: ${w.message}`);

  const html = renderHtml(
    {
      title,
      complete: run.complete,
      warnings,
      masking: maskingLines,
      headline: head,
      run: tables.run,
      accuracy: { chart: charts.accuracy, tables: tables.accuracy },
      eps: { charts: charts.eps, tables: tables.eps },
      transfer: { charts: charts.transfer, tables: tables.transfer },
      detectors: { charts: charts.roc, tables: tables.detectors },
      throughput: { charts: charts.throughput, tables: tables.throughput },
      grids,
      provenance: tables.provenance,
    },
    options.pngDir === undefined ? new Map() : new Map([...pngNames].map(([attack, name]) => [attack, path.join(options.pngDir!, name)])),
  );
  const markdown = renderMarkdown({
    title,
    complete: run.complete,
    warnings,
    masking: maskingLines,
    headline: head,
    run: tables.run,
    sections: [
      ['Clean and robust accuracy', tables.accuracy],
      ['Robust accuracy versus ε', tables.eps],
      ['Transfer', tables.transfer],
      ['Detectors', tables.detectors],
      ['Throughput', tables.throughput],
      ['Provenance', tables.provenance],
    ],
    grids: grids.map((g) => ({ attack: g.attack, png: options.pngDir === undefined ? undefined : path.join(options.pngDir, pngNames.get(g.attack)!) })),
  });
  return {
    complete: run.complete,
    warnings,
    masking,
    html,
    markdown,
    json: reportJson(run, title, warnings, masking, epsSeries(run.summary), collected, pngNames),
    pngs: grids.map((g) => ({ name: pngNames.get(g.attack)!, data: gridPng(g) })),
  };
}

async function renderCharts(run: Run, series: Map<string, EpsPoint[]>, rocGroups: Map<string, RocCurve[]>) {
  const chart = async (id: string, title: string, note: string, spec: Parameters<typeof renderSvg>[0]): Promise<Chart> => ({
    id,
    title,
    note,
    svg: await renderSvg(spec, id),
  });
  const s = run.summary;
  const [accuracy, eps, transfer, roc, throughput] = await Promise.all([
    chart(
      'chart-accuracy',
      'Clean and robust accuracy',
      'Each point is an accuracy, each bar its 95% Wilson interval: clean, then robust accuracy under each attack (an image counts as robust when the model is right on it and on its adversarial).',
      accuracySpec(s),
    ),
    Promise.all(
      [...series].map(([family, points], i) =>
        chart(`chart-eps-${i}`, `Robust accuracy versus ε: ${family}`, 'Robust accuracy of every model as the budget ε grows; bars are 95% intervals where the run counted them (fixed-ε attacks).', epsSpec(family, points)),
      ),
    ),
    Promise.all(
      Object.entries(s.transfer).map(([attack, sources], i) =>
        chart(`chart-transfer-${i}`, `Transfer: ${attack}`, 'Row: the model the adversarials were crafted on; column: the model they were shown to. The diagonal is the white-box error.', transferSpec(attack, sources, transferOrder(s, sources))),
      ),
    ),
    Promise.all(
      [...rocGroups].map(([attack, curves], i) =>
        chart(`chart-roc-${i}`, `Detector ROC: ${attack || 'all attacks'}`, 'True against false positive rate of each detector; the dashed diagonal is chance.', rocSpec(attack || null, curves)),
      ),
    ),
    run.throughput.length
      ? chart('chart-throughput', 'Throughput', 'Images per second: the run average each statistics line reports, and the rate between consecutive lines.', throughputSpec(run)).then((c) => [c])
      : Promise.resolve([]),
  ]);
  return { accuracy, eps, transfer, roc, throughput };
}

function reportJson(
  run: Run,
  title: string,
  warnings: string[],
  masking: MaskingWarning[],
  series: Map<string, EpsPoint[]>,
  grids: ImageGrid[],
  pngNames: ReadonlyMap<string, string>,
): ReportJSON {
  return {
    report_version: 1,
    title,
    complete: run.complete,
    warnings,
    masking,
    run: { file: run.file, statistics_line: run.summaryLine },
    start: run.start,
    summary: run.summary,
    eps_curves: [...series.values()].flat(),
    throughput: run.throughput,
    roc: run.rocs,
    grids: grids.map((g) => ({
      attack: g.attack,
      png: pngNames.get(g.attack)!,
      sources: g.sources,
      images: g.rows.map((r) => ({
        id: r.id,
        label: r.label,
        clean: r.cleanPreds,
        adversarials: Object.fromEntries(
          Object.entries(r.adversarials).map(([source, a]) => [source, { preds: a.preds, success: a.success, linf: a.linf, l2: a.l2 }]),
        ),
      })),
    })),
  };
}

/** The command that made the run, from its final line's provenance or its start line. */
function provenanceCommand(run: Run): string | undefined {
  const from = (value: unknown) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>).command : undefined);
  const command = from(run.summary.provenance) ?? run.start?.command;
  return typeof command === 'string' && command.trim() !== '' ? command : undefined;
}

/** Attack id → PNG file name, unique even where two ids sanitise alike. */
function uniqueNames(grids: ImageGrid[]): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Set<string>();
  for (const g of grids) {
    let name = gridFileName(g.attack);
    for (let k = 2; taken.has(name); k++) name = gridFileName(`${g.attack}-${k}`);
    taken.add(name);
    names.set(g.attack, name);
  }
  return names;
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) out.set(key(item), [...(out.get(key(item)) ?? []), item]);
  return out;
}
