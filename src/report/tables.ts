/**
 * The report's tables as plain text cells, built once and rendered by both the HTML and the
 * Markdown writer, so that the two always show the same numbers.
 */
import type { EvalSummary } from '../stats/eval-stats.js';
import { epsFamilies } from './attack-families.js';
import type { Run, RunSummary } from './input.js';
import { threatModels } from './threat-models.js';

export interface Table {
  /** HTML id; stable, for links and tests. */
  id: string;
  caption: string;
  columns: string[];
  rows: string[][];
  /** Columns that hold numbers (right-aligned). */
  numeric?: boolean[];
  /** A footnote under the table (what an empty cell means). */
  note?: string;
}

export const NONE = '–';

/** 0.975 → `97.5%`; `null` (no trials) → `–`. */
export function percent(p: number | null | undefined): string {
  return typeof p === 'number' ? `${(100 * p).toFixed(1)}%` : NONE;
}

/** A proportion with its 95% interval: `97.5% [95.1, 98.8]`. */
export function withInterval(p: number | null, ci: readonly [number, number]): string {
  if (p === null) return NONE;
  return `${percent(p)} [${(100 * ci[0]).toFixed(1)}, ${(100 * ci[1]).toFixed(1)}]`;
}

/** Three significant digits, no exponent. */
export function decimal(x: number | null | undefined): string {
  if (typeof x !== 'number' || !Number.isFinite(x)) return NONE;
  return Math.abs(x) >= 1000 ? x.toFixed(0) : x.toPrecision(3);
}

