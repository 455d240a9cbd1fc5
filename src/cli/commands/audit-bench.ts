import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { Errors } from '../../errors.js';
import {
  auditBench,
  DEFAULT_ADAPTIVE,
  DEFAULT_BENCH_ATTACKS,
  DEFAULT_BENCH_SOURCES,
  DEFAULT_CALIBRATION_DATA,
  DEFAULT_SURROGATE,
  rocLines,
  type AuditBenchResult,
} from '../../../pipelines/index.js';
import { nonNegativeInt, positiveInt } from '../args.js';
import { commandLine, gitCommit } from '../provenance.js';
import { addAuditorFlags, auditorOptions, repeat, sourcesHelp, type AuditorFlags } from './audit.js';

interface BenchFlags extends AuditorFlags {
  out: string;
  roc?: string;
  data?: string;
  limit: string;
  attack?: string[];
  source?: string[];
  surrogate: string;
  adaptive?: string;
  adaptiveDetector: string;
  seed: string;
}

const f3 = (v: number | null | undefined) => (v === null || v === undefined ? '  -  ' : v.toFixed(3));
const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(1)}%`);

/** The result as a table on a terminal: per attack and source, success and each detector's AUC and TPR at 1% FPR. */
export function benchTable(r: AuditBenchResult): string {
  const names = Object.keys(r.detectors);
  const head = ['attack @ source', 'kind', 'success', 'pos', ...names.map((n) => `${n} AUC [95%] · TPR@${pct(r.fpr_targets[0])}`)];
  const rows = r.results.map((p) => [
    `${p.label} @ ${p.source}`,
    p.kind,
    pct(p.attack_success.p),
    String(p.positives),
    ...names.map((n) => {
      const d = p.detectors[n]!;
      return d.auc === null ? '-' : `${f3(d.auc)} [${f3(d.auc_ci![0])},${f3(d.auc_ci![1])}] · ${pct(d.tpr_at_fpr[0]?.tpr)}`;
    }),
  ]);
  const clean = ['clean (held out)', '', '', String(r.clean.n), ...names.map((n) => `flagged ${pct(r.clean.flag_rate[n]!.p)} (fpr ${r.calibration.fpr})`)];
  const all = [head, ...rows, clean];
  const widths = head.map((_, j) => Math.max(...all.map((row) => row[j]!.length)));
  return all.map((row) => row.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd()).join('\n');
}

export function registerAuditBench(program: Command): void {
  addAuditorFlags(
    program
      .command('audit-bench')
      .description('measure the detectors: clean held-out images against adversarials from several attacks, sources, a surrogate and an adaptive attack')
      .option('--out <file>', 'the JSON result', 'audit-bench.json')
      .option('--roc <file>', 'the ROC curves as `roc` NDJSON lines for advstream report (default: OUT with .roc.ndjson)')
      .option('--data <source>', `clean labelled images (default: the calibration data; then only its odd positions, which calibration never uses)`)
      .option('--limit <n>', 'clean images measured', '500')
      .option('--attack <spec>', `an attack spec; repeat (default: ${DEFAULT_BENCH_ATTACKS.join(' ')})`, repeat)
      .option('--source <ref>', `a source model to attack; repeat (default: ${DEFAULT_BENCH_SOURCES.join(' ')})`, repeat)
      .option('--surrogate <ref>', 'a transfer source that no detector uses, or none', DEFAULT_SURROGATE)
      .option(
        '--adaptive <spec>',
        `the adaptive attack, run targeted on the joint classifier of --adaptive-detector's models, or none (default: ${DEFAULT_ADAPTIVE.attack}, when the detectors include ${DEFAULT_ADAPTIVE.detector})`,
      )
      .option('--adaptive-detector <name>', 'the detector the adaptive attack targets', DEFAULT_ADAPTIVE.detector)
      .option('--seed <n>', 'seed of every attack and of the adaptive targets', '0'),
  )
    .addHelpText('after', sourcesHelp)
    .action(async (flags: BenchFlags) => {
      const limit = positiveInt('--limit', flags.limit)!;
      const seed = nonNegativeInt('--seed', flags.seed)!;
      if (!flags.out.trim()) throw Errors.badArgument('--out needs a file');
      const rocFile = flags.roc ?? `${flags.out.replace(/\.json$/i, '')}.roc.ndjson`;
      const options = auditorOptions(flags);
      let bar: cliProgress.SingleBar | undefined;
      const result = await auditBench({
        ...options,
        data: flags.data ?? flags.calibrationData ?? DEFAULT_CALIBRATION_DATA,
        limit,
        ...(flags.attack ? { attacks: flags.attack } : {}),
        ...(flags.source ? { sources: flags.source } : {}),
        surrogate: flags.surrogate === 'none' ? null : flags.surrogate,
        ...(flags.adaptive !== undefined || flags.adaptiveDetector !== DEFAULT_ADAPTIVE.detector
          ? { adaptive: flags.adaptive === 'none' ? null : { attack: flags.adaptive ?? DEFAULT_ADAPTIVE.attack, detector: flags.adaptiveDetector } }
          : {}),
        seed,
        provenance: { command: commandLine(), commit: gitCommit() },
        onProgress: ({ done, total }) => {
          if (!process.stderr.isTTY) return;
          if (!bar) {
            bar = new cliProgress.SingleBar(
              { stream: process.stderr, format: 'audit-bench [{bar}] {value}/{total} tasks · ETA {eta_formatted}', hideCursor: true, clearOnComplete: true },
              cliProgress.Presets.shades_classic,
            );
            bar.start(total, done);
          } else bar.update(done);
        },
      }).finally(() => bar?.stop());
      writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
      writeFileSync(rocFile, rocLines(result).map((l) => `${JSON.stringify(l)}\n`).join(''));
      process.stderr.write(`${benchTable(result)}\n`);
      for (const k of result.skipped) process.stderr.write(`advstream audit-bench: skipped ${k.label} @ ${k.source}: ${k.reason}\n`);
      process.stderr.write(`advstream audit-bench: ${result.results.length} attack × source pairs on ${result.clean.n} clean images in ${result.elapsed_s.toFixed(1)} s; wrote ${flags.out} and ${rocFile}\n`);
    });
}
