/**
 * The dataset-level alarms' detection delay and false-alarm rate (a benchmark, not a test).
 *
 *   node dist/bench/alarms.js [--audit-bench FILE] [--margin M] [--false-rate A] [--runs N] [--out FILE]
 *
 * Flags are simulated, record by record, as Bernoulli draws: a clean record is flagged at the
 * detector's clean flag rate, an adversarial one at its true-positive rate at the calibrated
 * threshold. With `--audit-bench FILE` (the JSON of `advstream audit-bench`) both rates are the
 * measured ones of the combined detector (`clean.flag_rate.combined`, and each row's
 * `detectors.combined.calibrated.tpr`) and p0 is the calibrated rate; without it, p0 = 0.01 and the
 * TPRs are assumed (0.25, 0.5, 0.9), which is said in the output.
 *
 * Delay: a stream of 1,000 clean records (the test in its clean steady state), then records
 * contaminated at rate c (each adversarial with probability c); the delay is the records from the
 * change until the first alarm. A run whose alarm comes before the change is counted as early (a
 * false alarm) and left out of the delays. A cell whose flag rate is below the test's detectable
 * rate is not simulated: its statistic drifts down, so it never alarms (reported as such).
 * False alarms: clean-only streams of 100,000 records flagged at p0 (the bound's premise, with
 * equality) and at the measured clean rate, at the stated α and at α = 1e-3 (where the bound is not
 * vacuous at this length), alarms per record against α.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { seededRandom } from '../pipelines/train.js';
import { BernoulliCusum } from '../src/stats/index.js';
import { calibratedUpperRate, defaultMargin, DEFAULT_ALARM_FALSE_RATE } from '../pipelines/alarms.js';
import type { AuditBenchResult } from '../pipelines/audit-bench.js';
import { PACKAGE_ROOT } from '../src/paths.js';

const CONTAMINATION = [0.01, 0.05, 0.2];
const WARMUP = 1000;
const HORIZON = 1_000_000;
const CLEAN_STREAM = 100_000;

const { values } = parseArgs({
  options: {
    'audit-bench': { type: 'string' },
    margin: { type: 'string' },
    'false-rate': { type: 'string' },
    runs: { type: 'string', default: '200' },
    out: { type: 'string', default: path.join(PACKAGE_ROOT, 'bench', 'results', 'alarms.json') },
  },
});

interface Row {
  label: string;
  tpr: number;
}

let p0 = 0.01;
let calibrationN: number | null = null;
let cleanRate = 0.01;
let rows: Row[] = [0.25, 0.5, 0.9].map((tpr) => ({ label: `assumed TPR ${tpr}`, tpr }));
let rates = 'assumed: clean flag rate = p0 = 0.01; TPRs 0.25, 0.5, 0.9';
if (values['audit-bench']) {
  const bench = JSON.parse(await readFile(values['audit-bench'], 'utf8')) as AuditBenchResult;
  // p0 as the audit sets it: the calibrated rate's upper bound given the calibration's size.
  let n: number | undefined;
  if (bench.calibration.file) {
    try {
      n = (JSON.parse(await readFile(bench.calibration.file, 'utf8')) as { combined?: { n?: number } }).combined?.n;
    } catch {
      n = undefined;
    }
  }
  p0 = calibratedUpperRate(bench.calibration.fpr, n);
  calibrationN = n ?? null;
  cleanRate = bench.clean.flag_rate.combined?.p ?? p0;
  rows = bench.results.flatMap((r) => {
    const tpr = r.detectors.combined?.calibrated.tpr;
    return tpr === null || tpr === undefined ? [] : [{ label: `${r.label} @ ${r.source}`, tpr }];
  });
  rates =
    `measured (${values['audit-bench']}): combined detector, clean flag rate ${cleanRate} on ${bench.clean.n} held-out images, TPR at the calibrated threshold per row; ` +
    `p0 ${p0.toFixed(4)} from fpr ${bench.calibration.fpr} and ${n === undefined ? 'no calibration size (the calibration file is gone)' : `a calibration of ${n} records`}`;
}
const margin = values.margin !== undefined ? Number(values.margin) : defaultMargin(p0);
const alpha = values['false-rate'] !== undefined ? Number(values['false-rate']) : DEFAULT_ALARM_FALSE_RATE;
const runs = Number(values.runs);
const settings = { p0, margin, falseAlarmRate: alpha };
const probe = new BernoulliCusum(settings);

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One run: clean warm-up, then contamination; the delay after the change, 'early', or 'none'. */
function delayOf(flagRate: number, seed: number): number | 'early' | 'none' {
  const rand = seededRandom(seed);
  const test = new BernoulliCusum(settings);
  for (let i = 0; i < WARMUP; i++) if (test.add(String(i), rand() < cleanRate)) return 'early';
  for (let i = 1; i <= HORIZON; i++) if (test.add(String(WARMUP + i), rand() < flagRate)) return i;
  return 'none';
}

