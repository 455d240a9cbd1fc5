/**
 * The names a report shows for models. A model given as a file path (`/home/me/models/torch-mlp.onnx`)
 * is shown by its file name, with as many parent folders as it takes to tell it from the others;
 * `zoo:` names and URLs stay as they are. The provenance keeps every full id.
 */
import type { EvalSummary } from '../stats/eval-stats.js';
import type { ImageGrid } from './grids.js';

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

function isPath(id: string): boolean {
  return !SCHEME.test(id) && /[\\/]/.test(id);
}

/**
 * Full id → shown name, for every id.
 *
 * @example
 *   shortModelNames(['zoo:mlp-relu', '/tmp/a/model.onnx', '/tmp/b/model.onnx']);
 *   // Map { 'zoo:mlp-relu' → 'zoo:mlp-relu', '/tmp/a/model.onnx' → 'a/model.onnx', '/tmp/b/model.onnx' → 'b/model.onnx' }
 */
export function shortModelNames(ids: Iterable<string>): Map<string, string> {
  const all = [...new Set(ids)];
  const names = new Map<string, string>();
  const parts = new Map(all.map((id) => [id, id.split(/[\\/]+/).filter((p) => p !== '' && p !== '.')]));
  const taken = new Set(all.filter((id) => !isPath(id)));
  for (const id of all) {
    if (!isPath(id)) {
      names.set(id, id);
      continue;
    }
    const segments = parts.get(id)!;
    let depth = 1;
    const name = () => segments.slice(-depth).join('/');
    const clashes = () => taken.has(name()) || all.some((other) => other !== id && isPath(other) && parts.get(other)!.slice(-depth).join('/') === name());
    while (depth < segments.length && clashes()) depth += 1;
    names.set(id, depth >= segments.length && clashes() ? id : name());
    taken.add(names.get(id)!);
  }
  return names;
}

function renameKeys<T>(record: Record<string, T>, names: ReadonlyMap<string, string>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [names.get(k) ?? k, v]));
}

/** The summary with every model key shown by its short name (the rest of the record unchanged). */
export function renameModels<S extends EvalSummary>(summary: S, names: ReadonlyMap<string, string>): S {
  return {
    ...summary,
    models: renameKeys(summary.models, names),
    transfer: Object.fromEntries(Object.entries(summary.transfer).map(([a, sources]) => [a, renameKeys(Object.fromEntries(Object.entries(sources).map(([s, t]) => [s, renameKeys(t, names)])), names)])),
    ...(summary.curves && { curves: renameKeys(summary.curves, names) }),
  };
}

/** An image grid with its model names shortened. */
export function renameGrid(grid: ImageGrid, names: ReadonlyMap<string, string>): ImageGrid {
  const n = (m: string) => names.get(m) ?? m;
  return {
    ...grid,
    sources: grid.sources.map(n),
    models: grid.models.map(n),
    rows: grid.rows.map((r) => ({
      ...r,
      cleanPreds: renameKeys(r.cleanPreds, names),
      adversarials: Object.fromEntries(Object.entries(r.adversarials).map(([s, a]) => [n(s), { ...a, preds: renameKeys(a.preds, names) }])),
    })),
  };
}
