/**
 * Reports people look at: from the NDJSON events of `advstream eval` (and its `--samples` lines),
 * one self-contained HTML page (tables, Vega-Lite charts as inline SVG, image grids), the same
 * tables in Markdown, a JSON summary and PNG image grids.
 *
 * @example
 *   import { loadReport, writeReport } from 'advstream';
 *   const report = await loadReport('run.ndjson', { samples: 'samples.ndjson' });
 *   await writeReport(report, { html: 'report.html', markdown: 'report.md', pngDir: 'grids' });
 */
export {
  buildReport,
  DEFAULT_GRID_IMAGES,
  loadReport,
  writeReport,
  type LoadReportOptions,
  type Report,
  type ReportJSON,
  type ReportOptions,
  type ReportTargets,
} from './report.js';
export type { RocCurve, RunSummary, ThroughputPoint } from './input.js';
export { EXPERIMENTS, ISO_EPS, ZOO_NAMES } from './experiments.js';
export {
  canonical,
  judgeNumber,
  judgeQualitative,
  pct,
  renderReproduction,
  RunResults,
  type ClaimRow,
  type DocumentOptions,
  type DocumentRun,
  type Estimate,
  type Experiment,
  type ExperimentResult,
  type Figure,
  type NumberClaim,
  type ReproductionDocument,
  type ReproRun,
  type RunOutcome,
  type ClaimVerdict,
} from './reproduction.js';
export type { EpsPoint } from './tables.js';
export { decodePixels, DEFAULT_SHAPE, encodePixels, type ImageShape, type PixelEncoding } from './pixels.js';
