/** The Markdown report: the HTML report's tables, for pull requests and CI logs. */
import type { Table } from './tables.js';

export interface MarkdownPage {
  title: string;
  complete: boolean;
  warnings: string[];
  /** Gradient-masking warnings, `CODE: message`. */
  masking: string[];
  headline: string[];
  /** Status, size and speed of the run, under the headline. */
  run: Table;
  /** Heading → tables, in reading order; sections without tables are left out. */
  sections: [string, Table[]][];
  /** Image grids: attack id and PNG file name (when written). */
  grids: { attack: string; png: string | undefined }[];
}

function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function tableMarkdown(t: Table): string {
  const keyValue = t.columns.every((c) => c === '');
  const columns = keyValue ? ['Field', 'Value'] : t.columns;
  const align = columns.map((_, i) => (t.numeric?.[i] ? '--:' : ':--'));
  return [
    `**${cell(t.caption)}**`,
    '',
    `| ${columns.map(cell).join(' | ')} |`,
    `| ${align.join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
    ...(t.note ? ['', `_${cell(t.note)}_`] : []),
  ].join('\n');
}

export function renderMarkdown(p: MarkdownPage): string {
  const out: string[] = [`# ${p.title}`, ''];
  out.push(
    p.complete
      ? '**Status: complete** (statistics from the final line)'
      : '**Status: INCOMPLETE**: the run has no final line; statistics are from its last stats line',
    '',
  );
  if (p.warnings.length) out.push(...p.warnings.map((w) => `> warning: ${w}`), '');
  out.push('## Summary', '', ...p.headline.map((l) => `- ${l}`), '');
  if (p.masking.length) out.push('**Gradient masking: these figures may overstate robustness.**', '', ...p.masking.map((w) => `- ${w}`), '');
  out.push(tableMarkdown(p.run), '');
  for (const [heading, tables] of p.sections) {
    if (tables.length === 0) continue;
    out.push(`## ${heading}`, '');
    for (const t of tables) out.push(tableMarkdown(t), '');
  }
  if (p.grids.length) {
    out.push('## Images', '', 'Image grids (clean, adversarial per source model, perturbation) are in the HTML report:', '');
    out.push(...p.grids.map((g) => `- ${g.attack}${g.png ? `: ${g.png}` : ''}`), '');
  }
  return `${out.join('\n').trimEnd()}\n`;
}
