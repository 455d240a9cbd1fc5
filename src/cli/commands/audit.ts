import os from 'node:os';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { openRejectFile, openSource, SOURCE_KINDS, type RejectFile, type RejectSink } from '../../data/index.js';
import { detectorNames } from '../../detect/index.js';
import { parseEngineChoice } from '../../engine/build.js';
import { Errors } from '../../errors.js';
import {
  audit,
  DEFAULT_CALIBRATION_DATA,
  DEFAULT_DETECTORS,
  DEFAULT_ALARM_FALSE_RATE,
  DEFAULT_FPR,
  type AlarmOptions,
  type AuditEvent,
  type AuditorOptions,
  type AuditSummaryEvent,
  type CalibrationProgress,
} from '../../../pipelines/index.js';
import { finiteNumber, nonNegativeInt, positiveInt } from '../args.js';
import { commandLine, gitCommit } from '../provenance.js';
import { drainWithSignals } from '../signals.js';
import { lineWriter } from '../output.js';
import { parseStatsEvery } from './eval.js';

/** The flags every command that opens an auditor takes (audit, serve, audit-bench, calibrate). */
export interface AuditorFlags {
  detector?: string[];
  role?: string[];
  model?: string;
  fpr: string;
  calibration?: string;
  calibrationData: string;
  calibrationLimit?: string;
  recalibrate?: boolean;
  workers?: string;
  batch: string;
  backend?: string;
  engine: string;
}

export const repeat = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Adds the detector, calibration and pool flags. */
export function addAuditorFlags(command: Command): Command {
  return command
    .option('--detector <spec>', `a detector spec, e.g. noise-instability:sigma=0.05; repeat for several (default: ${DEFAULT_DETECTORS.join(', ')})`, repeat)
    .option('--role <role=models>', "models for a role the specs leave unnamed: high=zoo:dam-n20+zoo:dam-n30, or order-disagreement.low=zoo:dam-n2; repeat", repeat)
    .option('--model <ref>', 'the audited model (a zoo model, a folder, or an .onnx file): every single-model role the specs and --role leave unnamed (model, low); the DAMs stay the high-order role')
    .option('--fpr <rate>', 'target false-positive rate of each detector and of the combined score', String(DEFAULT_FPR))
    .option('--calibration <file>', 'reuse this calibration if it fits the detectors, models, rate and data; else calibrate and save it here (default: .cache/calibration/<hash>.json)')
    .option('--calibration-data <source>', `clean reference images; only their even positions are used (see docs/audit.md)`, DEFAULT_CALIBRATION_DATA)
    .option('--calibration-limit <n>', 'at most n records per calibration stage')
    .option('--recalibrate', 'calibrate even when the calibration file fits')
    .option('--workers <n>', 'worker threads (default: the number of cores)')
    .option('--batch <n>', 'records per batch', '32')
    .option('--backend <name>', 'force a backend: wasm, cpu, or tensorflow (tfjs-node; runs in the main thread)')
    .option('--engine <name>', 'auto (ONNX Runtime for ONNX files and the exported zoo families, tfjs otherwise), tfjs, or onnx', 'auto');
}

/** `--model REF` fills the single-model roles (`model`, `low`); `--role` entries take precedence. */
function parseRoles(specs: readonly string[] | undefined, model: string | undefined): Record<string, string> | undefined {
  if (!specs?.length && model === undefined) return undefined;
  const roles: Record<string, string> = {};
  if (model !== undefined) {
    if (!model.trim()) throw Errors.badArgument('--model needs a model reference');
    roles.model = model.trim();
    roles.low = model.trim();
  }
  for (const spec of specs ?? []) {
    const at = spec.indexOf('=');
    if (at <= 0 || at === spec.length - 1) throw Errors.badArgument(`--role takes ROLE=MODELS (e.g. high=zoo:dam-n20+zoo:dam-n30), got '${spec}'`);
    roles[spec.slice(0, at).trim()] = spec.slice(at + 1).trim();
  }
  return roles;
}

/** The auditor options of the shared flags, progress on stderr included. */
export function auditorOptions(flags: AuditorFlags): AuditorOptions {
  const fpr = finiteNumber('--fpr', flags.fpr)!;
  if (!(fpr > 0 && fpr < 1)) throw Errors.badArgument(`--fpr must be in (0, 1), got '${flags.fpr}'`);
  const roles = parseRoles(flags.role, flags.model);
  const limit = positiveInt('--calibration-limit', flags.calibrationLimit);
  return {
    ...(flags.detector ? { detectors: flags.detector } : {}),
    ...(roles ? { roles } : {}),
    fpr,
    ...(flags.calibration !== undefined ? { calibration: flags.calibration } : {}),
    calibrationData: flags.calibrationData,
    ...(limit !== undefined ? { calibrationLimit: limit } : {}),
    ...(flags.recalibrate ? { recalibrate: true } : {}),
    workers: positiveInt('--workers', flags.workers) ?? os.availableParallelism(),
    batch: positiveInt('--batch', flags.batch)!,
    ...(flags.backend !== undefined ? { backend: flags.backend } : {}),
    engine: parseEngineChoice(flags.engine),
    onCalibration: calibrationReporter(),
  };
}

