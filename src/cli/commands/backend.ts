import type { Command } from 'commander';
import { initBackend } from '../../backend/index.js';
import { writeJson } from '../output.js';

export function registerBackend(program: Command): void {
  program
    .command('backend')
    .description('select a tensor backend by priority (tensorflow > wasm > cpu) and report every candidate')
    .option('--backend <name>', 'force one backend: tensorflow, wasm or cpu')
    .option('--json', 'print one JSON object')
    .action(async (opts: { backend?: string; json?: boolean }) => {
      const info = await initBackend({ backend: opts.backend });
      if (opts.json) {
        writeJson(info);
        return;
      }
      process.stdout.write(`backend: ${info.backend}${info.native ? ` (${info.native})` : ''}\n`);
      process.stdout.write(`simd: ${info.simd}\nthreads: ${info.threads}\n`);
      for (const c of info.candidates) process.stdout.write(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.reason}\n`);
    });
}
