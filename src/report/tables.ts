/**
 * The report's tables as plain text cells, built once and rendered by both the HTML and the
 * Markdown writer, so that the two always show the same numbers.
 */
import type { EvalSummary } from '../stats/eval-stats.js';
import { epsFamilies } from './attack-families.js';
import type { Run, RunSummary } from './input.js';

export interface Table {
  /** HTML id; stable, for links and tests. */
  id: string;
  caption: string;
  columns: string[];
  rows: string[][];
  /** Columns that hold numbers (right-aligned). */
  numeric?: boolean[];
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
 * One line per model: clean accuracy and the weakest attack, for readers with a minute. Minimal-ε
 * attacks (those with a curve) are left out: their robust accuracy is at their largest ε, not at a
 * budget, and their curve tells their story.
 */
export function headline(summary: RunSummary): string[] {
  return Object.entries(summary.models).map(([model, m]) => {
    const clean = `clean accuracy ${withInterval(m.clean.acc, m.clean.ci)}`;
    const curved = summary.curves?.[model] ?? {};
    let worst: [string, number, [number, number]] | undefined;
    for (const [attack, a] of Object.entries(m.attacks)) {
      if (!(attack in curved) && a.robust_acc !== null && (worst === undefined || a.robust_acc < worst[1])) worst = [attack, a.robust_acc, a.ci];
    }
    const weakest = worst ? `; lowest robust accuracy ${withInterval(worst[1], worst[2])} under ${worst[0]}` : '';
    return `${model}: ${clean}${weakest}`;
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
    columns: ['Model', 'Clean', ...attacks],
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

/** One table per attack: error rate of each target (columns) on adversarials crafted on each source (rows). */
export function transferTables(summary: RunSummary): Table[] {
  return Object.entries(summary.transfer).map(([attack, sources], i) => {
    const targets = [...new Set(Object.values(sources).flatMap((t) => Object.keys(t)))];
    return {
      id: `table-transfer-${i}`,
      caption: `Transfer under ${attack}: error % [95% interval] of the target (column) on adversarials crafted on the source (row)`,
      columns: ['Source ↓ target →', ...targets, 'n'],
      rows: Object.entries(sources).map(([source, cells]) => {
        const ns = [...new Set(Object.values(cells).map((c) => c.n))];
        return [source, ...targets.map((t) => (cells[t] ? withInterval(cells[t].err, cells[t].ci) : NONE)), ns.join('–')];
      }),
      numeric: [false, ...targets.map(() => true), true],
    };
  });
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

export function modelsTable(run: Run): Table {
  const models = provenance(run).models;
  const list = Array.isArray(models) ? models.filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null) : [];
  return {
    id: 'table-models',
    caption: 'Models',
    columns: ['Model', 'Family', 'Classes', 'Input', 'sha256', 'Manifest', 'Manifest accuracy', 'Trained at commit'],
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
      return [plain(m.id), plain(m.family), plain(m.num_classes), shape, sha, described, accuracy, plain(manifest.commit)];
    }),
  };
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
