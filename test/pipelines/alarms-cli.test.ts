/**
 * `advstream audit --group-by` end to end, through the compiled CLI (run `npx tsc -p .` first;
 * `npm test` does), on the small test models: a group of noise images alarms, the clean group does not.
 */
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/attacks/index.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { calibratedUpperRate } from '../../pipelines/index.js';
import { auditDetectors, auditModels, jsonRecord, mnistRecords } from './audit-helpers.js';
import { runCli, ndjsonLines, scratchDir } from './helpers.js';

const MAIN = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

let dir: string;
let input: string;
let flags: string[];

const cli = (args: string[]) => runCli(args, dir);

const lines = ndjsonLines;

beforeAll(async () => {
  expect(existsSync(MAIN), `${MAIN} is not built: run npx tsc -p .`).toBe(true);
  dir = await scratchDir('alarms-cli');
  const m = await auditModels();
  const rng = new Rng(18);
  const good = (await mnistRecords((p) => p % 2 === 1, 30)).map((r) => JSON.stringify({ ...jsonRecord(r), source: 'camera' }));
  const noise = Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: `noise-${i}`, pixels: Array.from(rng.uniforms(784)), source: 'upload' }));
  // Interleaved, so the groups' windows are not contiguous in the stream.
  const mixed = good.flatMap((g, i) => (i % 3 === 0 && noise[i / 3] ? [g, noise[i / 3]!] : [g]));
  input = path.join(dir, 'in.ndjson');
  await writeFile(input, mixed.join('\n') + '\n');
  flags = [
    ...auditDetectors(m).flatMap((d) => ['--detector', d]),
    ...['--fpr', '0.05', '--calibration', path.join(dir, 'calibration.json'), '--calibration-limit', '300', '--workers', '2'],
  ];
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('advstream audit --group-by', () => {
  it('raises an alarm line for the group of noise images, none for the clean one, and keeps the field in the verdicts', async () => {
    const run = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--group-by', 'source', '--alarm-margin', '0.3', '--alarm-false-rate', '0.01', '--batch', '8']);
    expect(run.code, run.stderr).toBe(0);
    const out = lines(run.stdout);
    const verdicts = out.filter((l) => l.type === 'verdict');
    expect(verdicts).toHaveLength(40);
    expect(verdicts.find((v) => v.id === 'noise-0')).toMatchObject({ meta: { source: 'upload' } });
    const noisyFlags = verdicts.filter((v) => String(v.id).startsWith('noise-') && v.flagged).length;
    // The test's premise: the detectors flag most noise images.
    expect(noisyFlags).toBeGreaterThanOrEqual(5);
    const alarms = out.filter((l) => l.type === 'alarm');
    const start = out[0] as { type: string; calibration: { n: Record<string, number> } };
    const p0 = calibratedUpperRate(0.05, start.calibration.n.combined);
    expect(p0).toBeGreaterThan(0.05);
    expect(alarms.length).toBeGreaterThanOrEqual(1);
    for (const a of alarms) {
      expect(a).toMatchObject({ group_by: 'source', group: 'upload', overflow: false, p0, false_alarm_rate: 0.01 });
      expect(a.p1).toBeCloseTo(p0 + 0.3, 12);
      const w = a.window as { first_id: string; last_id: string; records: number; flagged: number; rate: number; ci: [number, number] };
      expect(w.first_id).toMatch(/^noise-/);
      expect(w.last_id).toMatch(/^noise-/);
      expect(w.ci[0]).toBeLessThanOrEqual(w.rate);
      expect(w.ci[1]).toBeGreaterThanOrEqual(w.rate);
      // The alarm line follows the verdict of its window's last record.
      const at = out.indexOf(a);
      expect(out[at - 1]).toMatchObject({ type: 'verdict', id: w.last_id });
    }
    expect(run.stderr).toMatch(/alarm source=upload: \d+\/\d+ flagged/);
    expect(run.stderr).toMatch(/\d+ alarm\(s\)/);
  });

  it('writes no alarm lines without an alarm flag, and rejects a bad one', async () => {
    const plain = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--limit', '10']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(lines(plain.stdout).some((l) => l.type === 'alarm')).toBe(false);
    const bad = await cli(['audit', '--data', `ndjson:${input}`, ...flags, '--alarm-false-rate', '2']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--alarm-false-rate must be in \(0, 1\)/);
  });
});
