/**
 * `npm run bench`: throughput benchmarks, never tests. Results go to stdout as one JSON document and
 * to `--out FILE` (default `bench/results/latest.json`, git-ignored). Figures that compare hosts are
 * ratios measured in one run: this machine is shared and noisy.
 *
 *   npm run bench -- [--only NAME[,NAME]] [--out FILE] [--images N]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCHMARKS } from './benchmarks.js';
import { PACKAGE_ROOT } from '../src/paths.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    out: { type: 'string', default: path.join(PACKAGE_ROOT, 'bench', 'results', 'latest.json') },
    images: { type: 'string' },
  },
});

const images = values.images === undefined ? undefined : Number(values.images);
if (images !== undefined && !(Number.isSafeInteger(images) && images > 0)) {
  process.stderr.write(`--images must be a positive integer, got ${values.images}\n`);
  process.exit(2);
}

const only = values.only?.split(',').map((s) => s.trim());
const unknown = only?.filter((n) => !BENCHMARKS.some((b) => b.name === n)) ?? [];
if (unknown.length) {
  process.stderr.write(`unknown benchmarks: ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}\n`);
  process.exit(2);
}

const results: Record<string, unknown> = {};
for (const bench of BENCHMARKS) {
  if (only && !only.includes(bench.name)) continue;
  process.stderr.write(`bench ${bench.name}: ${bench.summary}\n`);
  const t0 = performance.now();
  results[bench.name] = await bench.run((line) => process.stderr.write(`  ${line}\n`), images === undefined ? {} : { images });
  process.stderr.write(`  (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}

const doc = {
  date: new Date().toISOString(),
  host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  results,
};
await mkdir(path.dirname(values.out!), { recursive: true });
await writeFile(values.out!, `${JSON.stringify(doc, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
