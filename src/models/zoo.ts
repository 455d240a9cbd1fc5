/**
 * The shipped zoo: recipes in `fixtures/zoo.json`, trained artifacts in `fixtures/models/NAME/`.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { Errors } from '../errors.js';
import { PACKAGE_ROOT, ZOO_DIR } from '../paths.js';
import { manifestSchema, type ModelManifest } from './artifact.js';

const recipeSchema = z.object({
  name: z.string(),
  family: z.string(),
  args: z.array(z.string()),
  target: z.number(),
  default: z.boolean().optional(),
  /** Why a target was missed, or other facts of the recipe worth a reader's time. */
  note: z.string().optional(),
});
export type ZooRecipe = z.infer<typeof recipeSchema>;

export async function zooRecipes(): Promise<ZooRecipe[]> {
  const file = path.join(PACKAGE_ROOT, 'fixtures', 'zoo.json');
  const parsed = z.object({ models: z.array(recipeSchema) }).safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!parsed.success) throw Errors.badModel(file, parsed.error.issues[0]!.message);
  return parsed.data.models;
}

export interface ZooEntry {
  name: string;
  ref: string;
  manifest: ModelManifest;
}

/** The trained models present in the zoo folder, in recipe order, then any others by name. */
export async function zooModels(): Promise<ZooEntry[]> {
  const order = (await zooRecipes()).map((r) => r.name);
  let names: string[];
  try {
    names = (await readdir(ZOO_DIR, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
  const entries: ZooEntry[] = [];
  for (const name of names) {
    let text: string;
    try {
      text = await readFile(path.join(ZOO_DIR, name, 'manifest.json'), 'utf8');
    } catch {
      continue; // still training: no manifest yet
    }
    const parsed = manifestSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw Errors.badModel(path.join(ZOO_DIR, name, 'manifest.json'), parsed.error.issues[0]!.message);
    entries.push({ name, ref: `zoo:${name}`, manifest: parsed.data });
  }
  const rank = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
  return entries.sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
}

/** The models an evaluation uses when none is named: the recipes marked `default`. */
export async function defaultZooRefs(): Promise<string[]> {
  return (await zooRecipes()).filter((r) => r.default).map((r) => `zoo:${r.name}`);
}
