/**
 * What `advstream eval` says to a person on a terminal, as pure functions of the run's plan and
 * events: the header shown before anything loads, the legend of the live table, an ETA that is a
 * time of day, and the summary after the final event. The eval command prints their lines on stderr.
 */
import { maskingWarnings, type MaskingWarning } from '../report/masking.js';
import { shortModelNames } from '../report/model-names.js';
import { threatModels } from '../report/threat-models.js';
import type { EvalSummary } from '../stats/eval-stats.js';

/** A proportion with its 95% interval, in percent: `0.0% [0.0, 0.4]`; `–` with no trials. */
export function withInterval(p: number | null, ci: readonly [number, number]): string {
  if (p === null) return '–';
  return `${(100 * p).toFixed(1)}% [${(100 * ci[0]).toFixed(1)}, ${(100 * ci[1]).toFixed(1)}]`;
}

/** What the command line asked for, known before any model loads. */
export interface RunPlan {
  data: string;
  models: readonly string[];
  attacks: readonly string[];
  backend: string;
  engine: string;
  workers: number;
  limit?: number;
}

/**
 * The first lines on the terminal, printed before models load (which takes seconds), so that the
 * user sees at once what is going to run.
 *
 * @example
 *   headerLines({ data: 'mnist:test', models: ['zoo:mlp-relu'], attacks: ['pgd:eps=0.3'], backend: 'auto', engine: 'auto', workers: 2 });
 */
export function headerLines(plan: RunPlan): string[] {
  const images = plan.limit === undefined ? '' : `, first ${plan.limit.toLocaleString('en-US')} images`;
  return [
    `advstream eval: ${plan.data}${images}`,
    `  models   ${plan.models.join(', ')}`,
    `  attacks  ${plan.attacks.join(', ')}`,
    `  backend ${plan.backend} · engine ${plan.engine} · ${plan.workers} worker${plan.workers === 1 ? '' : 's'}`,
    'loading models and starting workers…',
  ];
}

/** How to read the live table. */
export const LEGEND: readonly string[] = [
  'clean: accuracy on the unperturbed images; each attack column: robust accuracy (right both clean and under attack, over all images)',
  '"worst …": per image, the worst case over the attacks sharing that norm and ε; ±: half the 95% interval, in points',
];

/** `95` → `1m 35s`; `3725` → `1h 2m`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * When the run will end, as a time of day and a remaining duration: `ETA 16:52:10 (in 3m 20s)`.
 * From the images done and to go and the time spent on them; `ETA –` before the first image or
 * on an endless source.
 */
export function etaText(done: number, total: number | null, elapsedSeconds: number, now: Date): string {
  if (total === null || done <= 0 || elapsedSeconds <= 0) return 'ETA –';
  const remaining = (Math.max(0, total - done) * elapsedSeconds) / done;
  const at = new Date(now.getTime() + remaining * 1000);
  const clock = [at.getHours(), at.getMinutes(), at.getSeconds()].map((v) => String(v).padStart(2, '0')).join(':');
  return `ETA ${clock} (in ${duration(remaining)})`;
}

/** Where the results went, as the command line named them. */
export interface Outputs {
  /** `--out`; undefined when the NDJSON went to stdout (or nowhere: stdout was the terminal). */
  out?: string;
  /** Whether stdout is a terminal (the NDJSON then went nowhere). */
  stdoutIsTerminal: boolean;
  samples?: string;
  html?: string;
  md?: string;
  pngDir?: string;
  checkpoint?: string;
}

/** The parts of a `final` event the summary reads; extra fields are passed over. */
export interface FinalLike extends EvalSummary {
  stop_reason?: string;
  throughput?: { images_per_s: number | null; elapsed_s?: number; wall_s?: number };
  /** The pipeline's own warnings, when it attaches them; else the masking checks run here. */
  warnings?: readonly { code: string; message: string }[];
}

/**
 * The human summary after the final event: per model, clean accuracy and, for each threat model
 * (norm and ε), the worst robust accuracy any attack reached, with its interval; the masking
 * warnings; where the results went, and how to keep them when they went nowhere.
 */
export function finalSummaryLines(final: FinalLike, outputs: Outputs): string[] {
  const names = shortModelNames(Object.keys(final.models));
  const show = (m: string) => names.get(m) ?? m;
  const tp = final.throughput;
  const elapsed = tp?.elapsed_s ?? tp?.wall_s;
  const speed = [elapsed === undefined ? '' : ` in ${duration(elapsed)}`, tp?.images_per_s == null ? '' : ` (${tp.images_per_s.toFixed(0)} images/s)`].join('');
  const stop = final.stop_reason && final.stop_reason !== 'end' ? `, stopped early (${final.stop_reason})` : '';
  const lines = [`Done: ${final.images.toLocaleString('en-US')} images${speed}${stop}.`];

  const balls = threatModels(final);
  const rows: string[][] = [['model', 'clean', 'threat model', 'worst robust accuracy', 'by']];
  for (const [model, m] of Object.entries(final.models)) {
    const own = balls.filter((b) => b.model === model);
    const clean = withInterval(m.clean.acc, m.clean.ci);
    if (own.length === 0) rows.push([show(model), clean, '–', '–', '']);
    own.forEach((b, i) => {
      const by = b.lowestBy.map((a) => a.split(':')[0]).filter((a, j, all) => all.indexOf(a) === j);
      rows.push([i === 0 ? show(model) : '', i === 0 ? clean : '', b.label, withInterval(b.lowest.robust_acc, b.lowest.ci), by.join(', ')]);
    });
  }
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  lines.push(...rows.map((r) => `  ${r.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd()}`));

  const warnings: readonly { code: string; message: string }[] = final.warnings ?? maskingWarnings(final).map((w: MaskingWarning) => ({ code: w.code, message: w.message }));
  if (warnings.length > 0) {
    lines.push(`Warnings (${warnings.length}): these figures may overstate robustness`);
    for (const w of warnings) lines.push(`  [${w.code}] ${w.message}`);
  } else {
    lines.push('No sign of gradient masking in these results.');
  }

  const kept = [
    outputs.out && `NDJSON ${outputs.out}`,
    !outputs.out && !outputs.stdoutIsTerminal && 'NDJSON on stdout',
    outputs.samples && `samples ${outputs.samples}`,
    outputs.html && `report ${outputs.html}`,
    outputs.md && `Markdown ${outputs.md}`,
    outputs.pngDir && `image grids in ${outputs.pngDir}/`,
    outputs.checkpoint && `checkpoint ${outputs.checkpoint}`,
  ].filter((x): x is string => typeof x === 'string');
  if (kept.length > 0) lines.push(`Results: ${kept.join(', ')}.`);
  if (!outputs.out && outputs.stdoutIsTerminal && !outputs.html) {
    lines.push('These results were not saved. To keep them, run again with --out run.ndjson (every statistic, as NDJSON) and --html report.html (a report to open in a browser).');
  }
  return lines;
}
