/** The public surface of the data room: what code outside src/data/ may import. */
export type { ImageRecord, RecordMeta, Shape } from './record.js';
export { checkRecord, formatShape } from './validate.js';
export type { Declaration, OpenContext, RawItem, RecordReader, SourceKind, SourceRef } from './kind.js';
export { SOURCE_KINDS, parseSourceUri } from './kinds.js';
export {
  fromRecords,
  openSource,
  type OnBadRecord,
  type RecordSource,
  type RejectedRecord,
  type RejectSink,
  type SourceCounters,
  type SourceInfo,
  type SourceOptions,
} from './source.js';
export { toObservable, type ObservableOptions } from './observable.js';
export { collect, type Collected } from './collect.js';
export { inspectSource, type SourceSummary } from './inspect.js';
export { openRejectFile, type RejectFile } from './rejects.js';
export { decodePng } from './png-decode.js';
