import { checkCount, checkId, checkRecord, getOrCreate, sortedEntries } from './shared.js';
import { Proportion, type ProportionJSON } from './proportion.js';

/** `[attackId][source][target]` → errors of target on adversarials crafted on source. */
export type TransferJSON = Record<string, Record<string, Record<string, ProportionJSON>>>;

export interface TransferCell {
  /** Error rate of the target; `null` when n = 0. */
  err: number | null;
  ci: [number, number];
  n: number;
}

export type TransferSummary = Record<string, Record<string, Record<string, TransferCell>>>;

type Cells = Map<string, Map<string, Map<string, Proportion>>>;

/**
 * Transferability: for each attack, the error rate of every target model on the adversarials crafted
 * on every source model. The denominator of a cell is every sample for which the source produced an
 * adversarial, successful or not and whatever the source's clean prediction, so that a row reads as
 * "accuracy lost by feeding the target the source's attack outputs". The diagonal is the white-box
 * error rate (1 − robust accuracy when every sample was attacked).
 *
 * @example
 * const t = new TransferMatrix();
 * t.add('pgd', 'zoo:cnn', 7, { 'zoo:cnn': 1, 'zoo:mlp': 7 });
 * t.summary().pgd['zoo:cnn']['zoo:mlp'].err; // 0
 */
export class TransferMatrix {
  private readonly cells: Cells = new Map();

  /** One adversarial crafted by `attack` on `source`, with every target model's prediction on it. */
  add(attack: string, source: string, label: number, preds: Readonly<Record<string, number>>): this {
    checkId(attack, 'attack id');
    checkId(source, 'source id');
    checkCount(label, 'label');
    const entries = Object.entries(preds);
    // Check every entry before counting any, so a bad sample leaves the matrix untouched.
    for (const [target, pred] of entries) {
      checkId(target, 'target id');
      checkCount(pred, `prediction of ${target}`);
    }
    for (const [target, pred] of entries) this.cell(attack, source, target).add(pred !== label);
    return this;
  }

  merge(other: TransferMatrix): this {
    for (const [attack, sources] of other.cells) {
      for (const [source, targets] of sources) {
        for (const [target, p] of targets) this.cell(attack, source, target).merge(p);
      }
    }
    return this;
  }

  toJSON(): TransferJSON {
    return mapCells(this.cells, (p) => p.toJSON());
  }

  static fromJSON(json: TransferJSON): TransferMatrix {
    const t = new TransferMatrix();
    for (const [attack, sources] of Object.entries(checkRecord(json, 'transfer'))) {
      for (const [source, targets] of Object.entries(checkRecord(sources, `transfer.${attack}`))) {
        for (const [target, p] of Object.entries(checkRecord(targets, `transfer.${attack}.${source}`))) {
          const cell = t.cell(checkId(attack, 'attack id'), checkId(source, 'source id'), checkId(target, 'target id'));
          cell.merge(Proportion.fromJSON(p as ProportionJSON));
        }
      }
    }
    return t;
  }

  summary(): TransferSummary {
    return mapCells(this.cells, (p) => {
      const s = p.summary();
      return { err: s.p, ci: s.ci, n: s.n };
    });
  }

  private cell(attack: string, source: string, target: string): Proportion {
    const sources = getOrCreate(this.cells, attack, () => new Map<string, Map<string, Proportion>>());
    const targets = getOrCreate(sources, source, () => new Map<string, Proportion>());
    return getOrCreate(targets, target, () => new Proportion());
  }
}

function mapCells<T>(cells: Cells, f: (p: Proportion) => T): Record<string, Record<string, Record<string, T>>> {
  const out: Record<string, Record<string, Record<string, T>>> = {};
  for (const [attack, sources] of sortedEntries(cells)) {
    const row: Record<string, Record<string, T>> = (out[attack] = {});
    for (const [source, targets] of sortedEntries(sources)) {
      const cellRow: Record<string, T> = (row[source] = {});
      for (const [target, p] of sortedEntries(targets)) cellRow[target] = f(p);
    }
  }
  return out;
}
