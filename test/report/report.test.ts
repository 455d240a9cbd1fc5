import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerReport } from '../../src/cli/commands/report.js';
import { isAdvstreamError, type AdvstreamError } from '../../src/errors.js';
import {
  buildReport,
  decodePixels,
  encodePixels,
  loadReport,
  writeReport,
  type Report,
  type RunSummary,
} from '../../src/report/index.js';
import { epsFamilies, splitEps } from '../../src/report/attack-families.js';
import {
  expectInterval,
  expectTablesMatch,
  fixtureEvents,
  htmlTable,
  markdownTable,
  summaryOf,
} from './helpers.js';
import { ATTACKS, MODELS, RUN_FILE, SAMPLES_FILE, ndjson } from './make-fixture.js';

let dir: string;
let report: Report;
const events = fixtureEvents();
const final = summaryOf(events.at(-1)!);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'advstream-report-'));
  report = await loadReport(RUN_FILE, { samples: SAMPLES_FILE });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function caught(p: Promise<unknown>): Promise<AdvstreamError> {
  try {
    await p;
  } catch (e) {
    if (isAdvstreamError(e)) return e;
    throw e;
  }
  throw new Error('expected an AdvstreamError');
}

async function file(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, text);
  return f;
}

describe('report of a recorded run', () => {
  it('is complete, with no warnings', () => {
    expect(report.complete).toBe(true);
    expect(report.warnings).toEqual([]);
    expect(report.json.run.statistics_line).toBe(events.length);
  });

  it('shows in its HTML tables exactly the final statistics', () => {
    expectTablesMatch(final, (id) => htmlTable(report.html, id));
  });

  it('shows in its Markdown tables exactly the final statistics', () => {
    expectTablesMatch(final, (_, caption) => markdownTable(report.markdown, caption));
  });

  it('puts the final statistics, untouched, in its JSON', () => {
    const { type: _type, ...summary } = events.at(-1)!;
    expect(report.json.summary).toEqual(summary);
    expect(report.json.start).toEqual(Object.fromEntries(Object.entries(events[0]!).filter(([k]) => k !== 'type')));
  });

  it('curves robust accuracy against ε from the curves and from fgsm at three budgets', () => {
    const families = new Set(report.json.eps_curves.map((p) => p.family));
    expect(families).toEqual(new Set(['fgsm:loss=ce', ATTACKS[3]]));
    const fgsm = markdownTable(report.markdown, 'Robust accuracy versus ε under fgsm:loss=ce');
    expect(fgsm.rows.map((r) => Number(r[0]))).toEqual([0, 0.1, 0.2, 0.3]);
    fgsm.columns.slice(1).forEach((model, j) => {
      const m = final.models[model]!;
      expectInterval(fgsm.rows[0]![1 + j]!, m.clean.acc, m.clean.ci, `${model} at ε = 0`);
      [0.1, 0.2, 0.3].forEach((eps, i) => {
        const a = m.attacks[`fgsm:eps=${eps},loss=ce`]!;
        expectInterval(fgsm.rows[1 + i]![1 + j]!, a.robust_acc, a.ci, `${model} at ε = ${eps}`);
      });
    });
    const curve = markdownTable(report.markdown, `Robust accuracy versus ε under ${ATTACKS[3]}`);
    const points = final.curves![MODELS[0]!]![ATTACKS[3]!]!;
    expect(curve.rows.map((r) => Number(r[0]))).toEqual(points.map((p) => p.eps));
    curve.rows.forEach((r, i) => expect(Number(r[1]!.replace('%', '')) / 100).toBeCloseTo(points[i]!.robust_acc!, 3));
  });

  it('renders every chart as inline SVG and every image as a PNG data URI, with nothing to fetch', () => {
    const charts = [...report.html.matchAll(/<figure class="chart" id="([^"]+)">/g)].map((m) => m[1]);
    expect(charts).toEqual([
      'chart-accuracy',
      'chart-eps-0',
      'chart-eps-1',
      ...Object.keys(final.transfer).map((_, i) => `chart-transfer-${i}`),
      'chart-throughput',
    ]);
    expect(report.html.match(/<svg /g)).toHaveLength(charts.length);
    const ids = [...report.html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size, 'ids are unique across the inlined SVGs').toBe(ids.length);
    const sources = [...report.html.matchAll(/\b(?:src|href)="([^"#][^"]*)"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(0);
    for (const s of sources) expect(s.startsWith('data:image/png;base64,'), s.slice(0, 40)).toBe(true);
    expect(report.html).not.toMatch(/<script|<link |@import|url\((?!#)/);
  });

  it('grids the sampled images: clean, one column per source model, predictions, perturbations', () => {
    const attacks = ATTACKS;
    expect(report.json.grids.map((g) => g.attack)).toEqual(attacks);
    for (const g of report.json.grids) {
      expect(g.sources).toEqual(MODELS);
      expect(g.images.map((i) => i.id)).toEqual(['1000', '1001', '1002', '1003', '1004']);
    }
    const grid = /<figure class="grid" id="grid-2">([\s\S]*?)<\/figure>/.exec(report.html)![1]!;
    expect(grid).toContain('Crafted on<br><code>zoo:dam-n20</code>');
    expect(grid).toContain('Crafted on<br><code>zoo:mlp</code>');
    // Per image: clean + one adversarial and one perturbation per source.
    expect(grid.match(/<img /g)).toHaveLength(5 * (1 + 2 * MODELS.length));
    expect(grid.match(/<li class="(right|wrong)">/g)).toHaveLength(5 * (1 + MODELS.length) * MODELS.length);
  });

  it('writes HTML, Markdown, JSON and one decodable PNG per grid', async () => {
    const out = path.join(dir, 'out');
    const written = await writeReport(report, {
      html: path.join(out, 'r.html'),
      markdown: path.join(out, 'r.md'),
      json: path.join(out, 'r.json'),
      pngDir: path.join(out, 'png'),
    });
    expect(written).toHaveLength(3 + ATTACKS.length);
    expect(await readFile(path.join(out, 'r.md'), 'utf8')).toBe(report.markdown);
    expect(JSON.parse(await readFile(path.join(out, 'r.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(report.json)));
    const pngs = (await readdir(path.join(out, 'png'))).sort();
    expect(pngs).toEqual(report.json.grids.map((g) => g.png).sort());
    for (const name of pngs) {
      const png = PNG.sync.read(await readFile(path.join(out, 'png', name)));
      // Three columns of 4× images, five image blocks of two rows each.
      expect(png.width).toBeGreaterThan(3 * 112);
      expect(png.height).toBeGreaterThan(5 * 2 * 112);
    }
  });

  it('builds the same tables from objects in memory (what eval --html will call)', async () => {
    const samples = (await readFile(SAMPLES_FILE, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    const fromMemory = await buildReport(events, { source: RUN_FILE, samples });
    expect(fromMemory.markdown).toBe(report.markdown);
    expect(fromMemory.json).toEqual(report.json);
  });
});

describe('report of an interrupted run', () => {
  it('builds from the last stats line, marked incomplete', async () => {
    const cut = events.slice(0, -1);
    const last = summaryOf(cut.at(-1)!);
    const r = await loadReport(await file('cut.ndjson', ndjson(cut)));
    expect(r.complete).toBe(false);
    expect(r.json.run.statistics_line).toBe(cut.length);
    expect(r.warnings.join('\n')).toMatch(/no final line.*line 6, 25 images/);
    expect(r.html).toContain('INCOMPLETE');
    expect(r.markdown).toContain('**Status: INCOMPLETE**');
    expectTablesMatch(last, (id) => htmlTable(r.html, id));
    expectTablesMatch(last, (_, caption) => markdownTable(r.markdown, caption));
  });

  it('passes over a torn last line with a warning', async () => {
    const text = ndjson(events.slice(0, -1)) + JSON.stringify(events.at(-1)).slice(0, 200);
    const r = await loadReport(await file('torn.ndjson', text));
    expect(r.complete).toBe(false);
    expect(r.warnings[0]).toMatch(/torn\.ndjson, line 7: not JSON.*torn last line/);
  });
});

describe('report input errors', () => {
  it('names the file and line of a line that is not JSON', async () => {
    const lines = ndjson(events).split('\n');
    lines[2] = '{"type": "stats", oops}';
    const f = await file('bad.ndjson', lines.join('\n'));
    const e = await caught(loadReport(f));
    expect(e.code).toBe('BAD_RECORD');
    expect(e.details).toMatchObject({ file: f, line: 3 });
    expect(e.message).toMatch(/bad\.ndjson, line 3: not JSON/);
  });

  it('rejects a file that is not NDJSON at its first line', async () => {
    const f = await file('pretty.json', JSON.stringify(events[0], null, 2));
    const e = await caught(loadReport(f));
    expect(e.code).toBe('BAD_RECORD');
    expect(e.details).toMatchObject({ line: 1 });
    expect(e.message).toMatch(/one JSON object per line/);
  });

  it('says so when it is given the samples file as the run', async () => {
    const e = await caught(loadReport(SAMPLES_FILE));
    expect(e.code).toBe('BAD_RECORD');
    expect(e.message).toMatch(/line 1: .*--samples line/);
  });

  it('names the field of a final line that breaks the schema', async () => {
    const broken = structuredClone(events);
    const models = (broken.at(-1) as { models: Record<string, { clean: { acc: unknown } }> }).models;
    models['zoo:mlp']!.clean.acc = 'high';
    const e = await caught(loadReport(await file('schema.ndjson', ndjson(broken))));
    expect(e.code).toBe('BAD_RECORD');
    expect(e.details).toMatchObject({ line: events.length });
    expect(e.message).toMatch(/final line: models\.zoo:mlp\.clean\.acc/);
  });

  it('rejects an empty file, a run with no statistics, and a missing file', async () => {
    expect((await caught(loadReport(await file('empty.ndjson', '\n')))).code).toBe('BAD_SOURCE');
    const startOnly = await caught(loadReport(await file('start.ndjson', ndjson(events.slice(0, 1)))));
    expect(startOnly.code).toBe('BAD_SOURCE');
    expect(startOnly.message).toMatch(/no final or stats line/);
    const missing = await caught(loadReport(path.join(dir, 'nope.ndjson')));
    expect(missing.code).toBe('BAD_SOURCE');
    expect(missing.message).toMatch(/nope\.ndjson: cannot read/);
  });

  it('names the samples line whose pixels do not decode', async () => {
    const samples = (await readFile(SAMPLES_FILE, 'utf8')).split('\n');
    const line = JSON.parse(samples[0]!) as { pixels: string };
    line.pixels = 'png:AAAA';
    samples[0] = JSON.stringify(line);
    const f = await file('samples-bad.ndjson', samples.join('\n'));
    const e = await caught(loadReport(RUN_FILE, { samples: f }));
    expect(e.code).toBe('BAD_RECORD');
    expect(e.message).toMatch(/samples-bad\.ndjson, line 1, record 1000: pixels: unknown encoding 'png'/);
  });
});

describe('sample pixels', () => {
  const where = { file: 'samples.ndjson', line: 1 };

  it('round-trips u8 (to 1/255), f32 (exactly) and plain arrays', () => {
    const values = Float32Array.from({ length: 784 }, (_, i) => ((i * 37) % 1000) / 999);
    const u8 = encodePixels(values);
    expect(u8).toMatch(/^u8:/);
    expect(u8.length).toBe(3 + 1048);
    decodePixels(u8, where).forEach((v, i) => expect(Math.abs(v - values[i]!)).toBeLessThanOrEqual(0.5 / 255 + 1e-6));
    expect(decodePixels(encodePixels(values, 'f32'), where)).toEqual(values);
    expect(decodePixels([0, 0.5, 1], where)).toEqual(Float32Array.from([0, 0.5, 1]));
  });

  it('rejects values out of [0, 1], bad base64 and unknown tags, naming the field', () => {
    expect(() => decodePixels([0, 2], where)).toThrow(/pixels: value 1 is 2/);
    expect(() => decodePixels('u8:not base64!', where)).toThrow(/not base64/);
    expect(() => decodePixels('AAAA', where, 'adversarials[0].adversarial')).toThrow(/adversarials\[0\]\.adversarial: unknown encoding/);
  });
});

describe('image grids', () => {
  it('take any shape the line gives (RGB here) and prefer images every model gets right', async () => {
    const rgb = (v: number) => Array.from({ length: 2 * 3 * 3 }, (_, i) => (i % 3 === 0 ? v : 0.5));
    const line = (id: string, clean: number) => ({
      id,
      label: 1,
      clean: { 'zoo:mlp': clean },
      shape: [2, 3, 3],
      pixels: rgb(0.2),
      adversarials: [{ attack: 'fgsm:eps=0.1', source: 'zoo:mlp', success: true, linf: 0.1, l2: 0.3, confidence: 0.9, preds: { 'zoo:mlp': 2 }, adversarial: rgb(0.3) }],
    });
    const r = await buildReport(events, { samples: [line('wrong-clean', 0), line('right', 1)], gridImages: 1 });
    expect(r.json.grids.map((g) => g.images.map((i) => i.id))).toEqual([['right']]);
    const png = PNG.sync.read(r.pngs[0]!.data);
    expect(png.width).toBeGreaterThan(0);
    expect(r.html).toContain('width="111" height="74"');
  });
});

describe('attack families by ε', () => {
  it('groups ids that differ only in eps and leaves others out', () => {
    expect(splitEps('pgd:eps=0.3,steps=40')).toEqual({ family: 'pgd:steps=40', eps: 0.3 });
    expect(splitEps('fgsm:eps=0.1')).toEqual({ family: 'fgsm', eps: 0.1 });
    expect(splitEps('worst-case')).toBeUndefined();
    expect(splitEps('cw:steps=100')).toBeUndefined();
    const families = epsFamilies(['fgsm:eps=0.3', 'fgsm:eps=0.1', 'pgd:eps=0.1,steps=10', 'pgd:eps=0.1,steps=40']);
    expect([...families.keys()]).toEqual(['fgsm', 'pgd:steps=10', 'pgd:steps=40']);
    expect(families.get('fgsm')!.map((m) => m.eps)).toEqual([0.1, 0.3]);
  });

  it('groups canonical ids whose step is the same multiple of ε (the pgd and bim default), or the same step', () => {
    const ids = ['pgd:eps=0.1,step=0.05,steps=5', 'pgd:eps=0.2,step=0.1,steps=5', 'bim:eps=0.1,step=0.01', 'bim:eps=0.2,step=0.01', 'pgd:eps=0.3,step=0.05,steps=5'];
    const families = epsFamilies(ids);
    expect([...families.keys()]).toEqual(['pgd:step=0.5·ε,steps=5', 'bim:step=0.01', 'pgd:step=0.05,steps=5']);
    expect(families.get('pgd:step=0.5·ε,steps=5')!.map((m) => m.eps)).toEqual([0.1, 0.2]);
  });
});

describe('detector ROC lines', () => {
  it('draws one ROC chart per attack and lists the AUCs', async () => {
    const roc = [
      { type: 'roc', detector: 'energy', attack: 'fgsm:eps=0.3,loss=ce', points: [{ fpr: 0, tpr: 0 }, { fpr: 0.1, tpr: 0.7 }, { fpr: 1, tpr: 1 }], auc: 0.91 },
      { type: 'roc', detector: 'kd', attack: 'fgsm:eps=0.3,loss=ce', points: [{ fpr: 0, tpr: 0 }, { fpr: 0.3, tpr: 0.6 }, { fpr: 1, tpr: 1 }] },
    ];
    const r = await buildReport([...events, ...roc], { gridImages: 0 });
    expect(r.html).toContain('id="chart-roc-0"');
    expect(r.html).not.toContain('id="chart-roc-1"');
    expect(htmlTable(r.html, 'table-roc').rows).toEqual([
      ['energy', 'fgsm:eps=0.3,loss=ce', '0.910', '3'],
      ['kd', 'fgsm:eps=0.3,loss=ce', '–', '3'],
    ]);
    const e = await caught(buildReport([...events, { type: 'roc', detector: 'x', points: [{ fpr: 2, tpr: 0 }] }]));
    expect(e.message).toMatch(/events, line 8: roc line: points\[0\]\.fpr/);
  });
});

describe('advstream report', () => {
  async function cli(...args: string[]): Promise<void> {
    const program = new Command('advstream').exitOverride();
    registerReport(program);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await program.parseAsync(['node', 'advstream', 'report', ...args]);
    } finally {
      stderr.mockRestore();
    }
  }

  it('writes what its flags name', async () => {
    const out = path.join(dir, 'cli');
    await cli(RUN_FILE, '--samples', SAMPLES_FILE, '--html', path.join(out, 'r.html'), '--md', path.join(out, 'r.md'), '--png-dir', path.join(out, 'png'), '--grid-images', '2');
    expect((await readdir(out)).sort()).toEqual(['png', 'r.html', 'r.md']);
    expect(await readdir(path.join(out, 'png'))).toHaveLength(ATTACKS.length);
    const md = await readFile(path.join(out, 'r.md'), 'utf8');
    expectTablesMatch(final as RunSummary, (_, caption) => markdownTable(md, caption));
  });

  it('asks for an output, and with --strict refuses an interrupted run', async () => {
    expect((await caught(cli(RUN_FILE))).code).toBe('BAD_ARGUMENT');
    const cut = await file('cut-cli.ndjson', ndjson(events.slice(0, -1)));
    const e = await caught(cli(cut, '--strict', '--md', path.join(dir, 'strict.md')));
    expect(e.code).toBe('INCOMPLETE_RUN');
    expect(e.message).toMatch(/line 6/);
  });
});