const t0 = performance.now();
const delays = rows.flatMap((row, ri) =>
  CONTAMINATION.map((c, ci) => {
    const flagRate = (1 - c) * cleanRate + c * row.tpr;
    const cell = { row: row.label, tpr: row.tpr, contamination: c, flag_rate: flagRate };
    if (flagRate <= probe.detectableRate) return { ...cell, detectable: false, runs: 0, early: 0, undetected: 0, median: null, p90: null, mean: null };
    const got: number[] = [];
    let early = 0;
    let undetected = 0;
    for (let r = 0; r < runs; r++) {
      // Seeds differ per cell: two cells of one flag rate are two samples, not one stream twice.
      const d = delayOf(flagRate, 1 + r + runs * (ri * CONTAMINATION.length + ci));
      if (d === 'early') early++;
      else if (d === 'none') undetected++;
      else got.push(d);
    }
    got.sort((a, b) => a - b);
    const mean = got.length ? got.reduce((a, b) => a + b, 0) / got.length : null;
    return { ...cell, detectable: true, runs, early, undetected, median: quantile(got, 0.5), p90: quantile(got, 0.9), mean };
  }),
);

/** Clean-only streams flagged at `rate`: at p0 the bound's premise holds with equality; at the measured rate, as deployed. */
function falseAlarms(a: number, rate: number, streams: number) {
  let alarms = 0;
  for (let s = 0; s < streams; s++) {
    const rand = seededRandom(10_000 + s);
    const test = new BernoulliCusum({ ...settings, falseAlarmRate: a });
    for (let i = 0; i < CLEAN_STREAM; i++) if (test.add(String(i), rand() < rate)) alarms++;
  }
  const records = streams * CLEAN_STREAM;
  return { stated_rate: a, flag_rate: rate, streams, records_per_stream: CLEAN_STREAM, records, alarms, rate: alarms / records, bound_alarms: a * records };
}
const clean = [falseAlarms(alpha, p0, 20), falseAlarms(1e-3, p0, 20), ...(cleanRate !== p0 ? [falseAlarms(alpha, cleanRate, 20), falseAlarms(1e-3, cleanRate, 20)] : [])];

const doc = {
  type: 'alarms-bench',
  date: new Date().toISOString(),
  test: { kind: 'bernoulli-cusum', calibration_n: calibrationN, p0, p1: probe.p1, margin, false_alarm_rate: alpha, threshold: probe.threshold, detectable_rate: probe.detectableRate },
  rates,
  clean_flag_rate: cleanRate,
  warmup: WARMUP,
  horizon: HORIZON,
  delays,
  clean,
  elapsed_s: (performance.now() - t0) / 1000,
};
await mkdir(path.dirname(values.out!), { recursive: true });
await writeFile(values.out!, `${JSON.stringify(doc, null, 2)}\n`);

const fmt = (x: number | null) => (x === null ? '-' : String(Math.round(x)));
process.stderr.write(`alarms: CUSUM p0 ${p0}, p1 ${probe.p1.toFixed(4)}, α ${alpha} per record (h = ${probe.threshold.toFixed(2)}), detectable above ${probe.detectableRate.toFixed(4)}\n`);
process.stderr.write(`rates: ${rates}\n`);
process.stderr.write(`${'row'.padEnd(36)} ${'contam.'.padStart(7)} ${'flag rate'.padStart(9)} ${'median'.padStart(7)} ${'p90'.padStart(7)} ${'mean'.padStart(7)}  early/undetected of runs\n`);
for (const d of delays) {
  const tail = d.detectable ? `${d.early}/${d.undetected} of ${d.runs}` : 'below the detectable rate: never alarms';
  process.stderr.write(
    `${d.row.padEnd(36)} ${`${(d.contamination * 100).toFixed(0)}%`.padStart(7)} ${d.flag_rate.toFixed(4).padStart(9)} ${fmt(d.median).padStart(7)} ${fmt(d.p90).padStart(7)} ${fmt(d.mean).padStart(7)}  ${tail}\n`,
  );
}
for (const c of clean) {
  process.stderr.write(
    `clean only, flagged at ${c.flag_rate.toFixed(4)}: ${c.alarms} alarms in ${c.records} records (${c.streams} × ${c.records_per_stream}) at α ${c.stated_rate}: ` +
      `rate ${c.rate.toExponential(2)}, bound ${c.bound_alarms.toFixed(1)} alarms\n`,
  );
}
process.stderr.write(`(${doc.elapsed_s.toFixed(1)} s; wrote ${values.out})\n`);