export function plain(value: unknown): string {
  if (value === null || value === undefined) return NONE;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Attack ids in a run, in the order of the statistics (sorted), over every model. */
export function attackIds(summary: EvalSummary): string[] {
  const ids = new Set<string>();
  for (const m of Object.values(summary.models)) for (const a of Object.keys(m.attacks)) ids.add(a);
  return [...ids];
}

/**
 * One line per model, for readers with a minute: clean accuracy, then for each threat model (norm
 * and ε) the lowest robust accuracy that any attack of the run reached inside that ball, naming the
 * attacks that reached it. A minimal-ε curve counts at each budget, read at its largest grid point
 * ≤ ε; minimization attacks without a curve (no budget) come last, as "unbounded".
 */
export function headline(summary: RunSummary): string[] {
  const balls = threatModels(summary);
  return Object.entries(summary.models).map(([model, m]) => {
    const parts = [`clean accuracy ${withInterval(m.clean.acc, m.clean.ci)}`];
    for (const ball of balls.filter((b) => b.model === model)) {
      const by = ball.entries
        .filter((e) => ball.lowestBy.includes(e.attack))
        .map((e) => (e.from === 'curve' ? `the curve of ${e.attack} at ε = ${e.at}` : e.attack));
      parts.push(`${ball.label}: lowest robust accuracy ${withInterval(ball.lowest.robust_acc, ball.lowest.ci)} (${by.join(', ')})`);
    }
    const inBalls = new Set(balls.filter((b) => b.model === model).flatMap((b) => b.entries.filter((e) => e.from === 'attack').map((e) => e.attack)));
    const curved = summary.curves?.[model] ?? {};
    const unbounded = Object.entries(m.attacks).filter(([a, r]) => !inBalls.has(a) && !(a in curved) && r.robust_acc !== null);
    if (unbounded.length > 0) {
      const [attack, r] = unbounded.reduce((a, b) => (b[1].robust_acc! < a[1].robust_acc! ? b : a));
      parts.push(`unbounded budget: lowest robust accuracy ${withInterval(r.robust_acc, r.ci)} (${attack})`);
    }
    return `${model}: ${parts.join('; ')}`;
  });
}

export function runTable(run: Run): Table {
  const s = run.summary;
  const tp = s.throughput;
  const rows: [string, string][] = [
    ['Status', run.complete ? 'complete' : 'INCOMPLETE (no final line)'],
    ['Statistics from', `${run.file}, line ${run.summaryLine} (${run.complete ? 'final' : 'last stats'})`],
    ['Stop reason', plain(s.stop_reason)],
    ['Images', String(s.images)],
    ['Backend', plain(s.backend ?? run.start?.backend)],
    ['SIMD', plain(s.simd ?? run.start?.simd)],
    ['Mode', plain(s.mode ?? run.start?.mode)],
    ['Workers', plain(s.workers ?? run.start?.workers)],
    ['Elapsed (s)', decimal((tp?.elapsed_s as number | undefined) ?? s.elapsed_s ?? tp?.wall_s)],
    ['Images per second', decimal(tp?.images_per_s)],
    ['Widest 95% interval', typeof s.max_ci_width === 'number' ? `${(100 * s.max_ci_width).toFixed(1)} points` : NONE],
  ];
  return { id: 'table-run', caption: 'Run', columns: ['', ''], rows: rows.filter(([, v]) => v !== NONE) };
}

/** Clean and robust accuracy with 95% Wilson intervals: one row per model, one column per attack. */
export function accuracyTable(summary: RunSummary): Table {
  const attacks = attackIds(summary);
  return {
    id: 'table-accuracy',
    caption: 'Clean and robust accuracy, % [95% interval]',
    columns: ['Model', 'Clean', ...attacks.map((a) => columnLabel(summary, a))],
    rows: Object.entries(summary.models).map(([model, m]) => [
      model,
      withInterval(m.clean.acc, m.clean.ci),
      ...attacks.map((a) => {
        const r = m.attacks[a];
        return r ? withInterval(r.robust_acc, r.ci) : NONE;
      }),
    ]),
    numeric: [false, true, ...attacks.map(() => true)],
  };
}

/**
 * A column's heading: the attack id, and for a minimal-ε attack what its robust accuracy is, the
 * accuracy at the end of its curve (the largest ε it tried).
 */
function columnLabel(summary: RunSummary, attack: string): string {
  const ends = Object.values(summary.curves ?? {}).flatMap((c) => (c[attack] ? [c[attack].at(-1)?.eps] : []));
  if (ends.length === 0) return attack;
  const eps = [...new Set(ends)].filter((e) => e !== undefined);
  return `${attack} (at ε = ${eps.join(', ')}, the end of its curve)`;
}

/** Every statistic of every (model, attack) pair. */
export function attackTable(summary: RunSummary): Table {
  const rows: string[][] = [];
  for (const [model, m] of Object.entries(summary.models)) {
    for (const [attack, a] of Object.entries(m.attacks)) {
      rows.push([
        model,
        attack,
        withInterval(a.robust_acc, a.ci),
        withInterval(a.asr, a.asr_ci),
        decimal(a.mean_linf),
        decimal(a.median_linf),
        decimal(a.mean_l2),
        decimal(a.median_l2),
        decimal(a.mean_conf_misclassified),
        String(a.n),
      ]);
    }
  }
  return {
    id: 'table-attacks',
    caption: 'Attacks: robust accuracy, success rate on clean-correct images, perturbation norms of successful attacks',
    columns: ['Model', 'Attack', 'Robust accuracy', 'Attack success', 'Mean L∞', 'Median L∞', 'Mean L2', 'Median L2', 'Mean confidence (misclassified)', 'n'],
    rows,
    numeric: [false, false, true, true, true, true, true, true, true, true],
  };
}

/**
 * One table per attack: error rate of each target (columns) on adversarials crafted on each source
 * (rows). Rows and columns are every model in the run's order, so the diagonal is the white-box
 * error even where a model is missing as a source.
 */
export function transferTables(summary: RunSummary): Table[] {
  return Object.entries(summary.transfer).map(([attack, sources], i) => {
    const order = transferOrder(summary, sources);
    const empty = order.some((source) => order.some((t) => !sources[source]?.[t]));
    return {
      id: `table-transfer-${i}`,
      caption: `Transfer under ${attack}: error % [95% interval] of the target (column) on adversarials crafted on the source (row)`,
      columns: ['Source ↓ target →', ...order, 'n'],
      rows: order.map((source) => {
        const cells = sources[source] ?? {};
        const ns = [...new Set(Object.values(cells).map((c) => c.n))];
        return [source, ...order.map((t) => (cells[t] ? withInterval(cells[t].err, cells[t].ci) : NONE)), ns.length ? ns.join('–') : NONE];
      }),
      numeric: [false, ...order.map(() => true), true],
      ...(empty && { note: `${NONE}: no adversarials of this attack were crafted on that source (a gradient attack skips a black-box model as a source; it is still a target of the others).` }),
    };
  });
}

/** The models of a transfer matrix: the run's models in order, then any the matrix names besides. */
export function transferOrder(summary: EvalSummary, sources: EvalSummary['transfer'][string]): string[] {
  const named = new Set([...Object.keys(sources), ...Object.values(sources).flatMap((t) => Object.keys(t))]);
  return [...Object.keys(summary.models).filter((m) => named.has(m)), ...[...named].filter((m) => !(m in summary.models))];
}

/** A robust-accuracy-versus-ε series of one model. */
export interface EpsPoint {
  family: string;
  model: string;
  eps: number;
  robust_acc: number;
  /** 95% interval; fixed-ε attacks only (curves of minimal ε carry no counts). */
  ci?: [number, number];
}

/**
 * Robust accuracy versus ε, by attack family: the `curves` of minimal-ε attacks, and fixed-ε attacks
 * of one family run at two budgets or more (ε = 0 is then the clean accuracy).
 */
export function epsSeries(summary: RunSummary): Map<string, EpsPoint[]> {
  const out = new Map<string, EpsPoint[]>();
  const push = (p: EpsPoint) => out.set(p.family, [...(out.get(p.family) ?? []), p]);
  const curved = new Set<string>();
  for (const [model, attacks] of Object.entries(summary.curves ?? {})) {
    for (const [attack, points] of Object.entries(attacks)) {
      curved.add(attack);
      for (const p of points) if (p.robust_acc !== null) push({ family: attack, model, eps: p.eps, robust_acc: p.robust_acc });
    }
  }
  const families = epsFamilies(attackIds(summary).filter((a) => !curved.has(a)));
  for (const [family, members] of families) {
    if (new Set(members.map((m) => m.eps)).size < 2) continue;
    for (const [model, m] of Object.entries(summary.models)) {
      if (!members.some((e) => m.attacks[e.attack])) continue;
      if (m.clean.acc !== null) push({ family, model, eps: 0, robust_acc: m.clean.acc, ci: m.clean.ci });
      for (const { attack, eps } of members) {
        const r = m.attacks[attack];
        if (r && r.robust_acc !== null) push({ family, model, eps, robust_acc: r.robust_acc, ci: r.ci });
      }
    }
  }
  return out;
}

export function epsTables(series: Map<string, EpsPoint[]>): Table[] {
  return [...series].map(([family, points], i) => {
    const models = [...new Set(points.map((p) => p.model))];
    const grid = [...new Set(points.map((p) => p.eps))].sort((a, b) => a - b);
    return {
      id: `table-eps-${i}`,
      caption: `Robust accuracy versus ε under ${family}`,
      columns: ['ε', ...models],
      rows: grid.map((eps) => [
        String(eps),
        ...models.map((model) => {
          const p = points.find((q) => q.model === model && q.eps === eps);
          if (!p) return NONE;
          return p.ci ? withInterval(p.robust_acc, p.ci) : percent(p.robust_acc);
        }),
      ]),
      numeric: [true, ...models.map(() => true)],
    };
  });
}

export function throughputTable(run: Run): Table {
  let previous: { elapsed_s: number; images: number } | undefined;
  const rows = run.throughput.map((p) => {
    const between =
      previous && p.elapsed_s > previous.elapsed_s ? (p.images - previous.images) / (p.elapsed_s - previous.elapsed_s) : null;
    previous = p;
    return [decimal(p.elapsed_s), String(p.images), decimal(p.images_per_s), decimal(between)];
  });
  return {
    id: 'table-throughput',
    caption: 'Throughput over time',
    columns: ['Elapsed (s)', 'Images', 'Images/s (run average)', 'Images/s (since the previous line)'],
    rows,
    numeric: [true, true, true, true],
  };
}

export function rocTable(run: Run): Table {
  return {
    id: 'table-roc',
    caption: 'Detectors: area under the ROC curve',
    columns: ['Detector', 'Attack', 'AUC', 'Points'],
    rows: run.rocs.map((r) => [r.detector, r.attack ?? NONE, r.auc === null ? NONE : r.auc.toFixed(3), String(r.points.length)]),
    numeric: [false, false, true, true],
  };
}

/** Provenance fields worth reading first; the rest follow in key order. */
const PROVENANCE_ORDER = ['command', 'commit', 'version', 'source', 'data', 'seed', 'batch', 'backend', 'simd', 'mode', 'workers', 'attacks', 'config_hash'];
/** Shown elsewhere, or noise here. */
const PROVENANCE_SKIP = new Set(['models', 'type']);

/** What the start line and the final line's provenance say about how the run was made. */
export function provenance(run: Run): Record<string, unknown> {
  const finalProvenance = run.summary.provenance;
  const fields: Record<string, unknown> = {
    ...(run.start ?? {}),
    ...(typeof finalProvenance === 'object' && finalProvenance !== null ? (finalProvenance as Record<string, unknown>) : {}),
  };
  // The start line's `resumed` and the final provenance's `resumed_from` say the same thing.
  if ('resumed_from' in fields) delete fields.resumed;
  return fields;
}

export function provenanceTable(run: Run): Table {
  const fields = provenance(run);
  const keys = [
    ...PROVENANCE_ORDER.filter((k) => k in fields),
    ...Object.keys(fields)
      .filter((k) => !PROVENANCE_ORDER.includes(k) && !PROVENANCE_SKIP.has(k))
      .sort(),
  ];
  return {
    id: 'table-provenance',
    caption: 'Provenance',
    columns: ['', ''],
    rows: keys.map((k) => [k, Array.isArray(fields[k]) ? (fields[k] as unknown[]).map(plain).join(', ') : plain(fields[k])]),
  };
}

/** The run's models with their full ids, and the short name the rest of the report shows where it differs. */
export function modelsTable(run: Run, names: ReadonlyMap<string, string> = new Map()): Table {
  const models = provenance(run).models;
  const list = Array.isArray(models) ? models.filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null) : [];
  const renamed = list.some((m) => typeof m.id === 'string' && (names.get(m.id) ?? m.id) !== m.id);
  return {
    id: 'table-models',
    caption: 'Models',
    columns: ['Model', ...(renamed ? ['Shown as'] : []), 'Family', 'Classes', 'Input', 'sha256', 'Manifest', 'Manifest accuracy', 'Trained at commit'],
    rows: list.map((m) => {
      const manifest = record(m.manifest);
      const acc = record(manifest.accuracy);
      const shape = Array.isArray(m.input_shape) ? m.input_shape.join('×') : NONE;
      const sha = typeof m.sha256 === 'string' ? m.sha256.slice(0, 12) : NONE;
      const described = manifest.name === undefined ? NONE : `${plain(manifest.name)}${manifest.summary ? `: ${plain(manifest.summary)}` : ''}`;
      const accuracy =
        typeof acc.clean === 'number'
          ? `${percent(acc.clean)}${acc.testImages !== undefined ? ` on ${plain(acc.testImages)} images` : ''}${acc.source ? ` (${plain(acc.source)})` : ''}`
          : NONE;
      const shownAs = renamed ? [typeof m.id === 'string' ? (names.get(m.id) ?? m.id) : NONE] : [];
      return [plain(m.id), ...shownAs, plain(m.family), plain(m.num_classes), shape, sha, described, accuracy, plain(manifest.commit)];
    }),
  };
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
