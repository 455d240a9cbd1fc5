/**
 * advstream as a dependency: the packed tarball installs into a fresh project with nothing
 * downloaded beyond the npm registry, its CLI runs there, and its published types compile.
 * Needs dist/ (npm test builds it first) and the npm registry (or npm's cache).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/paths.js';

const TSC = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'tsc');
// The consumer's set-up line from the README (section "advstream as a dependency").
const CONSUMER_SETUP = ['pkg', 'set', 'allowScripts.onnxruntime-node=false', '--json'];

let dir: string;
let consumer: string;
let install: SpawnSyncReturns<string>;

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
}

beforeAll(() => {
  expect(existsSync(path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js')), 'dist/ is not built: run npm run build').toBe(true);
}, 10_000);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'advstream-pack-'));
  // --ignore-scripts: pack the dist/ that npm test has just built instead of building again.
  const pack = run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], PACKAGE_ROOT);
  expect(pack.status, pack.stderr).toBe(0);
  const tarball = path.join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  consumer = path.join(dir, 'consumer');
  run('mkdir', [consumer], dir);
  writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const setup = run('npm', CONSUMER_SETUP, consumer);
  expect(setup.status, setup.stderr).toBe(0);
  // Any download by an install script goes through global-agent (onnxruntime-node's does); a dead
  // proxy makes one fail here even on a machine with full internet access. npm itself ignores it.
  const env = { ...process.env, GLOBAL_AGENT_HTTPS_PROXY: 'http://127.0.0.1:9', GLOBAL_AGENT_HTTP_PROXY: 'http://127.0.0.1:9' };
  install = run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], consumer, env);
}, 360_000);

afterAll(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));

describe('the packed package in a fresh project', () => {
  it('installs without running onnxruntime-node\'s download', () => {
    expect(install.status, install.stderr).toBe(0);
    const ortBin = path.join(consumer, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(existsSync(path.join(ortBin, 'onnxruntime_binding.node'))).toBe(true);
      expect(existsSync(path.join(ortBin, 'libonnxruntime_providers_cuda.so'))).toBe(false);
    }
    expect(install.stderr).not.toMatch(/Unknown (project|user|cli) config/);
  });

  it('runs `npx advstream --help` and computes on ONNX Runtime\'s bundled CPU provider', () => {
    const help = run('npx', ['advstream', '--help'], consumer);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/Usage: advstream/);
    expect(help.stdout).toMatch(/\beval\b/);
    const backend = run('npx', ['advstream', 'backend', '--json'], consumer);
    expect(backend.status, backend.stderr).toBe(0);
    const report = JSON.parse(backend.stdout) as { onnx: { engine: string } };
    expect(report.onnx.engine).toBe('onnx-cpu');
  });

  it('its published types compile; with skipLibCheck false the only errors lie in the tfjs and onnx-proto declarations', () => {
    writeFileSync(
      path.join(consumer, 'index.ts'),
      "import { parseAttackSpec } from 'advstream';\nimport { evaluate } from 'advstream/pipelines';\nexport const used = [parseAttackSpec, evaluate];\n",
    );
    const tsconfig = (skipLibCheck: boolean) => ({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck,
        typeRoots: [path.join(PACKAGE_ROOT, 'node_modules', '@types')], types: ['node'],
      },
      files: ['index.ts'],
    });
    writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify(tsconfig(true)));
    const lenient = run(TSC, ['-p', 'tsconfig.json'], consumer);
    expect(lenient.status, lenient.stdout).toBe(0);
    writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify(tsconfig(false)));
    const strict = run(TSC, ['-p', 'tsconfig.json'], consumer);
    const files = new Set(strict.stdout.split('\n').filter((l) => /error TS/.test(l)).map((l) => l.split('(')[0]!));
    // @webgpu/types (a tfjs dependency) redeclares what TypeScript's lib.dom declares: those errors
    // are reported in both files. onnx-proto's generated declarations use protobufjs's `Long` without
    // importing it; the public differentiation API (Autodiff) reaches them.
    expect([...files].filter((f) => !/^node_modules\/(@tensorflow|@webgpu|onnx-proto)\/|\/lib\.dom\.d\.ts$/.test(f))).toEqual([]);
    expect(readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8')).toMatch(/skipLibCheck/);
  });
});