/** Calibration news on stderr: a live line on a terminal, a line per phase otherwise. */
export function calibrationReporter(): (e: CalibrationProgress) => void {
  let bar: cliProgress.SingleBar | undefined;
  let announced = false;
  return (e) => {
    switch (e.phase) {
      case 'reused':
        process.stderr.write(`advstream: calibration: reusing ${e.file}\n`);
        break;
      case 'calibrating':
        if (!announced) {
          announced = true;
          process.stderr.write(`advstream: calibrating on ${e.data} (${e.reason})${e.file ? ` → ${e.file}` : ''}\n`);
          if (process.stderr.isTTY) {
            bar = new cliProgress.SingleBar(
              { stream: process.stderr, format: 'calibrating: stage 1 {stage1} · stage 2 {stage2} records', hideCursor: true, clearOnComplete: true },
              cliProgress.Presets.shades_classic,
            );
            bar.start(0, 0, { stage1: 0, stage2: 0 });
          }
        }
        bar?.update(0, { stage1: e.stage1, stage2: e.stage2 });
        break;
      case 'saved':
        bar?.stop();
        process.stderr.write(`advstream: calibration saved to ${e.file} (stage 1: ${e.stage1} records, stage 2: ${e.stage2})\n`);
        break;
    }
  };
}

/** `2s`-style flags aside, the help text's list of sources and detectors. */
export function sourcesHelp(): string {
  const width = Math.max(...SOURCE_KINDS.map((k) => k.form.length));
  return (
    `\nSources:\n${SOURCE_KINDS.map((k) => `  ${k.form.padEnd(width)}  ${k.summary}`).join('\n')}\n` +
    `\nDetectors: ${detectorNames().join(', ')} (see docs/audit.md)\n`
  );
}

const pct = (p: number | null) => (p === null ? '-' : `${(p * 100).toFixed(2)}%`);

function summaryText(e: AuditSummaryEvent): string {
  const parts = Object.entries(e.detectors).map(([k, s]) => `${k} ${pct(s.p)}`);
  return (
    `${e.records} records · flagged ${e.flagged.k} (${pct(e.flagged.p)}, 95% CI ${pct(e.flagged.ci[0])}–${pct(e.flagged.ci[1])}) · ` +
    `${parts.join(' · ')}${e.rejected ? ` · ${e.rejected} rejected` : ''}` +
    (e.records_per_s === null ? '' : ` · ${e.records_per_s.toFixed(1)} records/s`)
  );
}

/** The alarm flags of `audit` and `serve`. */
export interface AlarmFlags {
  alarmMargin?: string;
  alarmFalseRate?: string;
  groupBy?: string;
}

export function addAlarmFlags(command: Command): Command {
  return command
    .option('--alarm-margin <rate>', 'alarm when the flag rate exceeds the calibrated rate by this much (default: the calibrated rate itself, an alarm at twice it; any alarm flag turns alarms on)')
    .option('--alarm-false-rate <rate>', `expected false alarms per clean record, at most (default ${DEFAULT_ALARM_FALSE_RATE})`)
    .option('--group-by <field>', 'test each value of this NDJSON record field on its own (default: the whole stream)');
}

interface AuditFlags extends AuditorFlags, AlarmFlags {
  data: string;
  out?: string;
  flaggedOnly?: boolean;
  limit?: string;
  offset?: string;
  rejects?: string;
  onBadRecord: string;
  statsEvery: string;
}

/** Alarms are on when any of their flags is given. */
export function alarmOptions(flags: AlarmFlags): AlarmOptions | undefined {
  if (flags.alarmMargin === undefined && flags.alarmFalseRate === undefined && flags.groupBy === undefined) return undefined;
  const margin = finiteNumber('--alarm-margin', flags.alarmMargin);
  const falseAlarmRate = finiteNumber('--alarm-false-rate', flags.alarmFalseRate);
  if (margin !== undefined && !(margin > 0 && margin < 1)) throw Errors.badArgument(`--alarm-margin must be in (0, 1), got '${flags.alarmMargin}'`);
  if (falseAlarmRate !== undefined && !(falseAlarmRate > 0 && falseAlarmRate < 1)) {
    throw Errors.badArgument(`--alarm-false-rate must be in (0, 1), got '${flags.alarmFalseRate}'`);
  }
  if (flags.groupBy !== undefined && !flags.groupBy.trim()) throw Errors.badArgument('--group-by needs a field name');
  return {
    ...(margin !== undefined && { margin }),
    ...(falseAlarmRate !== undefined && { falseAlarmRate }),
    ...(flags.groupBy !== undefined && { groupBy: flags.groupBy.trim() }),
  };
}

