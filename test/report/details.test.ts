/**
 * What a reader checks first on a report: the summary by threat model, the masking warnings, the
 * transfer matrix's order, short names for models given as files, the captions of grids and columns.
 */
import { describe, expect, it } from 'vitest';
import { parseAttackSpec } from '../../src/attacks/index.js';
import { transferSpec } from '../../src/report/charts.js';
import { gridHtml } from '../../src/report/html.js';
import { buildReport } from '../../src/report/index.js';
import { shortModelNames } from '../../src/report/model-names.js';
import type { ImageGrid } from '../../src/report/grids.js';
import { wilson } from '../../src/stats/proportion.js';
import { htmlTable, markdownTable } from './helpers.js';

const N = 1000;
const id = (spec: string) => parseAttackSpec(spec).id;
const FGSM3 = id('fgsm:eps=0.3');
const PGD3 = id('pgd:eps=0.3');
const AA3 = id('autoattack:eps=0.3');
const MINEPS = id('mineps:attack=pgd,steps=20');
const ONNX = '/home/someone/models/torch-mlp.onnx';

const ci = (p: number): [number, number] => {
  const { lo, hi } = wilson(Math.round(p * N), N);
  return [lo, hi];
};
const robust = (p: number) => ({ robust_acc: p, ci: ci(p), asr: null, asr_ci: [0, 1], mean_linf: null, median_linf: null, mean_l2: null, median_l2: null, mean_conf_misclassified: null, n: N });
const cell = (err: number) => ({ err, ci: ci(err), n: N });

function events(models: Record<string, Record<string, number>>, extra: Record<string, unknown> = {}, command?: string) {
  const final = {
    type: 'final',
    images: N,
    models: Object.fromEntries(Object.entries(models).map(([m, attacks]) => [m, { clean: { acc: 0.985, ci: ci(0.985), n: N }, attacks: Object.fromEntries(Object.entries(attacks).map(([a, p]) => [a, robust(p)])) }])),
    transfer: {},
    ...extra,
    ...(command && { provenance: { command } }),
  };
  return [{ type: 'start', source: 'mnist:test' }, final];
}

describe('the report summary', () => {
  it('names the lowest robust accuracy per threat model, a minimal-ε curve included (not FGSM\'s 50.4%)', async () => {
    const curve = Array.from({ length: 41 }, (_, i) => ({ eps: i / 40, robust_acc: i <= 11 ? 0.9 : i === 12 ? 0.014 : 0 }));
    const report = await buildReport(events({ 'zoo:maxout-adv': { [FGSM3]: 0.504, [MINEPS]: 0 } }, { curves: { 'zoo:maxout-adv': { [MINEPS]: curve } } }));
    const headline = /<ul class="headline"><li>(.*?)<\/li>/.exec(report.html)![1]!.replace(/<wbr>/g, '');
    expect(headline).toMatch(/^zoo:maxout-adv: clean accuracy 98\.5% \[[\d.]+, [\d.]+\]; L∞ ε = 0\.3: lowest robust accuracy 1\.4% \[0\.8, 2\.3\] \(the curve of (.*) at ε = 0\.3\)$/);
    expect(headline).toContain(`(the curve of ${MINEPS} at ε = 0.3)`);
    expect(report.markdown).toContain('L∞ ε = 0.3: lowest robust accuracy 1.4%');
    expect(report.markdown).not.toMatch(/lowest robust accuracy 50\.4%/);
  });

  it('labels a minimal-ε column by what it shows: accuracy at the end of its curve', async () => {
    const curve = Array.from({ length: 41 }, (_, i) => ({ eps: i / 40, robust_acc: 0 }));
    const report = await buildReport(events({ m: { [MINEPS]: 0 } }, { curves: { m: { [MINEPS]: curve } } }));
    expect(htmlTable(report.html, 'table-accuracy').columns).toContain(`${MINEPS} (at ε = 1, the end of its curve)`);
  });

  it('shows the masking warnings with their codes, in HTML, Markdown and JSON', async () => {
    const report = await buildReport(events({ 'zoo:dam-n20': { [PGD3]: 0.057, [AA3]: 0 } }));
    expect(report.masking.map((w) => w.code)).toEqual(['GRADIENT_ABOVE_AUTOATTACK']);
    expect(report.json.masking).toEqual(report.masking);
    expect(report.html).toMatch(/<div class="masking" id="masking">[\s\S]*GRADIENT_ABOVE_AUTOATTACK: zoo:dam-n20: pgd overstates robustness/);
    expect(report.markdown).toContain('- GRADIENT_ABOVE_AUTOATTACK: zoo:dam-n20: pgd overstates robustness');
    const clean = await buildReport(events({ m: { [PGD3]: 0.01, [AA3]: 0 } }));
    expect(clean.masking).toEqual([]);
    expect(clean.html).toContain('No sign of gradient masking');
  });

  it('takes its title from the run\'s command, else from the file', async () => {
    const cmd = 'advstream eval --data mnist:test --limit 1000';
    expect((await buildReport(events({ m: { [PGD3]: 0.1 } }, {}, cmd), { source: 'runs/x.ndjson' })).json.title).toBe(`Robustness report: ${cmd}`);
    expect((await buildReport(events({ m: { [PGD3]: 0.1 } }), { source: 'runs/x.ndjson' })).json.title).toBe('Robustness report: x.ndjson');
  });
});

