/**
 * The report's charts: Vega-Lite specs, rendered to SVG in Node by a headless Vega view (no canvas,
 * no network: every chart carries its data inline).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { EvalSummary } from '../stats/eval-stats.js';
import type { RocCurve, Run } from './input.js';
import { attackIds, type EpsPoint } from './tables.js';

export interface Chart {
  /** HTML id, unique in a report. */
  id: string;
  title: string;
  /** One sentence on how to read it. */
  note: string;
  svg: string;
}

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

const CONFIG = {
  font: FONT,
  background: 'white',
  padding: 8,
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  // Without a canvas Vega can only estimate text widths; 0 lifts the limit so long attack ids are never cut.
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 0 },
  title: { fontSize: 14, anchor: 'start' as const, subtitleFontSize: 11, subtitleColor: '#555' },
};

const PERCENT_AXIS = { format: '.0%' };

/** Clean and robust accuracy of every model as points with their 95% intervals. */
export function accuracySpec(summary: EvalSummary): TopLevelSpec {
  const conditions = ['clean', ...attackIds(summary)];
  const values = Object.entries(summary.models).flatMap(([model, m]) => [
    ...(m.clean.acc === null ? [] : [{ model, condition: 'clean', acc: m.clean.acc, lo: m.clean.ci[0], hi: m.clean.ci[1] }]),
    ...Object.entries(m.attacks)
      .filter(([, a]) => a.robust_acc !== null)
      .map(([attack, a]) => ({ model, condition: attack, acc: a.robust_acc, lo: a.ci[0], hi: a.ci[1] })),
  ]);
  const x = { type: 'quantitative' as const, scale: { domain: [0, 1] }, axis: PERCENT_AXIS };
  return {
    config: CONFIG,
    width: 560,
    height: Math.max(60, Object.keys(summary.models).length * conditions.length * 14),
    data: { values },
    encoding: {
      y: { field: 'model', type: 'nominal', title: null, axis: { labelLimit: 200 } },
      yOffset: { field: 'condition', type: 'nominal', sort: conditions },
      color: { field: 'condition', type: 'nominal', sort: conditions, title: 'condition', legend: { orient: 'bottom', columns: 1 } },
    },
    layer: [
      { mark: { type: 'rule', strokeWidth: 2 }, encoding: { x: { field: 'lo', ...x, title: 'accuracy (95% interval)' }, x2: { field: 'hi' } } },
      { mark: { type: 'point', filled: true, size: 50 }, encoding: { x: { field: 'acc', ...x } } },
    ],
  };
}

/** Robust accuracy against ε for every model of one attack family; `logEps` for grids spanning decades. */
export function epsSpec(family: string, points: EpsPoint[], options: { logEps?: boolean } = {}): TopLevelSpec {
  const values = points.map((p) => ({ model: p.model, eps: p.eps, acc: p.robust_acc, lo: p.ci?.[0] ?? null, hi: p.ci?.[1] ?? null }));
  const x = { field: 'eps', type: 'quantitative' as const, title: 'ε', ...(options.logEps && { scale: { type: 'log' as const } }) };
  const y = { type: 'quantitative' as const, scale: { domain: [0, 1] }, axis: PERCENT_AXIS };
  return {
    config: CONFIG,
    title: { text: 'Robust accuracy versus ε', subtitle: family },
    width: 480,
    height: 280,
    data: { values },
    encoding: { color: { field: 'model', type: 'nominal', legend: { orient: 'bottom', columns: 2 } } },
    layer: [
      {
        transform: [{ filter: 'datum.lo !== null' }],
        mark: { type: 'rule', strokeWidth: 1.5, opacity: 0.6 },
        encoding: { x, y: { field: 'lo', ...y }, y2: { field: 'hi' } },
      },
      {
        mark: { type: 'line', point: { filled: true, size: 40 } },
        encoding: { x, y: { field: 'acc', ...y, title: 'robust accuracy' } },
      },
    ],
  };
}

/**
 * The transfer matrix of one attack as a heatmap: error of the target on the source's adversarials.
 * Both axes list `order` (default: the models the matrix names, sources first), every model on
 * both, so the diagonal is the white-box error even where a model has no row of its own.
 */
