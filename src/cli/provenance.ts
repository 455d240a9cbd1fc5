import { execFileSync } from 'node:child_process';
import { PACKAGE_ROOT } from '../paths.js';

/**
 * The git commit of the advstream checkout, or `unknown` outside one. `ADVSTREAM_COMMIT` overrides
 * it, for runs from a frozen build of an earlier commit (the zoo build does this).
 */
export function gitCommit(): string {
  if (process.env.ADVSTREAM_COMMIT) return process.env.ADVSTREAM_COMMIT;
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'pipelines', 'workers'], {
      cwd: PACKAGE_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
    return dirty ? `${sha}+dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/** The command line as typed, with `advstream` in place of the node binary and script path. */
export function commandLine(argv: readonly string[] = process.argv): string {
  return ['advstream', ...argv.slice(2)].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}
