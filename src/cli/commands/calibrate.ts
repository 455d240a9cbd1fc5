import type { Command } from 'commander';
import { Errors } from '../../errors.js';
import { openAuditor } from '../../../pipelines/index.js';
import { addAuditorFlags, auditorOptions, sourcesHelp, type AuditorFlags } from './audit.js';

export function registerCalibrate(program: Command): void {
  addAuditorFlags(
    program
      .command('calibrate')
      .description('calibrate the audit detectors on clean images and save the thresholds (what audit, serve and audit-bench reuse)'),
  )
    .addHelpText('after', sourcesHelp)
    .action(async (flags: AuditorFlags) => {
      if (flags.calibration === undefined) throw Errors.badArgument('calibrate needs --calibration FILE: where to save it');
      const auditor = await openAuditor({ ...auditorOptions(flags), recalibrate: flags.recalibrate ?? true });
      try {
        const c = auditor.info.calibration;
        for (const [name, threshold] of Object.entries(c.thresholds)) {
          process.stdout.write(`${name.padEnd(20)} threshold ${threshold.toPrecision(6)}  (n = ${c.n[name]})\n`);
        }
        process.stdout.write(`${c.source ?? ''}\n`);
      } finally {
        await auditor.close();
      }
    });
}
