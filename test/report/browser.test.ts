/**
 * A real browser opens the HTML report: Debian's chromium (provided by the suite's global set-up, test/setup/system-packages.ts) driven by
 * playwright-core, every network request refused, so the page must carry everything it shows.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { buildReport } from '../../src/report/index.js';
import { fixtureEvents } from './helpers.js';
import { RUN_FILE, SAMPLES_FILE } from './make-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'report');
const HTML = path.join(ARTIFACTS, 'report.html');
const SCREENSHOT = path.join(ARTIFACTS, 'report.png');

const ROC = [
  { type: 'roc', detector: 'energy', attack: 'fgsm:eps=0.3,loss=ce', auc: 0.912, points: [{ fpr: 0, tpr: 0 }, { fpr: 0.05, tpr: 0.55 }, { fpr: 0.2, tpr: 0.85 }, { fpr: 1, tpr: 1 }] },
  { type: 'roc', detector: 'kernel-density', attack: 'fgsm:eps=0.3,loss=ce', auc: 0.774, points: [{ fpr: 0, tpr: 0 }, { fpr: 0.1, tpr: 0.4 }, { fpr: 0.4, tpr: 0.8 }, { fpr: 1, tpr: 1 }] },
];

let context: BrowserContext;
let userData: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the report's browser test needs Debian's chromium; run it through vitest, whose global set-up installs it or names the command (test/setup/system-packages.ts)`);
  }
  userData = await mkdtemp(path.join(tmpdir(), 'advstream-chromium-'));
  context = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
});

afterAll(async () => {
  await context?.close();
  if (userData) await rm(userData, { recursive: true, force: true });
});

describe('the HTML report in chromium', () => {
  it('renders every chart and image, offline, without console errors', async () => {
    const samples = readFileSync(SAMPLES_FILE, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    const report = await buildReport([...fixtureEvents(), ...ROC], { source: RUN_FILE, samples });
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(HTML, report.html);
    const url = pathToFileURL(HTML).href;

    const refused: string[] = [];
    await context.route('**/*', (route) => {
      if (route.request().url() === url) return route.continue();
      refused.push(route.request().url());
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => {
      if (!r.url().startsWith('data:')) refused.push(r.url());
    });
    await page.goto(url, { waitUntil: 'load' });

    const charts = await page.$$eval('figure.chart svg', (svgs) =>
      svgs.map((svg) => {
        const box = svg.getBoundingClientRect();
        return { id: svg.closest('figure')!.id, width: box.width, height: box.height, marks: svg.querySelectorAll('path, rect, line').length };
      }),
    );
    expect(charts.map((c) => c.id)).toEqual(expect.arrayContaining(['chart-accuracy', 'chart-eps-0', 'chart-eps-1', 'chart-transfer-0', 'chart-roc-0', 'chart-throughput']));
    for (const c of charts) {
      expect(c.width, c.id).toBeGreaterThan(100);
      expect(c.height, c.id).toBeGreaterThan(50);
      expect(c.marks, c.id).toBeGreaterThan(3);
    }

    const images = await page.$$eval('img', (imgs) =>
      imgs.map((img) => {
        const box = img.getBoundingClientRect();
        return { alt: img.alt, complete: img.complete, natural: img.naturalWidth, width: box.width, height: box.height };
      }),
    );
    expect(images.length).toBe(report.json.grids.reduce((n, g) => n + g.images.length * (1 + 2 * g.sources.length), 0));
    for (const i of images) {
      expect(i.complete && i.natural > 0, `${i.alt} decoded`).toBe(true);
      expect(i.width, i.alt).toBeGreaterThan(0);
      expect(i.height, i.alt).toBeGreaterThan(0);
    }

    const title = await page.title();
    // The title is the command that made the run (the fixture's provenance), not the file's name.
    expect(title).toMatch(/^Robustness report: advstream eval mnist:test --limit 30 .* --out run\.ndjson$/);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    expect(refused).toEqual([]);
    await page.close();
  });
});
