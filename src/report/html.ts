/**
 * The HTML report: one self-contained file (inline CSS, inline SVG charts, PNG data URIs; no script)
 * whose Content-Security-Policy forbids every fetch, so it opens the same offline.
 */
import type { Chart } from './charts.js';
import { encodePng, imageRgba, perturbationRgba, type ImageGrid } from './grids.js';
import type { Table } from './tables.js';
import { attackTraits } from './threat-models.js';

/** Everything the page shows, in reading order. */
export interface HtmlPage {
  title: string;
  complete: boolean;
  warnings: string[];
  /** Gradient-masking warnings, `CODE: message`. */
  masking: string[];
  headline: string[];
  run: Table;
  accuracy: { chart: Chart; tables: Table[] };
  eps: { charts: Chart[]; tables: Table[] };
  transfer: { charts: Chart[]; tables: Table[] };
  detectors: { charts: Chart[]; tables: Table[] };
  throughput: { charts: Chart[]; tables: Table[] };
  grids: ImageGrid[];
  provenance: Table[];
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Attack ids are long and comma-separated: let them wrap after commas. */
function wrappable(text: string): string {
  return escapeHtml(text).replace(/,/g, ',<wbr>');
}

export function tableHtml(t: Table): string {
  const keyValue = t.columns.every((c) => c === '');
  const head = keyValue ? '' : `<thead><tr>${t.columns.map((c, i) => `<th scope="col"${cls(t, i)}>${wrappable(c)}</th>`).join('')}</tr></thead>`;
  const rows = t.rows
    .map((r) => `<tr>${r.map((cell, i) => (i === 0 ? `<th scope="row">${wrappable(cell)}</th>` : `<td${cls(t, i)}>${t.numeric?.[i] ? escapeHtml(cell) : wrappable(cell)}</td>`)).join('')}</tr>`)
    .join('\n');
  const note = t.note ? `<p class="table-note" id="${t.id}-note">${escapeHtml(t.note)}</p>` : '';
  return `<table id="${t.id}"${keyValue ? ' class="kv"' : ''}><caption>${escapeHtml(t.caption)}</caption>${head}<tbody>\n${rows}\n</tbody></table>${note}`;
}

function cls(t: Table, i: number): string {
  return t.numeric?.[i] ? ' class="num"' : '';
}

function chartHtml(c: Chart): string {
  return `<figure class="chart" id="${c.id}"><div class="svg" role="img" aria-label="${escapeHtml(c.title)}">${c.svg}</div><figcaption>${escapeHtml(c.note)}</figcaption></figure>`;
}

function pngUri(rgba: Uint8Array, width: number, height: number): string {
  return `data:image/png;base64,${encodePng(rgba, width, height).toString('base64')}`;
}

function img(uri: string, grid: ImageGrid, alt: string): string {
  const [h, w] = grid.shape;
  const scale = Math.max(1, Math.round(112 / Math.max(h, w)));
  return `<img src="${uri}" width="${w * scale}" height="${h * scale}" alt="${escapeHtml(alt)}">`;
}

function preds(models: string[], predictions: Record<string, number>, label: number, source?: string): string {
  const items = models.map((m) => {
    const p = predictions[m];
    const right = p === label;
    const who = m === source ? `<strong>${escapeHtml(m)}</strong> (source)` : escapeHtml(m);
    return `<li class="${right ? 'right' : 'wrong'}">${right ? '✓' : '✗'} ${who}: <b>${p ?? '–'}</b></li>`;
  });
  return `<ul class="preds">${items.join('')}</ul>`;
}

export function gridHtml(grid: ImageGrid, index: number, png: string | undefined): string {
  const [h, w] = grid.shape;
  const head = `<tr><th scope="col">Image</th><th scope="col">Clean</th>${grid.sources
    .map((s) => `<th scope="col">Crafted on<br><code>${escapeHtml(s)}</code></th>`)
    .join('')}</tr>`;
  const body = grid.rows
    .map((row) => {
      const clean = `<td>${img(pngUri(imageRgba(row.clean, grid.shape), w, h), grid, `clean image ${row.id}, label ${row.label}`)}${preds(grid.models, row.cleanPreds, row.label)}</td>`;
      const advs = grid.sources.map((source) => {
        const a = row.adversarials[source];
        if (!a) return '<td class="missing">–</td>';
        const picture = img(pngUri(imageRgba(a.pixels, grid.shape), w, h), grid, `adversarial of image ${row.id} crafted on ${source}`);
        const verdict = `<div class="verdict">attack ${a.success ? 'succeeded' : 'failed'} on its source</div>`;
        return `<td>${picture}${preds(grid.models, a.preds, row.label, source)}${verdict}</td>`;
      });
      const deltas = grid.sources.map((source) => {
        const a = row.adversarials[source];
        if (!a) return '<td class="missing">–</td>';
        const { rgba, scale } = perturbationRgba(a.pixels, row.clean, grid.shape);
        const picture = img(pngUri(rgba, w, h), grid, `perturbation of image ${row.id} crafted on ${source}`);
        return `<td>${picture}<div class="scale">full colour at ±${scale.toFixed(3)}<br>L∞ ${a.linf.toFixed(3)} · L2 ${a.l2.toFixed(3)}</div></td>`;
      });
      return [
        `<tr><th scope="row" rowspan="2">#${escapeHtml(row.id)}<br><span class="label">label ${row.label}</span></th>${clean}${advs.join('')}</tr>`,
        `<tr class="perturbation"><td class="note">perturbation<br>adversarial − clean<br><span class="bar"></span><br><span class="ends"><span>−</span><span>0</span><span>+</span></span></td>${deltas.join('')}</tr>`,
      ].join('\n');
    })
    .join('\n');
  const file = png ? ` Also written as <code>${escapeHtml(png)}</code>.` : '';
  const blackBox = attackTraits(grid.attack)?.gradientFree === true;
  const columns = blackBox
    ? 'Each further column: the adversarial crafted on the model named at its top, black-box (from its scores alone, no gradients), and transferred to the others.'
    : 'Each further column: the adversarial crafted on the model named at its top (white-box for that model, transferred to the others).';
  return `<figure class="grid" id="grid-${index}">
<figcaption><strong>Adversarial examples under <code>${wrappable(grid.attack)}</code></strong>. First column: the clean image.
${columns}
Under each image, every model's prediction (✓ right, ✗ wrong). Second row: the perturbation, red where a pixel went up, blue where it went down, each scaled to its own largest change.${file}</figcaption>
<table class="images"><thead>${head}</thead><tbody>
${body}
</tbody></table></figure>`;
}

const CSS = `
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --right: #1a7f37; --wrong: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: var(--ink); background: #f6f8fa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; background: white; }
h1 { font-size: 26px; margin: 0 0 8px; } h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; background: #eff2f5; padding: 0 3px; border-radius: 3px; }
.status { padding: 8px 12px; border-radius: 6px; font-weight: 600; }
.status.complete { background: #dafbe1; color: #116329; } .status.incomplete { background: #ffebe9; color: #a40e26; }
.warnings { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px 8px 32px; }
.masking { background: #ffebe9; border: 1px solid #cf222e; border-radius: 6px; padding: 4px 12px; } .masking-none { color: var(--muted); font-size: 13px; }
.table-note { color: var(--muted); font-size: 12px; margin: -14px 0 20px; }
nav ul { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; padding: 0; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; text-align: left; }
thead th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { background: #f6f8fa; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 12px 0; } figcaption { color: var(--muted); font-size: 13px; max-width: 70ch; }
/* A table's caption wraps to the table's width: here, the chart's. */
figure.chart { display: table; } figure.chart > figcaption { display: table-caption; caption-side: bottom; }
.chart .svg svg { display: block; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
table.images td, table.images th { text-align: center; }
table.images img { image-rendering: pixelated; display: block; margin: 0 auto 4px; border: 1px solid var(--line); }
ul.preds { list-style: none; margin: 0; padding: 0; text-align: left; font-size: 12px; }
li.right { color: var(--right); } li.wrong { color: var(--wrong); }
.verdict, .scale, .label, .note { color: var(--muted); font-size: 12px; }
.bar { display: inline-block; width: 84px; height: 10px; background: linear-gradient(to right, rgb(33,102,172), white, rgb(178,24,43)); border: 1px solid var(--line); }
.ends { display: inline-flex; width: 84px; justify-content: space-between; }
td.missing { color: var(--muted); vertical-align: middle; }
`;

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;
}