describe('the transfer matrix', () => {
  // The ONNX model runs black-box: gradient attacks skip it as a source, so it has no row.
  const transfer = { [FGSM3]: { 'zoo:a': { 'zoo:a': cell(0.4), [ONNX]: cell(0.3), 'zoo:b': cell(0.2) }, 'zoo:b': { 'zoo:a': cell(0.25), [ONNX]: cell(0.35), 'zoo:b': cell(0.5) } } };
  const models = { 'zoo:a': { [FGSM3]: 0.6 }, [ONNX]: {}, 'zoo:b': { [FGSM3]: 0.5 } };

  it('has rows and columns in one order, every model on both, and a footnote for empty cells', async () => {
    const report = await buildReport(events(models, { transfer }));
    const t = htmlTable(report.html, 'table-transfer-0');
    expect(t.columns).toEqual(['Source ↓ target →', 'zoo:a', 'torch-mlp.onnx', 'zoo:b', 'n']);
    expect(t.rows.map((r) => r[0])).toEqual(['zoo:a', 'torch-mlp.onnx', 'zoo:b']);
    expect(t.rows[1]!.slice(1)).toEqual(['–', '–', '–', '–']);
    expect(t.rows[2]![3]).toBe('50.0% [46.9, 53.1]');
    expect(report.html).toMatch(/<p class="table-note" id="table-transfer-0-note">–: no adversarials of this attack were crafted on that source/);
    expect(markdownTable(report.markdown, 'Transfer under').rows.map((r) => r[0])).toEqual(['zoo:a', 'torch-mlp.onnx', 'zoo:b']);
  });

  it('draws its heatmap with one domain on both axes', () => {
    const spec = transferSpec(FGSM3, transfer[FGSM3], ['zoo:a', ONNX, 'zoo:b']) as unknown as { encoding: Record<string, { scale: { domain: string[] } }> };
    expect(spec.encoding.x!.scale.domain).toEqual(['zoo:a', ONNX, 'zoo:b']);
    expect(spec.encoding.y!.scale.domain).toEqual(spec.encoding.x!.scale.domain);
  });
});

describe('model names', () => {
  it('shortens file paths to the file name, with folders only where two clash', () => {
    const names = shortModelNames(['zoo:mlp-relu', 'https://example.org/m/model.json', '/x/a/model.onnx', '/x/b/model.onnx', './torch.onnx']);
    expect([...names.values()]).toEqual(['zoo:mlp-relu', 'https://example.org/m/model.json', 'a/model.onnx', 'b/model.onnx', 'torch.onnx']);
  });

  it('keeps the full id in the models table, beside the name shown', async () => {
    const start = { type: 'start', models: [{ id: ONNX, family: 'onnx' }] };
    const [, final] = events({ [ONNX]: { [id('square:eps=0.3')]: 0.2 } });
    const report = await buildReport([start, final!]);
    const t = htmlTable(report.html, 'table-models');
    expect(t.columns.slice(0, 2)).toEqual(['Model', 'Shown as']);
    expect(t.rows[0]!.slice(0, 2)).toEqual([ONNX, 'torch-mlp.onnx']);
    expect(htmlTable(report.html, 'table-accuracy').rows[0]![0]).toBe('torch-mlp.onnx');
  });
});

describe('image grids', () => {
  const grid = (attack: string): ImageGrid => ({
    attack,
    shape: [2, 2, 1],
    sources: ['zoo:a'],
    models: ['zoo:a'],
    rows: [{ id: '0', label: 1, clean: new Float32Array(4), cleanPreds: { 'zoo:a': 1 }, adversarials: { 'zoo:a': { pixels: new Float32Array(4).fill(0.1), preds: { 'zoo:a': 2 }, success: true, linf: 0.1, l2: 0.2 } } }],
  });

  it('call Square black-box and gradient attacks white-box', () => {
    expect(gridHtml(grid(id('square:eps=0.3')), 0, undefined)).toContain('black-box (from its scores alone, no gradients)');
    expect(gridHtml(grid(PGD3), 0, undefined)).toContain('white-box for that model');
  });

  it('name a PNG only when one is written', () => {
    expect(gridHtml(grid(PGD3), 0, undefined)).not.toContain('Also written as');
    expect(gridHtml(grid(PGD3), 0, 'grids/grid-pgd.png')).toContain('Also written as <code>grids/grid-pgd.png</code>');
  });
});
