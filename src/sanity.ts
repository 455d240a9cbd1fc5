/**
 * Warnings about a request that runs but probably does not mean what its user meant: pure
 * functions, so that the CLI, the pipelines' `start` record and the library give the same words.
 * Each has a stable code, as errors do (src/errors.ts).
 */
import path from 'node:path';

export type SanityCode = 'EPS_ABOVE_RANGE' | 'ONNX_NO_NORMALISATION' | 'CALIBRATION_SMALL';

export interface SanityWarning {
  code: SanityCode;
  message: string;
}

/**
 * An attack budget beyond what the norm can use on images in [0,1] with `dim` values: L∞ ε ≥ 1
 * already reaches every image, L2 ε ≥ √dim and L0 ε ≥ dim too. An integer ε from 2 to 255 reads like
 * a budget in 0–255 units, so the warning suggests ε/255.
 *
 * @example
 *   epsWarning('pgd:eps=3', 'linf', 3, 784)?.message; // 'pgd:eps=3: L∞ ε = 3 is above 1, … did you mean eps=3/255?'
 */
export function epsWarning(spec: string, norm: 'linf' | 'l2' | 'l0', eps: number, dim: number): SanityWarning | undefined {
  const reach = norm === 'linf' ? 1 : norm === 'l2' ? Math.sqrt(dim) : dim;
  if (!(eps > reach)) return undefined;
  const name = norm === 'linf' ? 'L∞' : norm === 'l2' ? 'L2' : 'L0';
  const units = Number.isInteger(eps) && eps >= 2 && eps <= 255 && norm === 'linf' ? ` did you mean eps=${eps}/255?` : '';
  return {
    code: 'EPS_ABOVE_RANGE',
    message: `${spec}: ${name} ε = ${eps} is above ${Number(reach.toPrecision(4))}, the largest ${name} distance between two images in [0,1]^${dim}: every image is within reach, so robust accuracy is 0 by construction.${units}`,
  };
}

/**
 * An ONNX model file without the `model.onnx.json` sidecar that says how it wants its pixels: they
 * then go in as [0,1], and a model trained on normalised inputs scores lower with no error.
 */
export function onnxSidecarWarning(modelPath: string, exists: (file: string) => boolean): SanityWarning | undefined {
  if (!/\.onnx$/i.test(modelPath) || exists(`${modelPath}.json`)) return undefined;
  const base = path.basename(modelPath);
  return {
    code: 'ONNX_NO_NORMALISATION',
    message:
      `${base} has no sidecar ${base}.json: its pixels go in as [0,1], unnormalised. A model trained on normalised inputs ` +
      `(torchvision's MNIST transform: mean 0.1307, std 0.3081) then loses accuracy without an error; say how it wants them in ` +
      `${modelPath}.json, e.g. {"mean":[0.1307],"std":[0.3081]}.`,
  };
}

/** Calibration records above the threshold below which a quantile at rate `fpr` is mostly noise. */
export const MIN_TAIL_RECORDS = 10;

/**
 * A detector threshold calibrated to a false-positive rate `fpr` on `records` clean records rests on
 * about records × fpr of them; with fewer than {@link MIN_TAIL_RECORDS} the achieved rate can be far
 * from the one asked for.
 */
export function calibrationWarning(records: number, fpr: number): SanityWarning | undefined {
  if (!(fpr > 0) || records * fpr >= MIN_TAIL_RECORDS) return undefined;
  const needed = Math.ceil(MIN_TAIL_RECORDS / fpr);
  return {
    code: 'CALIBRATION_SMALL',
    message:
      `calibrated on ${records} clean record${records === 1 ? '' : 's'}: at a false-positive rate of ${fpr} the threshold rests on ` +
      `${Number((records * fpr).toPrecision(2))} of them, so the real rate may be far from ${fpr}; calibrate on at least ${needed} records.`,
  };
}
