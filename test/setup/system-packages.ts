/**
 * The Debian packages the test suite needs, and the plan that provides them: `npm test` must pass on
 * a fresh machine after `npm ci`, so the suite's global set-up installs what is missing when it runs
 * as root on Debian, and otherwise stops before any test with the exact command to run.
 *
 * To need another package, add one entry to SYSTEM_PACKAGES (e.g. `redis-server` with
 * `/usr/bin/redis-server`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface SystemPackage {
  /** Debian package name, as `apt-get install` takes it. */
  readonly name: string;
  /** A path the package installs: its presence is what the tests rely on. */
  readonly provides: string;
  /** Why the suite needs it, shown when it is missing. */
  readonly neededBy: string;
}

export const SYSTEM_PACKAGES: readonly SystemPackage[] = [
  { name: 'chromium', provides: '/usr/bin/chromium', neededBy: 'test/report/browser.test.ts opens the HTML report in it' },
  { name: 'fonts-liberation', provides: '/usr/share/fonts/truetype/liberation', neededBy: 'chromium renders the report with its fonts' },
  { name: 'dataset-fashion-mnist', provides: '/usr/share/datasets/fashion-mnist', neededBy: 'test/data/colour-sources.test.ts reads fashion-mnist:train|test from it' },
];

/** The environment a plan is made for; a value, so that tests can describe any machine. */
export interface Machine {
  readonly exists: (path: string) => boolean;
  readonly isRoot: boolean;
  readonly hasApt: boolean;
}

/** One command, as argv, run with DEBIAN_FRONTEND=noninteractive. */
export type Command = readonly string[];

export type SetupPlan =
  | { readonly kind: 'ready' }
  | { readonly kind: 'install'; readonly packages: readonly SystemPackage[]; readonly commands: readonly Command[] }
  | { readonly kind: 'fail'; readonly packages: readonly SystemPackage[]; readonly message: string };

/**
 * The apt-get commands that install `names`. The lock timeout makes concurrent test runs on one
 * machine wait for each other's dpkg instead of failing on its lock.
 */
export function aptCommands(names: readonly string[]): Command[] {
  return [
    ['apt-get', 'update', '-qq'],
    ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=600', ...names],
  ];
}

/** The install as one line a person can paste (with sudo when they are not root). */
export function shellLine(names: readonly string[], sudo: boolean): string {
  const apt = sudo ? 'sudo apt-get' : 'apt-get';
  return `${apt} update && ${apt} install -y --no-install-recommends ${names.join(' ')}`;
}

export function planSetup(packages: readonly SystemPackage[], machine: Machine): SetupPlan {
  const missing = packages.filter((p) => !machine.exists(p.provides));
  if (missing.length === 0) return { kind: 'ready' };
  const names = missing.map((p) => p.name);
  if (machine.isRoot && machine.hasApt) return { kind: 'install', packages: missing, commands: aptCommands(names) };
  const why = missing.map((p) => `  ${p.name} (${p.provides} is missing; ${p.neededBy})`).join('\n');
  const how = machine.hasApt
    ? `Install them with:\n  ${shellLine(names, !machine.isRoot)}\n(run as root, the tests install them themselves).`
    : `This machine has no apt-get: install the equivalents of these Debian packages so that the paths above exist.`;
  return { kind: 'fail', packages: missing, message: `advstream's tests need Debian packages that are not installed:\n${why}\n${how}` };
}

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

export function thisMachine(): Machine {
  return { exists: existsSync, isRoot: process.getuid?.() === 0, hasApt: onPath('apt-get') };
}

/** Carries out a plan: installs, then checks that every path now exists. */
export function provide(plan: SetupPlan, machine: Machine, log: (line: string) => void): void {
  if (plan.kind === 'ready') return;
  if (plan.kind === 'fail') throw new Error(plan.message);
  const names = plan.packages.map((p) => p.name);
  log(`advstream tests: installing ${names.join(', ')} with apt-get (once per machine, about a minute)`);
  for (const argv of plan.commands) {
    const run = spawnSync(argv[0]!, argv.slice(1), {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (run.status !== 0) {
      const reason = run.error ? run.error.message : `exit ${run.status}: ${run.stderr.trim().split('\n').slice(-3).join(' / ')}`;
      throw new Error(`advstream tests: \`${argv.join(' ')}\` failed (${reason}); run it yourself: ${shellLine(names, false)}`);
    }
  }
  const still = plan.packages.filter((p) => !machine.exists(p.provides));
  if (still.length > 0) {
    throw new Error(`advstream tests: apt-get installed ${names.join(', ')} but ${still.map((p) => p.provides).join(', ')} still missing`);
  }
}
