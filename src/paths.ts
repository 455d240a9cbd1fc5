import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package root (the folder holding advstream's package.json), found by walking up from this
 * module, so that paths to shipped fixtures work both from `src/` (tests) and from `dist/src/`.
 */
function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'fixtures'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('advstream: cannot find the package root (package.json beside fixtures/)');
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();
export const ZOO_DIR = path.join(PACKAGE_ROOT, 'fixtures', 'models');
