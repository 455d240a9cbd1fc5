import type { Command } from 'commander';
import { Errors } from '../../errors.js';
import { createAuditServer, openAuditor } from '../../../pipelines/index.js';
import { nonNegativeInt, positiveInt } from '../args.js';
import { writeJson } from '../output.js';
import { addAlarmFlags, addAuditorFlags, alarmOptions, auditorOptions, sourcesHelp, type AlarmFlags, type AuditorFlags } from './audit.js';

interface ServeFlags extends AuditorFlags, AlarmFlags {
  port: string;
  host: string;
  token?: string;
  maxBody: string;
  queue: string;
  headersTimeout: string;
  bodyTimeout: string;
  maxPixels: string;
  maxConnections: string;
  shutdownTimeout: string;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** `1mb`, `512kb`, `65536` → bytes (binary units: 1mb = 1 MiB). */
export function parseBytes(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(Number.isSafeInteger(bytes) && bytes > 0)) throw Errors.badArgument(`${flag} must be a size such as 1mb, 512kb or 65536, got '${text}'`);
  return bytes;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function registerServe(program: Command): void {
  addAlarmFlags(addAuditorFlags(
    program
      .command('serve')
      .description('serve the audit over HTTP: POST /v1/audit, GET /healthz, GET /metrics (Prometheus)')
      .option('--port <port>', 'TCP port (0: any free port)', '8080')
      .option('--host <host>', 'interface to bind; anything but loopback exposes the service', '127.0.0.1')
      .option('--token <token>', 'require Authorization: Bearer TOKEN on /v1/audit and /metrics (default: $ADVSTREAM_TOKEN)')
      .option('--max-body <size>', 'largest request body (1mb = 1 MiB); larger ones get 413', '1mb')
      .option('--queue <n>', 'audit requests admitted at once, running or waiting; more get 503 with Retry-After', '32')
      .option('--headers-timeout <ms>', 'time a client has to send its request headers', '10000')
      .option('--body-timeout <ms>', 'time a client has to send its whole body; slower ones get 408', '10000')
      .option('--max-pixels <n>', "decoded pixel values (h x w x c, all records) per request; more get 413", String(2 ** 22))
      .option('--max-connections <n>', 'open connections at most', '256')
      .option('--shutdown-timeout <ms>', 'on SIGINT/SIGTERM, time the requests in hand get before they are aborted', '30000'),
  ))
    .addHelpText('after', sourcesHelp)
    .action(async (flags: ServeFlags) => {
      const port = nonNegativeInt('--port', flags.port)!;
      if (port > 65535) throw Errors.badArgument(`--port must be at most 65535, got ${port}`);
      const maxBody = parseBytes('--max-body', flags.maxBody);
      const queue = positiveInt('--queue', flags.queue)!;
      const limits = {
        headersTimeoutMs: positiveInt('--headers-timeout', flags.headersTimeout)!,
        bodyTimeoutMs: positiveInt('--body-timeout', flags.bodyTimeout)!,
        maxPixels: positiveInt('--max-pixels', flags.maxPixels)!,
        maxConnections: positiveInt('--max-connections', flags.maxConnections)!,
      };
      const shutdownMs = positiveInt('--shutdown-timeout', flags.shutdownTimeout)!;
      const token = flags.token ?? process.env.ADVSTREAM_TOKEN;
      if (token !== undefined && token.trim() === '') throw Errors.badArgument('the token is empty');
      const alarms = alarmOptions(flags);
      const auditor = await openAuditor(auditorOptions(flags));
      let service;
      try {
        service = createAuditServer({ auditor, maxBody, queue, ...limits, ...(token !== undefined ? { token } : {}), ...(alarms && { alarms }) });
      } catch (e) {
        await auditor.close();
        throw e;
      }
      let address;
      try {
        address = await service.listen(port, flags.host);
      } catch (e) {
        await auditor.close();
        throw Errors.badArgument(`cannot listen on ${flags.host}:${port}: ${(e as Error).message}`);
      }
      if (!LOOPBACK.has(flags.host) && token === undefined) {
        process.stderr.write(`advstream serve: warning: listening on ${flags.host} without a token: anyone who can reach it can use it\n`);
      }
      process.stderr.write(
        `advstream serve: listening on ${address.url} (backend ${auditor.info.backend}, engine ${auditor.info.engine}, ${auditor.info.workers} worker(s), fpr ${auditor.info.fpr}` +
          `${token !== undefined ? ', token required' : ''})\n`,
      );
      writeJson({ type: 'listening', url: address.url, host: address.host, port: address.port });
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          process.stderr.write(`advstream serve: ${signal}: finishing the requests in hand\n`);
          process.exitCode = 0;
          resolve();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await service.close(shutdownMs);
      await auditor.close();
    });
}
