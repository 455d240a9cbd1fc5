/** Height × width × channels of one image. */
export type Shape = [number, number, number];

/** One image as every source yields it: pixels in [0,1], row-major height × width × channels. */
export interface ImageRecord {
  id: string;
  label?: number;
  shape: Shape;
  pixels: Float32Array;
}