function tablesInDetails(tables: Table[], summary: string): string {
  return tables.length ? `<details><summary>${escapeHtml(summary)}</summary>\n${tables.map(tableHtml).join('\n')}\n</details>` : '';
}

/** `pngPaths`: attack → where its grid's PNG is written; attacks without one get no mention of a file. */
export function renderHtml(p: HtmlPage, pngPaths: ReadonlyMap<string, string>): string {
  const sections: [string, string, string][] = [];
  const headline = `<ul class="headline">${p.headline.map((l) => `<li>${wrappable(l)}</li>`).join('')}</ul>`;
  const masking = p.masking.length
    ? `<div class="masking" id="masking"><p><strong>Gradient masking: these figures may overstate robustness.</strong></p><ul>${p.masking.map((w) => `<li>${wrappable(w)}</li>`).join('')}</ul></div>`
    : '<p class="masking-none" id="masking">No sign of gradient masking in these results (checks: iterative above AutoAttack-family or black-box attacks, single-step above iterative, transfer above white-box, accuracy rising with ε, curves not reaching 0).</p>';
  sections.push(['summary', 'Summary', `${headline}\n${masking}\n${tableHtml(p.run)}`]);
  sections.push(['accuracy', 'Clean and robust accuracy', `${chartHtml(p.accuracy.chart)}\n${p.accuracy.tables.map(tableHtml).join('\n')}`]);
  if (p.eps.charts.length) {
    sections.push(['epsilon', 'Robust accuracy versus ε', `<div class="charts">${p.eps.charts.map(chartHtml).join('')}</div>\n${tablesInDetails(p.eps.tables, 'The numbers')}`]);
  }
  if (p.transfer.charts.length) {
    sections.push(['transfer', 'Transfer', `<div class="charts">${p.transfer.charts.map(chartHtml).join('')}</div>\n${tablesInDetails(p.transfer.tables, 'The numbers, with 95% intervals')}`]);
  }
  if (p.detectors.charts.length) {
    sections.push(['detectors', 'Detectors', `<div class="charts">${p.detectors.charts.map(chartHtml).join('')}</div>\n${p.detectors.tables.map(tableHtml).join('\n')}`]);
  }
  if (p.throughput.tables.length) {
    sections.push(['throughput', 'Throughput', `${p.throughput.charts.map(chartHtml).join('')}\n${tablesInDetails(p.throughput.tables, 'The numbers')}`]);
  }
  if (p.grids.length) {
    sections.push(['images', 'Images', p.grids.map((g, i) => gridHtml(g, i, pngPaths.get(g.attack))).join('\n')]);
  }
  sections.push(['provenance', 'Provenance', p.provenance.map(tableHtml).join('\n')]);
  const status = p.complete
    ? '<p class="status complete">Complete run: statistics from its final line.</p>'
    : '<p class="status incomplete">INCOMPLETE run: it has no final line; the statistics are those of its last stats line.</p>';
  const warnings = p.warnings.length ? `<ul class="warnings">${p.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : '';
  const nav = `<nav><ul>${sections.map(([id, title]) => `<li><a href="#${id}">${escapeHtml(title)}</a></li>`).join('')}</ul></nav>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${escapeHtml(p.title)}</title>
<style>${CSS}</style>
</head>
<body><main>
<header><h1>${escapeHtml(p.title)}</h1>
${status}
${warnings}
${nav}</header>
${sections.map(([id, title, body]) => section(id, title, body)).join('\n')}
</main></body>
</html>
`;
}
