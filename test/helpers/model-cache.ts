import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { NamedTensorMap } from '../../src/backend/index.js';
import { saveArtifact } from '../../src/models/artifact.js';

/**
 * Saves a test model into a cache folder shared by concurrent test files: written under a temporary
 * name, then renamed, so that a reader never sees half a model. If another file got there first, its
 * model is the same recipe, and this one is dropped.
 */
export async function saveCachedModel(dir: string, family: string, config: Record<string, unknown>, weights: NamedTensorMap): Promise<void> {
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await saveArtifact(tmp, { family, config, weights });
  try {
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    if (!existsSync(dir)) throw e;
  }
}
