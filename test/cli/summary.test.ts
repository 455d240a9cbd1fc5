import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { attackNames, getAttackEntry, parseAttackSpec } from '../../src/attacks/index.js';
import { attacksHelp } from '../../src/cli/help.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { duration, etaText, finalSummaryLines, headerLines, LEGEND, withInterval, type FinalLike } from '../../src/cli/summary.js';
import { wilson } from '../../src/stats/proportion.js';

const N = 1000;
const PGD = parseAttackSpec('pgd:eps=0.3').id;
const FGSM = parseAttackSpec('fgsm:eps=0.1').id;
const AA = parseAttackSpec('autoattack:eps=0.3').id;
const ci = (p: number): [number, number] => {
  const { lo, hi } = wilson(Math.round(p * N), N);
  return [lo, hi];
};
const robust = (p: number) => ({ robust_acc: p, ci: ci(p), asr: null, asr_ci: [0, 1] as [number, number], mean_linf: null, median_linf: null, mean_l2: null, median_l2: null, mean_conf_misclassified: null, n: N });

function final(models: Record<string, Record<string, number>>, extra: Partial<FinalLike> = {}): FinalLike {
  return {
    images: N,
    models: Object.fromEntries(Object.entries(models).map(([m, a]) => [m, { clean: { acc: 0.97, ci: ci(0.97), n: N }, attacks: Object.fromEntries(Object.entries(a).map(([k, p]) => [k, robust(p)])) }])),
    transfer: {},
    stop_reason: 'end',
    throughput: { images_per_s: 23.7, elapsed_s: 42.2 },
    ...extra,
  };
}

describe('the terminal summary', () => {
  it('writes intervals as intervals, never ±', () => {
    expect(withInterval(0, [0, 0.0038])).toBe('0.0% [0.0, 0.4]');
    expect(withInterval(null, [0, 1])).toBe('–');
  });

  it('gives per model its clean accuracy and the worst robust accuracy per threat model, with the attack', () => {
    const lines = finalSummaryLines(final({ 'zoo:dam-n20': { [FGSM]: 0.754, [PGD]: 0.057, [AA]: 0 }, 'zoo:mlp-relu': { [FGSM]: 0.2, [PGD]: 0, [AA]: 0 } }), { out: 'run.ndjson', stdoutIsTerminal: true });
    expect(lines[0]).toBe('Done: 1,000 images in 42s (24 images/s).');
    const rows = lines.slice(1, 6);
    expect(rows[0]).toMatch(/^ {2}model\s+clean\s+threat model\s+worst robust accuracy\s+by$/);
    expect(rows[1]).toMatch(/^ {2}zoo:dam-n20\s+97\.0% \[[\d.]+, [\d.]+\]\s+L∞ ε = 0\.1\s+75\.4% \[72\.6, 78\.0\]\s+fgsm$/);
    expect(rows[2]).toMatch(/^\s+L∞ ε = 0\.3\s+0\.0% \[0\.0, 0\.4\]\s+autoattack$/);
    expect(rows[4]).toMatch(/^\s+L∞ ε = 0\.3\s+0\.0% \[0\.0, 0\.4\]\s+pgd, autoattack$/);
    expect(lines.join('\n')).not.toContain('±');
  });

  it('lists the masking warnings with their codes', () => {
    const lines = finalSummaryLines(final({ 'zoo:dam-n20': { [PGD]: 0.057, [AA]: 0 } }), { out: 'run.ndjson', stdoutIsTerminal: true });
    expect(lines).toContain('Warnings (1): these figures may overstate robustness');
    expect(lines.find((l) => l.startsWith('  [GRADIENT_ABOVE_AUTOATTACK] zoo:dam-n20: pgd overstates robustness'))).toBeDefined();
    const told = finalSummaryLines(final({ m: { [PGD]: 0.1 } }, { warnings: [{ code: 'EPS_ABOVE_RANGE', message: 'pgd:eps=3: …' }] }), { stdoutIsTerminal: false });
    expect(told).toContain('  [EPS_ABOVE_RANGE] pgd:eps=3: …');
  });

  it('says where the results went, and how to keep them when they went nowhere', () => {
    const f = final({ m: { [PGD]: 0.1 } });
    expect(finalSummaryLines(f, { out: 'run.ndjson', html: 'report.html', stdoutIsTerminal: true }).at(-1)).toBe('Results: NDJSON run.ndjson, report report.html.');
    expect(finalSummaryLines(f, { stdoutIsTerminal: false }).at(-1)).toBe('Results: NDJSON on stdout.');
    expect(finalSummaryLines(f, { stdoutIsTerminal: true }).at(-1)).toMatch(/^These results were not saved\. To keep them, run again with --out run\.ndjson .* and --html report\.html/);
  });

  it('shows a model given as a file by its file name', () => {
    const lines = finalSummaryLines(final({ '/home/me/models/torch-mlp.onnx': { [PGD]: 0.3 } }), { out: 'r', stdoutIsTerminal: true });
    expect(lines[2]).toMatch(/^ {2}torch-mlp\.onnx /);
  });

  it('says when the run stopped early', () => {
    expect(finalSummaryLines(final({ m: { [PGD]: 0.1 } }, { stop_reason: 'stopped' }), { stdoutIsTerminal: false })[0]).toContain('stopped early (stopped)');
  });
});

describe('the header, the legend and the ETA', () => {
  it('names data, models, attacks, backend, engine and workers before anything loads', () => {
    const lines = headerLines({ data: 'mnist:test', limit: 1000, models: ['zoo:dam-n2', 'zoo:dam-n20'], attacks: [FGSM, PGD], backend: 'wasm', engine: 'auto', workers: 2 });
    expect(lines).toEqual([
      'advstream eval: mnist:test, first 1,000 images',
      '  models   zoo:dam-n2, zoo:dam-n20',
      `  attacks  ${FGSM}, ${PGD}`,
      '  backend wasm · engine auto · 2 workers',
      'loading models and starting workers…',
    ]);
  });

  it('has a legend for every kind of column', () => {
    expect(LEGEND.join(' ')).toMatch(/clean:.*robust accuracy.*worst.*95% interval/);
  });

  it('gives the ETA as a time of day and a duration', () => {
    const now = new Date(2026, 11, 2, 16, 50, 0);
    expect(etaText(250, 1000, 60, now)).toBe('ETA 16:53:00 (in 3m 00s)');
    expect(etaText(0, 1000, 5, now)).toBe('ETA –');
    expect(etaText(10, null, 5, now)).toBe('ETA –');
    expect(duration(3725)).toBe('1h 02m');
  });
});

describe('eval --help', () => {
  it('lists every registered attack with its summary', () => {
    const text = attacksHelp();
    for (const name of attackNames()) expect(text).toMatch(new RegExp(`^ {2}${name} +${getAttackEntry(name)!.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  });

  it('is what the built CLI prints', () => {
    const help = spawnSync(process.execPath, [path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js'), 'eval', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain(attacksHelp());
  });
});
