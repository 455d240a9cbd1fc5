/**
 * `advstream eval --html` end to end, through the compiled CLI: a real tiny evaluation whose report
 * must show its final statistics and its images, and equal the report `advstream report` makes
 * from the files the run wrote.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { openSource } from '../../src/data/index.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { decodePixels, loadReport, type RunSummary } from '../../src/report/index.js';
import { expectTablesMatch, htmlTable } from '../report/helpers.js';
import { scratchDir, testModels } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
const IMAGES = 32;
const PIXELS = 6;
const SPECS = ['fgsm:eps=0.1', 'fgsm:eps=0.2', 'pgd:eps=0.1,steps=3', 'pgd:eps=0.2,steps=3', 'mineps:attack=bim,steps=3,tol=0.05'];

interface SamplesLine {
  id: string;
  shape?: number[];
  pixels?: string;
  adversarials: { attack: string; source: string; linf: number; adversarial?: string }[];
}

let dir: string;
let files: { run: string; samples: string; html: string; md: string; png: string };
let run: { code: number | null; stderr: string };

beforeAll(async () => {
  const models = await testModels();
  dir = await scratchDir('eval-report');
  files = {
    run: path.join(dir, 'run.ndjson'),
    samples: path.join(dir, 'samples.ndjson'),
    html: path.join(dir, 'report.html'),
    md: path.join(dir, 'report.md'),
    png: path.join(dir, 'grids'),
  };
  const args = [
    'eval', '--data', 'mnist:test', '--limit', String(IMAGES), '--model', models[0]!, '--model', models[1]!,
    ...SPECS.flatMap((s) => ['--attack', s]), '--workers', '2', '--batch', '16', '--backend', 'wasm', '--stats-every', '1batches',
    '--out', files.run, '--samples', files.samples, '--sample-pixels', String(PIXELS),
    '--html', files.html, '--md', files.md, '--png-dir', files.png,
  ];
  run = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('advstream eval --html', () => {
  it('writes the report and says where', () => {
    expect(run.code, run.stderr).toBe(0);
    for (const f of [files.html, files.md]) expect(run.stderr).toContain(`wrote ${f}`);
  });

  it('writes the pixels of the first --sample-pixels images into --samples, in the report format', async () => {
    const samples = lines(files.samples) as unknown as SamplesLine[];
    expect(samples.map((l) => l.pixels !== undefined)).toEqual(Array.from({ length: IMAGES }, (_, i) => i < PIXELS));
    let i = 0;
    for await (const record of openSource('mnist:test', { limit: PIXELS })) {
      const line = samples[i++]!;
      expect(line.shape).toEqual([28, 28, 1]);
      const clean = decodePixels(line.pixels, { file: files.samples });
      expect(Array.from(clean, (v) => Math.round(v * 255))).toEqual(Array.from(record.pixels, (v) => Math.round(v * 255)));
      expect(line.adversarials).toHaveLength(SPECS.length * 2);
      for (const a of line.adversarials) {
        const adv = decodePixels(a.adversarial, { file: files.samples });
        const linf = adv.reduce((m, v, j) => Math.max(m, Math.abs(v - clean[j]!)), 0);
        // Both images are quantised to 1/255.
        expect(Math.abs(linf - a.linf), `${line.id} ${a.attack} on ${a.source}`).toBeLessThanOrEqual(1 / 255 + 1e-6);
      }
    }
  });

  it('shows the final statistics in its HTML tables, image grids, ε curves and throughput over time', () => {
    const html = readFileSync(files.html, 'utf8');
    const events = lines(files.run);
    const final = events.at(-1)!;
    expect(final.type).toBe('final');
    expectTablesMatch(final as unknown as RunSummary, (id) => htmlTable(html, id));
    expect(html).toMatch(/<figure class="grid" id="grid-0">[\s\S]*?<img src="data:image\/png;base64,/);
    // --png-dir wrote the grids as PNG files too: each grid's caption names its file.
    expect(html).toContain(`Also written as <code>${path.join(files.png, 'grid-')}`);
    // fgsm and pgd at two budgets each (pgd's default step scales with ε), their worst case, and the minimal-ε curve.
    const families = [...html.matchAll(/<caption>Robust accuracy versus ε under ([^<]+)<\/caption>/g)].map((m) => m[1]);
    expect(families).toHaveLength(4);
    expect(families).toContain(parseAttackSpec(SPECS[4]!).id);
    expect(families).toContain('worst-case:norm=linf');
    // A minimal-ε attack's robust accuracy is at its largest ε: not the headline's weakest attack.
    expect(html).not.toMatch(/lowest robust accuracy[^<]*under mineps/);
    // One throughput row per stats line: the final line, right after the last one, adds none.
    expect(htmlTable(html, 'table-throughput').rows).toHaveLength(events.filter((e) => e.type === 'stats').length);
  });

  it('writes one decodable PNG per attack, and equals the report made from its files', async () => {
    const pngs = readdirSync(files.png).sort();
    expect(pngs).toHaveLength(SPECS.length);
    for (const name of pngs) {
      const png = PNG.sync.read(readFileSync(path.join(files.png, name)));
      expect(png.width * png.height, name).toBeGreaterThan(0);
    }
    // The same flags as the eval run: `advstream report run --samples s --png-dir DIR`.
    const report = await loadReport(files.run, { samples: files.samples, pngDir: files.png });
    expect(report.warnings).toEqual([]);
    expect(readFileSync(files.md, 'utf8')).toBe(report.markdown);
    expect(report.pngs.map((p) => p.name).sort()).toEqual(pngs);
  });
});
