/**
 * The reproduction document: the seed papers' claims set against evaluations of the shipped zoo.
 * The experiments ({@link EXPERIMENTS} in `experiments.ts`) say which evaluations to run and how to
 * judge each claim; this module reads estimates out of the evaluations' summaries, judges numbers
 * against the papers' by one rule, and renders the Markdown and its figures. Everything in the
 * document comes from the evaluations: regenerate it, never edit it.
 */
import type { TopLevelSpec } from 'vega-lite';
import { parseAttackSpec } from '../attacks/index.js';
import { Errors } from '../errors.js';
import type { EvalSummary } from '../stats/eval-stats.js';
import { wilson } from '../stats/proportion.js';
import { renderSvg } from './charts.js';
import { tableMarkdown } from './markdown.js';
import { percent, type Table } from './tables.js';

/** One evaluation an experiment needs: `advstream eval` over these models and attacks. */
export interface ReproRun {
  /** Stable id; names its file in the work folder. */
  id: string;
  models: string[];
  /** Attack specs as a user would type them. */
  attacks: string[];
}

/** What a finished evaluation contributes: its summary and how it ran. `FinalEvent` satisfies it. */
export interface RunOutcome extends EvalSummary {
  backend: string;
  /** The engines that computed the models (`tfjs-wasm`, `onnx-cpu`, `+`-joined). */
  engine: string;
  simd: boolean;
  workers: number;
  mode: string;
  throughput: { elapsed_s: number; images_per_s: number | null };
  provenance: Record<string, unknown>;
}

export type ClaimVerdict = 'reproduced' | 'same direction, weaker' | 'same direction, stronger' | 'not reproduced';

/** One row of the document: a claim, the paper's number, ours, and the verdict with its reason. */
export interface ClaimRow {
  claim: string;
  paper: string;
  ours: string;
  verdict: ClaimVerdict;
  reason: string;
}

export interface Figure {
  /** File name stem, unique in the document. */
  name: string;
  caption: string;
  spec: TopLevelSpec;
}

export interface ExperimentResult {
  claims: ClaimRow[];
  tables: Table[];
  figures: Figure[];
  /** Paragraphs of findings, computed from the evaluations. */
  findings: string[];
}

export interface Experiment {
  id: string;
  title: string;
  /** The paper and what it set out to show, one paragraph. */
  source: string;
  /** How the experiment maps the paper onto our zoo: models, units, losses. */
  setup: string[];
  runs: ReproRun[];
  judge(results: RunResults): ExperimentResult;
}

/** An estimate: a proportion with its 95% Wilson interval, or a mean (no interval). */
export interface Estimate {
  value: number;
  ci?: [number, number];
}

/** Finished evaluations by run id, with accessors that fail loudly on anything missing. */
export class RunResults {
  constructor(private readonly outcomes: ReadonlyMap<string, RunOutcome>) {}

  run(id: string): RunOutcome {
    const o = this.outcomes.get(id);
    if (!o) throw Errors.badArgument(`the reproduction has no results for run '${id}'`, { run: id });
    return o;
  }

  clean(run: string, model: string): Estimate {
    const m = this.model(run, model);
    return proportion(m.clean.acc, m.clean.ci, `${run}: clean accuracy of ${model}`);
  }

  robust(run: string, model: string, attack: string): Estimate {
    const a = this.attack(run, model, attack);
    return proportion(a.robust_acc, a.ci, `${run}: robust accuracy of ${model} under ${attack}`);
  }

  /** Error over all images, clean mistakes included: 1 − robust accuracy. */
  error(run: string, model: string, attack: string): Estimate {
    return complement(this.robust(run, model, attack));
  }

  /** Mean confidence (softmax of the predicted class) on misclassified adversarials. */
  confidence(run: string, model: string, attack: string): Estimate {
    const c = this.attack(run, model, attack).mean_conf_misclassified;
    if (c === null) throw Errors.badArgument(`${run}: no misclassified adversarials of ${model} under ${attack}`);
    return { value: c };
  }