export function transferSpec(attack: string, sources: EvalSummary['transfer'][string], order?: readonly string[]): TopLevelSpec {
  const values = Object.entries(sources).flatMap(([source, targets]) =>
    Object.entries(targets)
      .filter(([, c]) => c.err !== null)
      .map(([target, c]) => ({ source, target, err: c.err, lo: c.ci[0], hi: c.ci[1], n: c.n })),
  );
  const axes = [...(order ?? new Set([...Object.keys(sources), ...values.map((v) => v.target)]))];
  const side = Math.max(1, axes.length) * 64;
  return {
    config: CONFIG,
    title: { text: 'Transfer: error of the target', subtitle: attack },
    width: side,
    height: side,
    data: { values },
    encoding: {
      x: { field: 'target', type: 'nominal', scale: { domain: axes }, title: 'target model', axis: { labelAngle: -30, labelLimit: 160 } },
      y: { field: 'source', type: 'nominal', scale: { domain: axes }, title: 'crafted on (source)', axis: { labelLimit: 160 } },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: { field: 'err', type: 'quantitative', title: 'error', scale: { domain: [0, 1], scheme: 'orangered' }, legend: { format: '.0%' } },
        },
      },
      {
        mark: { type: 'text', fontSize: 12 },
        encoding: {
          text: { field: 'err', type: 'quantitative', format: '.0%' },
          color: { condition: { test: 'datum.err > 0.6', value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

/** Detector ROC curves on one attack, with the chance diagonal. */
export function rocSpec(attack: string | null, curves: RocCurve[]): TopLevelSpec {
  const values = curves.flatMap((c) => {
    const label = `${c.detector}${c.auc === null ? '' : ` (AUC ${c.auc.toFixed(3)})`}`;
    return [...c.points]
      .sort((a, b) => a.fpr - b.fpr || a.tpr - b.tpr)
      .map((p, i) => ({ detector: label, fpr: p.fpr, tpr: p.tpr, i }));
  });
  const axis = { type: 'quantitative' as const, scale: { domain: [0, 1] } };
  return {
    config: CONFIG,
    title: { text: 'Detector ROC', subtitle: attack ?? 'all attacks' },
    width: 320,
    height: 320,
    layer: [
      {
        data: { values: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] },
        mark: { type: 'line', strokeDash: [4, 4], color: '#999' },
        encoding: { x: { field: 'fpr', ...axis }, y: { field: 'tpr', ...axis } },
      },
      {
        data: { values },
        mark: { type: 'line', point: { filled: true, size: 30 } },
        encoding: {
          x: { field: 'fpr', ...axis, title: 'false positive rate' },
          y: { field: 'tpr', ...axis, title: 'true positive rate' },
          color: { field: 'detector', type: 'nominal', legend: { orient: 'bottom', columns: 1 } },
          order: { field: 'i', type: 'quantitative' },
        },
      },
    ],
  };
}

/** Images per second over the run: the average the run reports, and the rate between its lines. */
export function throughputSpec(run: Run): TopLevelSpec {
  const values: { elapsed: number; rate: number; series: string }[] = [];
  let previous: Run['throughput'][number] | undefined;
  for (const p of run.throughput) {
    if (p.images_per_s !== null) values.push({ elapsed: p.elapsed_s, rate: p.images_per_s, series: 'run average' });
    if (previous && p.elapsed_s > previous.elapsed_s) {
      values.push({ elapsed: p.elapsed_s, rate: (p.images - previous.images) / (p.elapsed_s - previous.elapsed_s), series: 'since the previous line' });
    }
    previous = p;
  }
  return {
    config: CONFIG,
    title: { text: 'Throughput', subtitle: `${run.throughput.length} statistics lines` },
    width: 480,
    height: 220,
    data: { values },
    mark: { type: 'line', point: { filled: true, size: 30 } },
    encoding: {
      x: { field: 'elapsed', type: 'quantitative', title: 'elapsed (s)' },
      y: { field: 'rate', type: 'quantitative', title: 'images per second', scale: { zero: true } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom' } },
    },
  };
}

/**
 * Renders a Vega-Lite spec to a standalone SVG string. Vega numbers clip paths and gradients per
 * process; `idPrefix` makes every id unique among the SVGs inlined in one page.
 *
 * @example
 * const svg = await renderSvg(throughputSpec(run), 'c1');
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  // Loaded on first use: Vega is large and most importers of the library never draw a chart.
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return svg
      .replace(/\bid="([^"]+)"/g, `id="${idPrefix}-$1"`)
      .replace(/url\(#([^)]+)\)/g, `url(#${idPrefix}-$1)`)
      .replace(/href="#([^"]+)"/g, `href="#${idPrefix}-$1"`);
  } finally {
    view.finalize();
  }
}
