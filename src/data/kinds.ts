/**
 * Every source kind, registered in this one list, and the parsing of source URIs into them. A new
 * kind (an `http:`/`https:` source, say) implements `SourceKind` in its own file and adds one entry
 * here; `openSource`, the CLI's `--data` and its help text pick it up from this list.
 */
import { Errors } from '../errors.js';
import { httpSource } from './http.js';
import { idxSource } from './idx.js';
import type { SourceKind, SourceRef } from './kind.js';
import { fashionMnistSource } from './fashion-mnist.js';
import { mnistSource } from './mnist.js';
import { ndjsonSource } from './ndjson.js';
import { pngSource } from './png.js';
import { tintedMnistSource } from './tinted-mnist.js';

export const SOURCE_KINDS: readonly SourceKind[] = [mnistSource, fashionMnistSource(), tintedMnistSource, idxSource, pngSource, ndjsonSource, httpSource];

const BY_SCHEME: ReadonlyMap<string, SourceKind> = new Map(
  SOURCE_KINDS.flatMap((kind) => kind.schemes.map((scheme) => [scheme, kind] as const)),
);

/** `-` alone is stdin, the one URI without a scheme. */
const ALIASES: Readonly<Record<string, string>> = { '-': 'ndjson:-' };

/**
 * Splits a source URI at its scheme and finds the kind registered for it.
 *
 * @example
 * parseSourceUri('idx:images.idx,labels.idx').ref; // { uri, scheme: 'idx', rest: 'images.idx,labels.idx' }
 */
export function parseSourceUri(uri: string): { kind: SourceKind; ref: SourceRef } {
  const full = ALIASES[uri] ?? uri;
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(full);
  const valid = [...BY_SCHEME.keys()].map((s) => `${s}:`);
  if (!match) throw Errors.badSpec(uri, 'a source is SCHEME:WHAT, or - for NDJSON on stdin', valid);
  const scheme = match[1]!.toLowerCase();
  const kind = BY_SCHEME.get(scheme);
  if (!kind) throw Errors.badSpec(uri, `unknown source kind '${scheme}'`, valid);
  return { kind, ref: { uri, scheme, rest: match[2]! } };
}