  meanL2(run: string, model: string, attack: string): Estimate {
    const l2 = this.attack(run, model, attack).mean_l2;
    if (l2 === null) throw Errors.badArgument(`${run}: no successful adversarials of ${model} under ${attack}`);
    return { value: l2 };
  }

  /** Error of `target` on the adversarials `attack` crafted on each source, pooled over the pairs. */
  transfer(run: string, attack: string, pairs: readonly (readonly [string, string])[]): Estimate {
    const table = this.run(run).transfer[canonical(attack)];
    let k = 0;
    let n = 0;
    for (const [source, target] of pairs) {
      const cell = table?.[source]?.[target];
      if (!cell || cell.err === null) throw Errors.badArgument(`${run}: no transfer cell ${attack} ${source} → ${target}`);
      k += Math.round(cell.err * cell.n);
      n += cell.n;
    }
    const { lo, hi } = wilson(k, n);
    return { value: k / n, ci: [lo, hi] };
  }

  private model(run: string, model: string) {
    const m = this.run(run).models[model];
    if (!m) throw Errors.badArgument(`run '${run}' did not evaluate ${model}`, { run, model });
    return m;
  }

  private attack(run: string, model: string, attack: string) {
    const a = this.model(run, model).attacks[canonical(attack)];
    if (!a) throw Errors.badArgument(`run '${run}' did not attack ${model} with ${attack}`, { run, model, attack });
    return a;
  }
}

/** The canonical id of an attack spec, as evaluation summaries key it. */
export function canonical(spec: string): string {
  return parseAttackSpec(spec).id;
}

function proportion(p: number | null, ci: [number, number], what: string): Estimate {
  if (p === null) throw Errors.badArgument(`${what}: no images`);
  return { value: p, ci };
}

export function complement(e: Estimate): Estimate {
  return { value: 1 - e.value, ...(e.ci && { ci: [1 - e.ci[1], 1 - e.ci[0]] as [number, number] }) };
}

/** A percentage with one decimal, two below 10% (clean errors under 1% need them). */
export function pct(p: number): string {
  return `${(100 * p).toFixed(p > 0 && p < 0.1 ? 2 : 1)}%`;
}

/** `97.5% [95.1, 98.8]`, or `97.5%` for a mean. */
export function show(e: Estimate): string {
  if (!e.ci) return pct(e.value);
  const digits = e.value > 0 && e.value < 0.1 ? 2 : 1;
  return `${pct(e.value)} [${(100 * e.ci[0]).toFixed(digits)}, ${(100 * e.ci[1]).toFixed(digits)}]`;
}

/** Points, signed: `+1.2 pts`. */
export function points(delta: number): string {
  return `${delta >= 0 ? '+' : '−'}${Math.abs(100 * delta).toFixed(1)} pts`;
}

/** Whether two estimates' 95% intervals are disjoint with `a` above `b` (means: plain comparison). */
export function clearlyAbove(a: Estimate, b: Estimate): boolean {
  return (a.ci?.[0] ?? a.value) > (b.ci?.[1] ?? b.value);
}

export interface NumberClaim {
  claim: string;
  /** The paper's figure, a proportion. */
  paper: number;
  ours: Estimate;
  /** How far from the paper still counts as reproduced (absolute, proportion units). */
  tolerance: number;
  /** Which side of the paper's figure makes the paper's effect stronger. */
  stronger: 'higher' | 'lower';
  /** The qualitative claim behind the number, judged on ours; it decides "same direction" or "not reproduced". */
  direction: { holds: boolean; text: string };
}

/**
 * The document's one rule for a number: reproduced when ours is within the tolerance of the paper's
 * or the paper's lies in our 95% interval; otherwise "same direction" (stronger or weaker, by which
 * side of the paper's effect ours falls on) when the qualitative claim still holds on our models,
 * and "not reproduced" when it does not.
 */
