import { describe, expect, it } from 'vitest';
import { aptCommands, planSetup, provide, shellLine, SYSTEM_PACKAGES, type Machine, type SystemPackage } from './system-packages.js';

const CHROMIUM: SystemPackage = { name: 'chromium', provides: '/usr/bin/chromium', neededBy: 'the browser test' };
const REDIS: SystemPackage = { name: 'redis-server', provides: '/usr/bin/redis-server', neededBy: 'the distributed pool' };

function machine(present: string[], over: Partial<Machine> = {}): Machine {
  return { exists: (p) => present.includes(p), isRoot: true, hasApt: true, ...over };
}

describe('the suite\'s Debian packages', () => {
  it('lists chromium and its fonts, each with the path the tests rely on', () => {
    expect(SYSTEM_PACKAGES.map((p) => p.name)).toEqual(['chromium', 'fonts-liberation', 'dataset-fashion-mnist']);
    expect(SYSTEM_PACKAGES.find((p) => p.name === 'chromium')?.provides).toBe('/usr/bin/chromium');
  });

  it('does nothing when every path exists', () => {
    expect(planSetup([CHROMIUM, REDIS], machine(['/usr/bin/chromium', '/usr/bin/redis-server']))).toEqual({ kind: 'ready' });
  });

  it('installs only the missing packages, in one apt-get call, when root on Debian', () => {
    const plan = planSetup([CHROMIUM, REDIS], machine(['/usr/bin/chromium']));
    expect(plan.kind).toBe('install');
    if (plan.kind !== 'install') return;
    expect(plan.packages).toEqual([REDIS]);
    expect(plan.commands).toEqual(aptCommands(['redis-server']));
    expect(plan.commands.at(-1)).toContain('--no-install-recommends');
    expect(plan.commands.at(-1)?.at(-1)).toBe('redis-server');
  });

  it('fails, naming each missing package and the exact command with sudo, when not root', () => {
    const plan = planSetup([CHROMIUM, REDIS], machine([], { isRoot: false }));
    expect(plan.kind).toBe('fail');
    if (plan.kind !== 'fail') return;
    expect(plan.message).toContain('chromium (/usr/bin/chromium is missing; the browser test)');
    expect(plan.message).toContain('redis-server (/usr/bin/redis-server is missing; the distributed pool)');
    expect(plan.message).toContain('sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium redis-server');
  });

  it('fails without an apt-get command to suggest off Debian', () => {
    const plan = planSetup([CHROMIUM], machine([], { hasApt: false }));
    expect(plan.kind).toBe('fail');
    if (plan.kind !== 'fail') return;
    expect(plan.message).toContain('no apt-get');
    expect(plan.message).not.toContain('apt-get install');
  });

  it('a root install line has no sudo', () => {
    expect(shellLine(['chromium'], false)).toBe('apt-get update && apt-get install -y --no-install-recommends chromium');
  });

  it('provide throws the plan\'s message for a failing plan', () => {
    const plan = planSetup([CHROMIUM], machine([], { isRoot: false }));
    expect(() => provide(plan, machine([]), () => {})).toThrow(/sudo apt-get install -y --no-install-recommends chromium/);
  });

  it('provide runs the commands, announces the install and checks the paths afterwards', () => {
    let installed = false;
    const m: Machine = { exists: () => installed, isRoot: true, hasApt: true };
    const lines: string[] = [];
    const plan = { kind: 'install' as const, packages: [CHROMIUM], commands: [['sh', '-c', 'exit 0']] };
    expect(() => provide(plan, m, (l) => lines.push(l))).toThrow(/installed chromium but \/usr\/bin\/chromium still missing/);
    expect(lines).toEqual([expect.stringContaining('installing chromium with apt-get')]);
    installed = true;
    expect(() => provide(plan, m, () => {})).not.toThrow();
  });

  it('provide reports a failing command with its stderr and the command to run by hand', () => {
    const plan = { kind: 'install' as const, packages: [CHROMIUM], commands: [['sh', '-c', 'echo "E: Unable to locate package chromium" >&2; exit 100']] };
    expect(() => provide(plan, machine([]), () => {})).toThrow(/exit 100: E: Unable to locate package chromium.*apt-get update && apt-get install -y --no-install-recommends chromium/);
  });
});
