import type { Command } from 'commander';
import { Errors } from '../../errors.js';
import { DEFAULT_GRID_IMAGES, loadReport, writeReport } from '../../report/index.js';
import { nonNegativeInt } from '../args.js';

interface ReportFlags {
  html?: string;
  md?: string;
  json?: string;
  pngDir?: string;
  samples?: string;
  gridImages: string;
  title?: string;
  strict?: boolean;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('build a report from the NDJSON of advstream eval: self-contained HTML, Markdown tables, JSON, PNG image grids')
    .argument('<run>', 'the NDJSON that advstream eval printed (start, stats, final lines)')
    .option('--html <file>', 'one self-contained HTML page: tables, charts, image grids (- for stdout)')
    .option('--md <file>', 'the tables in Markdown (- for stdout)')
    .option('--json <file>', 'the statistics and chart series as JSON (- for stdout)')
    .option('--png-dir <dir>', 'write each image grid as a PNG in DIR')
    .option('--samples <file>', 'the --samples NDJSON of the same run: image grids need its pixels')
    .option('--grid-images <n>', 'images per grid', String(DEFAULT_GRID_IMAGES))
    .option('--title <text>', 'the report title')
    .option('--strict', 'fail when the run has no final line, instead of reporting it as incomplete')
    .addHelpText(
      'after',
      '\nAn interrupted run (no final line) is reported from its last stats line and marked INCOMPLETE.\nPixel format of --samples lines: docs/report.md.\n',
    )
    .action(async (file: string, flags: ReportFlags) => {
      const gridImages = nonNegativeInt('--grid-images', flags.gridImages);
      if ([flags.html, flags.md, flags.json, flags.pngDir].every((f) => f === undefined)) {
        throw Errors.badArgument('nothing to write: give one or more of --html FILE, --md FILE, --json FILE, --png-dir DIR');
      }
      const toStdout = (['html', 'md', 'json'] as const).filter((k) => flags[k] === '-');
      if (toStdout.length > 1) throw Errors.badArgument(`only one output can go to stdout (-); got --${toStdout.join(' and --')}`);
      const report = await loadReport(file, {
        ...(flags.samples !== undefined && { samples: flags.samples }),
        ...(flags.title !== undefined && { title: flags.title }),
        ...(gridImages !== undefined && { gridImages }),
        ...(flags.pngDir !== undefined && { pngDir: flags.pngDir }),
      });
      if (flags.strict && !report.complete) throw Errors.incompleteRun(file, report.json.run.statistics_line);
      for (const w of report.warnings) process.stderr.write(`advstream: warning: ${w}\n`);
      for (const w of report.masking) process.stderr.write(`advstream: warning [${w.code}]: ${w.message}\n`);
      const toFile = (target: string | undefined) => (target === '-' ? undefined : target);
      const written = await writeReport(report, {
        html: toFile(flags.html),
        markdown: toFile(flags.md),
        json: toFile(flags.json),
        pngDir: flags.pngDir,
      });
      if (flags.html === '-') process.stdout.write(report.html);
      if (flags.md === '-') process.stdout.write(report.markdown);
      if (flags.json === '-') process.stdout.write(`${JSON.stringify(report.json, null, 2)}\n`);
      for (const f of written) process.stderr.write(`advstream: wrote ${f}\n`);
    });
}