export function judgeNumber(c: NumberClaim): ClaimRow {
  const { paper, ours, tolerance } = c;
  const row = { claim: c.claim, paper: pct(paper), ours: show(ours) };
  const delta = ours.value - paper;
  const inInterval = ours.ci !== undefined && ours.ci[0] <= paper && paper <= ours.ci[1];
  if (Math.abs(delta) <= tolerance || inInterval) {
    return { ...row, verdict: 'reproduced', reason: `${points(delta)} from the paper, within ${points(tolerance).slice(1)}${inInterval ? ' (the paper\'s figure is in our interval)' : ''}` };
  }
  if (!c.direction.holds) return { ...row, verdict: 'not reproduced', reason: `${c.direction.text}; ${points(delta)} from the paper` };
  const stronger = (delta > 0) === (c.stronger === 'higher');
  return { ...row, verdict: stronger ? 'same direction, stronger' : 'same direction, weaker', reason: `${c.direction.text}; ${points(delta)} from the paper` };
}

/** A claim the paper makes without a number we could retrieve: the verdict follows the test alone. */
export function judgeQualitative(claim: string, paper: string, ours: string, test: { holds: boolean; text: string; weaker?: boolean }): ClaimRow {
  const verdict: ClaimVerdict = !test.holds ? 'not reproduced' : test.weaker ? 'same direction, weaker' : 'reproduced';
  return { claim, paper, ours, verdict, reason: test.text };
}

export interface DocumentRun {
  experiment: string;
  run: ReproRun;
  command: string;
  outcome: RunOutcome;
  /** Whether this invocation computed it (false: taken from the cache of an earlier one). */
  fresh: boolean;
}

export interface DocumentOptions {
  /** Images per evaluation: 10,000 is the full test set. */
  images: number;
  /** The command that generated the document. */
  command: string;
  commit: string;
  generatedAt: string;
  /** Where the figures go, relative to the document, e.g. `reproduction`. */
  figureDir: string;
}

export interface ReproductionDocument {
  markdown: string;
  /** Every judged claim, in document order. */
  claims: ClaimRow[];
  /** SVG figures by file name (relative to {@link DocumentOptions.figureDir}). */
  figures: Map<string, string>;
}

const VERDICT_MARK: Record<ClaimVerdict, string> = {
  reproduced: '✅ reproduced',
  'same direction, weaker': '🟡 same direction, weaker',
  'same direction, stronger': '🟢 same direction, stronger',
  'not reproduced': '❌ not reproduced',
};

function claimsTable(id: string, caption: string, rows: ClaimRow[], withReason: boolean): Table {
  return {
    id,
    caption,
    columns: ['claim', 'paper', 'ours (95% interval)', 'verdict', ...(withReason ? ['why'] : [])],
    rows: rows.map((r) => [r.claim, r.paper, r.ours, VERDICT_MARK[r.verdict], ...(withReason ? [r.reason] : [])]),
  };
}

