/** What `advstream data inspect` reports about a source, computed in one pass. */
import type { Shape } from './record.js';
import type { RecordSource } from './source.js';

export interface SourceSummary {
  source: string;
  /** Good records read (after offset and limit). */
  count: number;
  shape: Shape | null;
  /** Smallest and largest pixel value over all records; null when there are none. */
  min: number | null;
  max: number | null;
  /** Records per label, keys in increasing label order. */
  labels: Record<string, number>;
  unlabeled: number;
  rejected: number;
  /** Good records passed over for `offset`. */
  skipped: number;
}

/**
 * Reads the source once and summarises it.
 *
 * @example
 * const summary = await inspectSource(openSource('mnist:test'));
 * summary.labels['7']; // 1028
 */
export async function inspectSource(source: RecordSource): Promise<SourceSummary> {
  let min = Infinity;
  let max = -Infinity;
  let unlabeled = 0;
  const byLabel = new Map<number, number>();
  for await (const record of source) {
    const pixels = record.pixels;
    for (let i = 0; i < pixels.length; i++) {
      const v = pixels[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (record.label === undefined) unlabeled++;
    else byLabel.set(record.label, (byLabel.get(record.label) ?? 0) + 1);
  }
  const labels: Record<string, number> = {};
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) labels[String(label)] = byLabel.get(label)!;
  const { read, rejected, skipped } = source.counters;
  const shape = source.describe().shape;
  return {
    source: source.uri,
    count: read,
    shape: shape ?? null,
    min: read > 0 && min !== Infinity ? min : null,
    max: read > 0 && max !== -Infinity ? max : null,
    labels,
    unlabeled,
    rejected,
    skipped,
  };
}
