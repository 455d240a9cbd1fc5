/** One image as every source yields it: pixels in [0,1], row-major height × width × channels. */
export interface ImageRecord {
  id: string;
  label?: number;
  shape: [number, number, number];
  pixels: Float32Array;
}
