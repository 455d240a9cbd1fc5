import type { Command } from 'commander';
import { initBackend } from '../../backend/index.js';
import { selectProvider, type ProviderCandidate } from '../../engine/ort.js';
import { isAdvstreamError } from '../../errors.js';
import { writeJson } from '../output.js';

/** The ONNX Runtime side: the provider chosen, or why none starts, with every candidate. */
async function onnxProviders(): Promise<{ engine: string | null; candidates: ProviderCandidate[]; reason?: string }> {
  try {
    const info = await selectProvider();
    return { engine: info.engine, candidates: info.candidates };
  } catch (e) {
    const candidates = isAdvstreamError(e) ? ((e.details.candidates as ProviderCandidate[] | undefined) ?? []) : [];
    return { engine: null, candidates, reason: (e as Error).message };
  }
}

export function registerBackend(program: Command): void {
  program
    .command('backend')
    .description('select a tensor backend by priority (tensorflow > wasm > cpu) and an ONNX Runtime provider (cuda > cpu); report every candidate')
    .option('--backend <name>', 'force one backend: tensorflow, wasm or cpu')
    .option('--json', 'print one JSON object')
    .action(async (opts: { backend?: string; json?: boolean }) => {
      const info = await initBackend({ backend: opts.backend });
      const onnx = await onnxProviders();
      if (opts.json) {
        writeJson({ ...info, onnx });
        return;
      }
      process.stdout.write(`backend: ${info.backend}${info.native ? ` (${info.native})` : ''}\n`);
      process.stdout.write(`simd: ${info.simd}\nthreads: ${info.threads}\n`);
      for (const c of info.candidates) process.stdout.write(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.reason}\n`);
      process.stdout.write(`onnx engine: ${onnx.engine ?? `none (${onnx.reason})`}\n`);
      for (const c of onnx.candidates) process.stdout.write(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.reason}\n`);
    });
}
