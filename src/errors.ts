/**
 * The one error factory: every error advstream raises on purpose carries a stable `code`, so that
 * users and tests match on the code, never on the message.
 */

export type ErrorCode =
  | 'BAD_ARGUMENT'
  | 'BAD_SOURCE'
  | 'BAD_RECORD'
  | 'BACKEND_UNAVAILABLE'
  | 'UNKNOWN_BACKEND'
  | 'MISSING_KERNELS'
  | 'BAD_MODEL'
  | 'MODEL_UNREACHABLE'
  | 'BAD_SPEC'
  | 'ATTACK_UNSUPPORTED'
  | 'NOT_DIFFERENTIABLE'
  | 'WORKER_FAILED'
  | 'CHECKPOINT_MISMATCH'
  | 'CHECKPOINT_CORRUPT'
  | 'INCOMPLETE_RUN'
  | 'BAD_CALIBRATION'
  | 'CALIBRATION_MISMATCH';

/** Where in an input a problem sits: the file (or URI), and a byte offset or line number. */
export interface Location {
  file: string;
  offset?: number;
  line?: number;
  id?: string;
}

export class AdvstreamError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'AdvstreamError';
    this.code = code;
    this.details = details;
  }
}

export function describeLocation(where: Location): string {
  const parts = [where.file];
  if (where.line !== undefined) parts.push(`line ${where.line}`);
  if (where.offset !== undefined) parts.push(`byte ${where.offset}`);
  if (where.id !== undefined) parts.push(`record ${where.id}`);
  return parts.join(', ');
}

export const Errors = {
  badArgument: (message: string, details: Record<string, unknown> = {}) =>
    new AdvstreamError('BAD_ARGUMENT', message, details),
  /** The source as a whole is unusable: unknown scheme, missing file, bad IDX header. */
  badSource: (where: Location, reason: string) =>
    new AdvstreamError('BAD_SOURCE', `${describeLocation(where)}: ${reason}`, { ...where, reason }),
  /** One record cannot be used; the rest of the source may still be. */
  badRecord: (where: Location, reason: string) =>
    new AdvstreamError('BAD_RECORD', `${describeLocation(where)}: ${reason}`, { ...where, reason }),
  unknownBackend: (name: string, candidates: readonly { name: string; ok: boolean; reason: string }[]) =>
    new AdvstreamError(
      'UNKNOWN_BACKEND',
      `unknown backend '${name}'; candidates: ${candidates.map((c) => `${c.name} (${c.ok ? 'ok' : c.reason})`).join(', ')}`,
      { name, candidates },
    ),
  backendUnavailable: (name: string, reason: string, candidates: readonly { name: string; ok: boolean; reason: string }[]) =>
    new AdvstreamError(
      'BACKEND_UNAVAILABLE',
      `backend '${name}' cannot start: ${reason}; candidates: ${candidates.map((c) => `${c.name} (${c.ok ? 'ok' : c.reason})`).join(', ')}`,
      { name, reason, candidates },
    ),
  missingKernels: (backend: string, kernels: readonly string[], what: string) =>
    new AdvstreamError(
      'MISSING_KERNELS',
      `${what} needs kernels that backend '${backend}' lacks: ${kernels.join(', ')}`,
      { backend, kernels, what },
    ),
  badModel: (where: string, reason: string) =>
    new AdvstreamError('BAD_MODEL', `${where}: ${reason}`, { where, reason }),
  /** A model URL that does not answer (refused, reset, silent past the timeout). */
  modelUnreachable: (url: string, reason: string) =>
    new AdvstreamError('MODEL_UNREACHABLE', `${url}: ${reason}`, { url, reason }),
  badSpec: (spec: string, reason: string, valid: readonly string[] = []) =>
    new AdvstreamError(
      'BAD_SPEC',
      `bad spec '${spec}': ${reason}${valid.length ? `; valid: ${valid.join(', ')}` : ''}`,
      { spec, reason, valid },
    ),
  /** An attack cannot run on this model (DLR on too few classes, ...). */
  attackUnsupported: (attack: string, model: string, reason: string) =>
    new AdvstreamError('ATTACK_UNSUPPORTED', `${attack} cannot attack ${model}: ${reason}`, { attack, model, reason }),
  /** A model's graph has nodes the differentiation cannot go through: it runs black-box. */
  notDifferentiable: (where: string, reason: string, nodes: readonly { op: string; node: string; reason: string }[]) =>
    new AdvstreamError('NOT_DIFFERENTIABLE', `${where}: ${reason}`, { where, reason, nodes }),
  workerFailed: (reason: string, details: Record<string, unknown> = {}) =>
    new AdvstreamError('WORKER_FAILED', reason, details),
  /** A checkpoint made by another configuration (data, models, attacks, seed, batch, backend): resuming it would mix runs. */
  checkpointMismatch: (file: string, differences: readonly string[]) =>
    new AdvstreamError(
      'CHECKPOINT_MISMATCH',
      `${file} was made by another evaluation (${differences.join('; ')}); delete it or pass another --checkpoint`,
      { file, differences },
    ),
  /** A checkpoint file that is not one, or whose digest or counts do not hold: resuming it would give wrong results. */
  checkpointCorrupt: (file: string, reason: string) =>
    new AdvstreamError('CHECKPOINT_CORRUPT', `checkpoint ${file} is corrupt: ${reason}; delete it to start afresh`, { file, reason }),
  /** A run without its final line (interrupted), where a complete one is required (`report --strict`). */
  incompleteRun: (file: string, statsLine: number) =>
    new AdvstreamError(
      'INCOMPLETE_RUN',
      `${file}: the run has no final line (interrupted?); its last statistics are at line ${statsLine}`,
      { file, line: statsLine },
    ),
  /** A calibration file that cannot be read as one: bad JSON, missing fields, unknown format. */
  badCalibration: (where: string, reason: string) =>
    new AdvstreamError('BAD_CALIBRATION', `${where}: ${reason}`, { where, reason }),
  /** A calibration made for other detectors, parameters or models than the ones about to use it. */
  calibrationMismatch: (where: string, differences: readonly string[]) =>
    new AdvstreamError(
      'CALIBRATION_MISMATCH',
      `${where} was calibrated for other detectors or models (${differences.join('; ')}); recalibrate for this plan`,
      { where, differences },
    ),
};

export function isAdvstreamError(e: unknown): e is AdvstreamError {
  return e instanceof AdvstreamError;
}

/**
 * The codes of bad usage: the command line (or an API call) asks for something invalid, a flag
 * value, a spec string or a backend name, found before any input is trusted.
 */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['BAD_ARGUMENT', 'BAD_SPEC', 'UNKNOWN_BACKEND']);

/**
 * The CLI's one exit-code rule: 2 for bad usage ({@link USAGE_CODES}), 1 for everything else, bad
 * input (data, models, checkpoints, calibrations) and failed runs alike. A signal's 130/143 and
 * commander's own usage errors (2) are set by the CLI itself.
 */
export function exitCodeOf(e: unknown): 1 | 2 {
  return isAdvstreamError(e) && USAGE_CODES.has(e.code) ? 2 : 1;
}
