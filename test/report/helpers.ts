/** Reading the report's tables back, from its HTML and from its Markdown. */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { RunSummary } from '../../src/report/index.js';
import { shortModelNames } from '../../src/report/model-names.js';
import { RUN_FILE } from './make-fixture.js';

export interface ParsedTable {
  caption: string;
  columns: string[];
  rows: string[][];
}

function unescapeHtml(text: string): string {
  return text
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
}

/** The table with this id, as text cells. */
export function htmlTable(html: string, id: string): ParsedTable {
  const match = new RegExp(`<table id="${id}"[^>]*>([\\s\\S]*?)</table>`).exec(html);
  if (!match) throw new Error(`no table #${id} in the HTML`);
  const body = match[1]!;
  const caption = unescapeHtml(/<caption>([\s\S]*?)<\/caption>/.exec(body)?.[1] ?? '');
  const rows = [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((tr) =>
    [...tr[1]!.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((cell) => unescapeHtml(cell[1]!)),
  );
  const hasHead = body.includes('<thead>');
  return { caption, columns: hasHead ? rows[0]! : [], rows: hasHead ? rows.slice(1) : rows };
}

/** The Markdown table under the bold caption that starts with `caption`. */
export function markdownTable(markdown: string, caption: string): ParsedTable {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`**${caption}`));
  if (at < 0) throw new Error(`no table '${caption}' in the Markdown`);
  const split = (line: string) =>
    line
      .slice(2, -2)
      .split(/(?<!\\) \| /)
      .map((c) => c.replace(/\\\|/g, '|').replace(/\\\\/g, '\\').trim());
  const table: string[] = [];
  for (let i = at + 2; i < lines.length && lines[i]!.startsWith('|'); i++) table.push(lines[i]!);
  return { caption: lines[at]!.slice(2, -2), columns: split(table[0]!), rows: table.slice(2).map(split) };
}

/** `97.5% [95.1, 98.8]` → [0.975, 0.951, 0.988]; `–` → null. */
export function parseInterval(text: string): [number, number, number] | null {
  if (text === '–') return null;
  const m = /^(-?[\d.]+)% \[(-?[\d.]+), (-?[\d.]+)\]$/.exec(text);
  if (!m) throw new Error(`not a proportion with its interval: '${text}'`);
  return [Number(m[1]) / 100, Number(m[2]) / 100, Number(m[3]) / 100];
}

/** A shown percentage (one decimal) equals the statistic to within rounding. */
export function expectPercent(shown: number, actual: number, what: string): void {
  expect(Math.abs(shown - actual), `${what}: shown ${shown}, statistic ${actual}`).toBeLessThanOrEqual(0.0005 + 1e-12);
}

export function expectInterval(text: string, p: number | null, ci: readonly [number, number], what: string): void {
  const parsed = parseInterval(text);
  if (p === null) {
    expect(parsed, what).toBeNull();
    return;
  }
  expect(parsed, what).not.toBeNull();
  expectPercent(parsed![0], p, `${what} value`);
  expectPercent(parsed![1], ci[0], `${what} lower bound`);
  expectPercent(parsed![2], ci[1], `${what} upper bound`);
}

/** A shown number with three significant digits equals the statistic to within rounding. */
export function expectDecimal(text: string, x: number | null, what: string): void {
  if (x === null) {
    expect(text, what).toBe('–');
    return;
  }
  const shown = Number(text);
  expect(Number.isFinite(shown), `${what}: '${text}' is a number`).toBe(true);
  expect(Math.abs(shown - x), `${what}: shown ${text}, statistic ${x}`).toBeLessThanOrEqual(Math.abs(x) * 5e-3 + 1e-12);
}

/** The fixture run's lines, parsed. */
export function fixtureEvents(file = RUN_FILE): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function summaryOf(event: Record<string, unknown>): RunSummary {
  return event as unknown as RunSummary;
}

/**
 * Every accuracy, attack and transfer number a table shows equals the statistics of `summary`.
 * `table(id, caption)` gives a table by HTML id or by Markdown caption.
 */
export function expectTablesMatch(summary: RunSummary, table: (id: string, caption: string) => ParsedTable): void {
  const models = Object.keys(summary.models);
  // Tables show a model given as a path by its short name (src/report/model-names.ts).
  const names = shortModelNames([...models, ...Object.values(summary.transfer).flatMap((s) => Object.keys(s))]);
  const show = (model: string) => names.get(model) ?? model;
  const fullId = new Map([...names].map(([full, short]) => [short, full]));
  const accuracy = table('table-accuracy', 'Clean and robust accuracy');
  expect(accuracy.rows.map((r) => r[0])).toEqual(models.map(show));
  // A minimal-ε attack's heading says where its figure is read: `ID (at ε = 1, the end of its curve)`.
  const attacks = accuracy.columns.slice(2).map((c) => c.replace(/ \(at ε = [^)]*, the end of its curve\)$/, ''));
  expect(new Set(attacks)).toEqual(new Set(Object.values(summary.models).flatMap((m) => Object.keys(m.attacks))));
  for (const [model, m] of Object.entries(summary.models)) {
    const row = accuracy.rows.find((r) => r[0] === show(model))!;
    expectInterval(row[1]!, m.clean.acc, m.clean.ci, `${model} clean`);
    attacks.forEach((attack, j) => {
      const a = m.attacks[attack]!;
      expectInterval(row[2 + j]!, a.robust_acc, a.ci, `${model} ${attack} robust`);
    });
  }

  const details = table('table-attacks', 'Attacks');
  let k = 0;
  for (const [model, m] of Object.entries(summary.models)) {
    for (const [attack, a] of Object.entries(m.attacks)) {
      const row = details.rows[k++]!;
      const where = `${model} ${attack}`;
      expect(row.slice(0, 2)).toEqual([show(model), attack]);
      expectInterval(row[2]!, a.robust_acc, a.ci, `${where} robust`);
      expectInterval(row[3]!, a.asr, a.asr_ci, `${where} asr`);
      expectDecimal(row[4]!, a.mean_linf, `${where} mean linf`);
      expectDecimal(row[5]!, a.median_linf, `${where} median linf`);
      expectDecimal(row[6]!, a.mean_l2, `${where} mean l2`);
      expectDecimal(row[7]!, a.median_l2, `${where} median l2`);
      expectDecimal(row[8]!, a.mean_conf_misclassified, `${where} confidence`);
      expect(Number(row[9]), `${where} n`).toBe(a.n);
    }
  }
  expect(details.rows).toHaveLength(k);

  Object.entries(summary.transfer).forEach(([attack, sources], i) => {
    const t = table(`table-transfer-${i}`, `Transfer under ${attack}:`);
    const targets = t.columns.slice(1, -1);
    expect(t.rows.map((r) => r[0])).toEqual(Object.keys(sources).map(show));
    for (const row of t.rows) {
      const cells = sources[fullId.get(row[0]!)!]!;
      expect(new Set(targets)).toEqual(new Set(Object.keys(cells).map(show)));
      targets.forEach((target, j) => {
        const c = cells[fullId.get(target)!]!;
        expectInterval(row[1 + j]!, c.err, c.ci, `transfer ${attack} ${row[0]} → ${target}`);
        expect(Number(row.at(-1))).toBe(c.n);
      });
    }
  });
}
