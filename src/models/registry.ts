import { Errors } from '../errors.js';
import type { Family } from './family.js';
import { damFamily } from './families/dam.js';
import { drpFamily } from './families/drp.js';
import { isometricFamily } from './families/isometric.js';
import { maxoutFamily } from './families/maxout.js';
import { mlpFamily } from './families/mlp.js';

/** Every model family, registered in this one list. */
export const FAMILIES: readonly Family[] = [damFamily, mlpFamily, maxoutFamily, drpFamily, isometricFamily];

export function getFamily(name: string): Family {
  const family = FAMILIES.find((f) => f.name === name);
  if (!family) throw Errors.badArgument(`unknown model family '${name}'; families: ${FAMILIES.map((f) => f.name).join(', ')}`);
  return family;
}
