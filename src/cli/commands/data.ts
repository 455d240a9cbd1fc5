import type { Command } from 'commander';
import { Errors } from '../../errors.js';
import {
  SOURCE_KINDS,
  formatShape,
  inspectSource,
  openRejectFile,
  openSource,
  type OnBadRecord,
  type RejectFile,
  type RejectSink,
  type SourceSummary,
} from '../../data/index.js';
import { nonNegativeInt } from '../args.js';
import { writeJson } from '../output.js';

interface InspectFlags {
  json?: boolean;
  limit?: string;
  offset?: string;
  onBadRecord: string;
  rejects?: string;
}

function badRecordPolicy(text: string): OnBadRecord {
  if (text !== 'fail' && text !== 'skip') throw Errors.badArgument(`--on-bad-record must be fail or skip, got '${text}'`);
  return text;
}

function printSummary(s: SourceSummary): void {
  const labels = Object.entries(s.labels).map(([label, n]) => `${label}:${n}`).join(' ');
  const lines = [
    `source:    ${s.source}`,
    `records:   ${s.count}${s.skipped ? ` (after skipping ${s.skipped})` : ''}`,
    `shape:     ${s.shape ? formatShape(s.shape) : '-'}`,
    `range:     ${s.min === null ? '-' : `[${s.min}, ${s.max}]`}`,
    `labels:    ${labels || '-'}`,
    `unlabeled: ${s.unlabeled}`,
    `rejected:  ${s.rejected}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function sourcesHelp(): string {
  const width = Math.max(...SOURCE_KINDS.map((k) => k.form.length));
  return `\nSources:\n${SOURCE_KINDS.map((k) => `  ${k.form.padEnd(width)}  ${k.summary}`).join('\n')}\n`;
}

export function registerData(program: Command): void {
  const data = program.command('data').description('read and check data sources');
  data
    .command('inspect')
    .description('read a source once: count, shape, value range, label histogram, rejected records')
    .argument('<source>', 'a source URI (see below)')
    .option('--json', 'print one JSON object')
    .option('--limit <n>', 'read at most n good records')
    .option('--offset <n>', 'skip the first n good records')
    .option('--on-bad-record <policy>', 'fail (stop at the first bad record) or skip (count it, go on)', 'fail')
    .option('--rejects <file>', 'write each rejected record to FILE as a JSON line')
    .addHelpText('after', sourcesHelp)
    .action(async (uri: string, flags: InspectFlags) => {
      const limit = nonNegativeInt('--limit', flags.limit);
      const offset = nonNegativeInt('--offset', flags.offset);
      const onBadRecord = badRecordPolicy(flags.onBadRecord);
      // The source is opened (and its URI checked) before FILE is created; rejects reach FILE through `sink`.
      let file: RejectFile | undefined;
      const sink: RejectSink = { write: (reject) => file?.write(reject) };
      const source = openSource(uri, { limit, offset, onBadRecord, ...(flags.rejects !== undefined && { rejects: sink }) });
      if (flags.rejects !== undefined) file = await openRejectFile(flags.rejects);
      let summary: SourceSummary;
      try {
        summary = await inspectSource(source);
      } finally {
        await file?.close();
      }
      if (flags.json) writeJson(summary);
      else printSummary(summary);
    });
}