function duration(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(2)} h`;
}

/**
 * Judges every experiment on its runs' outcomes and renders the document with its figures. An
 * experiment whose runs are missing is left out with a line saying so, so that a partial
 * reproduction (`--only`) still renders what it has.
 */
export async function renderReproduction(
  experiments: readonly Experiment[],
  runs: readonly DocumentRun[],
  o: DocumentOptions,
): Promise<ReproductionDocument> {
  const outcomes = new Map(runs.map((r) => [r.run.id, r.outcome]));
  const results = new RunResults(outcomes);
  const figures = new Map<string, string>();
  const judged: { e: Experiment; r: ExperimentResult }[] = [];
  const skipped: Experiment[] = [];
  for (const e of experiments) {
    if (e.runs.every((r) => outcomes.has(r.id))) judged.push({ e, r: e.judge(results) });
    else skipped.push(e);
  }

  const first = runs[0]?.outcome;
  const total = runs.reduce((s, r) => s + r.outcome.throughput.elapsed_s, 0);
  const out: string[] = [
    '# Reproducing the seed papers with the shipped zoo',
    '',
    '<!-- Generated by `advstream reproduce`. Do not edit: rerun `npm run reproduce`. -->',
    '',
    `Generated by \`${o.command}\` at commit \`${o.commit}\` on ${o.generatedAt}. ` +
      `${o.images === 10000 ? 'Every evaluation covers all 10,000 MNIST test images' : `**Quick pass: ${o.images} MNIST test images per evaluation**, not the full 10,000`}` +
      (first
        ? `, on the ${first.backend}${first.simd ? ' (SIMD)' : ''} backend, engine ${[...new Set(runs.map((r) => r.outcome.engine))].join(' and ')}, ` +
          `with ${first.workers} worker${first.workers === 1 ? '' : 's'}`
        : '') +
      `. The evaluations took ${duration(total)} in all.`,
    '',
    'Each claim gives the paper\'s figure, ours with its 95% Wilson interval, and a verdict. A number is **reproduced** when ours ' +
      'is within the stated tolerance of the paper\'s or the paper\'s figure lies in our interval. Otherwise the verdict is ' +
      '**same direction, stronger / weaker** when the qualitative claim behind the number holds on our models (stronger: the ' +
      'paper\'s effect is larger here), and **not reproduced** when it does not. Claims the papers state without a number we ' +
      'could retrieve are judged on the stated test alone. Errors and accuracies are over all test images, clean mistakes ' +
      'included; ε is in [0,1] pixel units for every model (DAM works in [−1,1] inside, where the same ε is twice as large).',
    '',
  ];
  if (skipped.length > 0) {
    out.push(`Not run in this pass: ${skipped.map((e) => e.title).join('; ')}.`, '');
  }
  out.push('## Summary', '');
  const all = judged.flatMap(({ r }, i) => r.claims.map((c) => ({ ...c, claim: `${i + 1}. ${c.claim}` })));
  out.push(tableMarkdown(claimsTable('summary', 'Every claim', all, false)), '');

  let index = 0;
  for (const { e, r } of judged) {
    index += 1;
    out.push(`## ${index}. ${e.title}`, '', e.source, '', ...e.setup.flatMap((s) => [`- ${s}`]), '');
    out.push('Commands (each one evaluation; `advstream reproduce` runs them through the same pipeline):', '', '```sh');
    for (const run of runs.filter((x) => x.experiment === e.id)) out.push(run.command);
    out.push('```', '');
    out.push(tableMarkdown(claimsTable(`${e.id}-claims`, 'Claims', r.claims, true)), '');
    for (const t of r.tables) out.push(tableMarkdown(t), '');
    for (const f of r.figures) {
      const file = `${f.name}.svg`;
      figures.set(file, await renderSvg(f.spec, f.name));
      out.push(`![${f.caption}](${o.figureDir}/${file})`, '', `*${f.caption}*`, '');
    }
    if (r.findings.length > 0) out.push('**Findings.**', '', ...r.findings.flatMap((p) => [p, '']));
  }

  out.push('## Run time', '');
  const timing: Table = {
    id: 'run-time',
    caption: `Wall time per evaluation (${first ? `${first.workers} workers, ` : ''}this machine)`,
    columns: ['experiment', 'run', 'images', 'wall time', 'images/s', 'computed', 'at commit'],
    numeric: [false, false, true, true, true, false, false],
    rows: runs.map((r) => [
      r.experiment,
      r.run.id,
      String(r.outcome.images),
      duration(r.outcome.throughput.elapsed_s),
      r.outcome.throughput.images_per_s === null ? '–' : r.outcome.throughput.images_per_s.toFixed(1),
      r.fresh ? 'this invocation' : 'earlier invocation (cached)',
      typeof r.outcome.provenance.commit === 'string' ? r.outcome.provenance.commit : '–',
    ]),
  };
  out.push(tableMarkdown(timing), '');
  const slowest = [...runs].sort((a, b) => b.outcome.throughput.elapsed_s - a.outcome.throughput.elapsed_s)[0];
  if (slowest) {
    const share = slowest.outcome.throughput.elapsed_s / Math.max(total, 1e-9);
    out.push(
      `The whole reproduction took ${duration(total)} of evaluation${total > 3600 ? ', over an hour' : ''}; ` +
        `the largest part is \`${slowest.run.id}\` (${duration(slowest.outcome.throughput.elapsed_s)}, ${percent(share)} of the total).`,
      '',
    );
  }
  return { markdown: `${out.join('\n').trimEnd()}\n`, claims: judged.flatMap(({ r }) => r.claims), figures };
}
