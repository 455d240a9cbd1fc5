/** Height × width × channels of one image. */
export type Shape = [number, number, number];

/** One image as every source yields it: pixels in [0,1], row-major height × width × channels. */
export interface ImageRecord {
  id: string;
  label?: number;
  shape: Shape;
  pixels: Float32Array;
  /**
   * The source's other scalar fields of the record (an NDJSON line's `source`, `uploader`, …): passed
   * through to the audit's verdict, where `--group-by` reads them.
   */
  meta?: RecordMeta;
}

export type RecordMeta = Record<string, string | number | boolean>;
