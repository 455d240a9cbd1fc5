/**
 * `png:DIR`: every `*.png` under DIR (any depth; names starting with `.` are skipped), in order of
 * their `/`-separated path relative to DIR, compared by code unit, so the order is the same on every
 * machine. The id is that relative path (`3/img_001.png`).
 *
 * Labels, first rule that applies:
 * 1. `DIR/labels.csv` with rows `file,label` (an optional `file,label` header; `file` relative to
 *    DIR; split at the last comma, no quoting). Listed files get that label, unlisted ones none. A
 *    label that is not a non-negative integer, or a listed file that is missing, is a bad record.
 * 2. Otherwise the first-level sub-folder: when every sub-folder name is an integer the label is that
 *    integer (`DIR/7/a.png` → 7); otherwise it is the name's index among the sorted sub-folder names
 *    (torchvision ImageFolder's rule), and `describe().classes` lists the names. Files directly in DIR
 *    have no label.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type AdvstreamError, Errors } from '../errors.js';
import type { OpenContext, RawItem, SourceKind } from './kind.js';
import { decodePng } from './png-decode.js';

const LABELS_FILE = 'labels.csv';

interface Entry {
  rel: string;
  label?: number;
  bad?: AdvstreamError;
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function listPngs(dir: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const isDir = entry.isSymbolicLink() ? (await stat(join(dir, rel))).isDirectory() : entry.isDirectory();
    if (isDir) found.push(...(await listPngs(dir, rel)));
    else if (/\.png$/i.test(entry.name)) found.push(rel);
  }
  return found;
}

/** `labels.csv` as file → label entries, or `undefined` when DIR has none. */
async function readLabelsCsv(dir: string): Promise<Map<string, Entry> | undefined> {
  const path = join(dir, LABELS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw Errors.badSource({ file: path }, `cannot read: ${(e as Error).message}`);
  }
  const entries = new Map<string, Entry>();
  const firstLine = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const row = raw.trim();
    if (row === '' || (line === 1 && /^file\s*,\s*label$/i.test(row))) return;
    const comma = row.lastIndexOf(',');
    if (comma < 0) throw Errors.badSource({ file: path, line }, `expected 'file,label', got '${row}'`);
    const rel = row.slice(0, comma).trim().replace(/^\.\//, '');
    const text = row.slice(comma + 1).trim();
    const seen = firstLine.get(rel);
    if (seen !== undefined) throw Errors.badSource({ file: path, line }, `'${rel}' is listed again (first on line ${seen})`);
    firstLine.set(rel, line);
    entries.set(
      rel,
      /^\d+$/.test(text)
        ? { rel, label: Number(text) }
        : { rel, bad: Errors.badRecord({ file: path, line, id: rel }, `label '${text}' is not a non-negative integer`) },
    );
  });
  return entries;
}

function labelFromFolders(files: readonly string[]): { entries: Entry[]; classes?: string[] } {
  const folderOf = (rel: string) => (rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : undefined);
  const names = [...new Set(files.map(folderOf).filter((n): n is string => n !== undefined))].sort(byCodeUnit);
  const numeric = names.every((n) => /^\d+$/.test(n));
  const entries = files.map((rel): Entry => {
    const folder = folderOf(rel);
    if (folder === undefined) return { rel };
    return { rel, label: numeric ? Number(folder) : names.indexOf(folder) };
  });
  return numeric ? { entries } : { entries, classes: names };
}

async function* readPngFolder(dir: string, ctx: OpenContext): AsyncGenerator<RawItem, void, undefined> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (e) {
    throw Errors.badSource({ file: dir }, `cannot open the folder: ${(e as Error).message}`);
  }
  if (!isDir) throw Errors.badSource({ file: dir }, 'not a folder');
  const files = (await listPngs(dir)).sort(byCodeUnit);
  const listed = await readLabelsCsv(dir);
  let entries: Entry[];
  if (listed) {
    const present = new Set(files);
    const missing = [...listed.keys()].filter((rel) => !present.has(rel));
    entries = [...files, ...missing].sort(byCodeUnit).map((rel) => {
      const entry = listed.get(rel) ?? { rel };
      if (present.has(rel) || entry.bad) return entry;
      return { rel, bad: Errors.badRecord({ file: join(dir, LABELS_FILE), id: rel }, 'listed, but there is no such PNG file') };
    });
    ctx.declare({ count: entries.length });
  } else {
    const folders = labelFromFolders(files);
    entries = folders.entries;
    ctx.declare(folders.classes ? { count: entries.length, classes: folders.classes } : { count: entries.length });
  }

  for (const entry of entries) {
    if (entry.bad) {
      yield { bad: entry.bad };
      continue;
    }
    const file = join(dir, entry.rel);
    const where = { file, id: entry.rel };
    let decoded;
    try {
      decoded = decodePng(await readFile(file));
    } catch (e) {
      yield { bad: Errors.badRecord(where, `the PNG does not decode: ${(e as Error).message}`) };
      continue;
    }
    const record = { id: entry.rel, shape: decoded.shape, pixels: decoded.pixels };
    yield { record: entry.label === undefined ? record : { ...record, label: entry.label }, where };
  }
}

export const pngSource: SourceKind = {
  schemes: ['png'],
  form: 'png:DIR',
  summary: 'a folder of PNG files, sorted; labels from DIR/labels.csv (file,label) or sub-folder names',
  prepare(ref) {
    if (ref.rest === '') throw Errors.badSpec(ref.uri, 'expected png:DIR');
    return (ctx) => readPngFolder(ref.rest, ctx);
  },
};