export function registerAudit(program: Command): void {
  addAlarmFlags(addAuditorFlags(
    program
      .command('audit')
      .description('audit images for adversarial perturbations: one NDJSON verdict per record (scores, flags, predictions, evidence) and periodic summaries')
      .requiredOption('--data <source>', 'the images: a source URI (see below)'),
  ))
    .option('--out <file>', 'NDJSON verdict and summary lines (default: stdout)')
    .option('--flagged-only', 'write only the verdicts of flagged records (summaries still)')
    .option('--limit <n>', 'audit at most n records')
    .option('--offset <n>', 'skip the first n records')
    .option('--rejects <file>', 'write each unreadable record to FILE as a JSON line')
    .option('--on-bad-record <policy>', 'skip (count an unreadable record, go on) or fail (stop at the first)', 'skip')
    .option('--stats-every <when>', 'a summary line every time span (2s) or batch count (10batches)', '2s')
    .addHelpText('after', sourcesHelp)
    .action(async (flags: AuditFlags) => {
      const onBadRecord = flags.onBadRecord;
      if (onBadRecord !== 'fail' && onBadRecord !== 'skip') throw Errors.badArgument(`--on-bad-record must be fail or skip, got '${onBadRecord}'`);
      const statsEvery = parseStatsEvery(flags.statsEvery);
      const limit = nonNegativeInt('--limit', flags.limit);
      const offset = nonNegativeInt('--offset', flags.offset);
      const options = auditorOptions(flags);
      const alarms = alarmOptions(flags);
      // The source URI is checked before FILE is created; rejects reach FILE through `sink`.
      openSource(flags.data);
      let rejectFile: RejectFile | undefined;
      const sink: RejectSink = { write: (reject) => rejectFile?.write(reject) };
      if (flags.rejects !== undefined) rejectFile = await openRejectFile(flags.rejects);
      const out = lineWriter(flags.out);
      const stop = new AbortController();
      let final: AuditSummaryEvent | undefined;
      let bar: cliProgress.SingleBar | undefined;
      let alarmCount = 0;

      const events = audit(
        { uri: flags.data, ...(limit !== undefined && { limit }), ...(offset !== undefined && { offset }) },
        {
          ...options,
          statsEvery,
          stop: stop.signal,
          onBadRecord,
          ...(flags.rejects !== undefined && { rejects: sink }),
          provenance: { command: commandLine(), commit: gitCommit() },
          ...(alarms && { alarms }),
        },
      );
      const handle = (e: AuditEvent) => {
        switch (e.type) {
          case 'start':
            out.write(e);
            process.stderr.write(
              `advstream audit: ${e.detectors.length} detector(s)${e.combined ? ' + combined' : ''} at fpr ${e.fpr} on ${e.source}, ` +
                `backend ${e.backend}${e.simd ? ' (SIMD)' : ''}, engine ${e.engine}, ${e.mode === 'pool' ? `${e.workers} worker(s)` : 'main thread'}\n`,
            );
            if (process.stderr.isTTY) {
              bar = new cliProgress.SingleBar({ stream: process.stderr, format: '{line}', hideCursor: true }, cliProgress.Presets.shades_classic);
              bar.start(0, 0, { line: 'auditing…' });
            }
            break;
          case 'verdict':
            if (!flags.flaggedOnly || e.flagged) out.write(e);
            break;
          case 'summary':
            out.write(e);
            bar?.update(0, { line: summaryText(e) });
            if (e.final) final = e;
            break;
          case 'alarm':
            out.write(e);
            alarmCount++;
            process.stderr.write(
              `advstream audit: alarm${e.group_by ? ` ${e.group_by}=${e.overflow ? '(overflow)' : String(e.group)}` : ''}: ` +
                `${e.window.flagged}/${e.window.records} flagged (${pct(e.window.rate)}) over ${e.window.first_id}…${e.window.last_id}, clean rate p0 ${pct(e.p0)}\n`,
            );
            break;
        }
      };

      let interrupted: NodeJS.Signals | undefined;
      try {
        interrupted = await drainWithSignals(events, handle, { stop, stopping: 'auditing the records already read', lost: 'no final summary' });
      } finally {
        bar?.stop();
        out.close();
        await rejectFile?.close();
      }
      if (final) process.stderr.write(`advstream audit: ${summaryText(final)}${alarms ? ` · ${alarmCount} alarm(s)` : ''}\n`);
      if (interrupted) process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
    });
}
