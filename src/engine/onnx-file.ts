/**
 * Users' ONNX models (exported from PyTorch, Keras, …): the `.onnx` file and a small sidecar that
 * says how the model wants its pixels. Read in the main thread; the result is plain data (bytes and
 * JSON) that a worker turns into a session.
 *
 * The sidecar `MODEL.onnx.json` is optional:
 *
 * ```json
 * { "layout": "nchw", "mean": [0.1307], "std": [0.3081] }
 * ```
 *
 * `layout` is `nchw`, `nhwc` or `flat` (default: read from the input's rank and channel position);
 * without `mean`/`std` the model takes pixels in [0,1]; with them, (pixel − mean_c) / std_c per
 * channel, as torchvision's `Normalize` does. `input` and `output` name the tensors where the graph
 * has several.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { Errors } from '../errors.js';
import { graphSignature, type Dim } from './graph.js';
import { userGraphs } from './user-graphs.js';

export const ONNX_LAYOUTS = ['nchw', 'nhwc', 'flat'] as const;
export type OnnxLayout = (typeof ONNX_LAYOUTS)[number];

export const sidecarSchema = z
  .object({
    layout: z
      .string()
      .transform((s) => s.toLowerCase())
      .pipe(z.enum(ONNX_LAYOUTS))
      .optional(),
    mean: z.array(z.number()).min(1).optional(),
    std: z.array(z.number().positive()).min(1).optional(),
    input: z.string().min(1).optional(),
    output: z.string().min(1).optional(),
  })
  .strict();
export type OnnxSidecar = z.infer<typeof sidecarSchema>;

/** How to feed and read an ONNX model: resolved from its graph and its sidecar. Plain JSON. */
export interface OnnxInputSpec {
  format: 'onnx';
  input: string;
  output: string;
  layout: OnnxLayout;
  /** The image the model takes: height, width, channels. */
  shape: [number, number, number];
  /** A fixed batch size the graph was exported with; null for a symbolic one. */
  batch: number | null;
  /** Per channel; [0] and [1] for pixels in [0,1]. */
  mean: number[];
  std: number[];
  /**
   * Why the model runs black-box (its graph has an op without a gradient rule: the
   * `NOT_DIFFERENTIABLE` message), or null: its input gradients are derived, and every attack runs
   * on it. Settled when the model is loaded.
   */
  blackBox: string | null;
}

function fixed(dims: Dim[], from: number, where: string, name: string): number[] {
  const rest = dims.slice(from);
  if (rest.some((d) => typeof d !== 'number' || d <= 0)) {
    throw Errors.badModel(where, `input '${name}' has shape [${dims.join(', ')}]: only the batch dimension may be symbolic`);
  }
  return rest as number[];
}

function guessLayout(dims: Dim[]): OnnxLayout | undefined {
  if (dims.length === 2) return 'flat';
  if (dims.length !== 4) return undefined;
  const ch = (d: Dim) => d === 1 || d === 3;
  if (ch(dims[1]!) && !ch(dims[3]!)) return 'nchw';
  if (ch(dims[3]!) && !ch(dims[1]!)) return 'nhwc';
  return undefined;
}

/**
 * The input spec of an ONNX model from its bytes and sidecar: which tensors, what layout and
 * image shape, what normalisation. Inconsistent declarations are `BAD_MODEL` errors.
 */
export function resolveOnnxInput(bytes: Uint8Array, sidecar: OnnxSidecar, where: string): OnnxInputSpec {
  let sig;
  try {
    sig = graphSignature(bytes);
  } catch (e) {
    throw Errors.badModel(where, `not an ONNX model: ${(e as Error).message}`);
  }
  const pick = <T extends { name: string }>(list: T[], wanted: string | undefined, what: string): T => {
    if (wanted) {
      const found = list.find((v) => v.name === wanted);
      if (!found) throw Errors.badModel(where, `no ${what} named '${wanted}'; the graph has ${list.map((v) => v.name).join(', ')}`);
      return found;
    }
    if (list.length !== 1) throw Errors.badModel(where, `the graph has ${list.length} ${what}s (${list.map((v) => v.name).join(', ')}): name one in the sidecar`);
    return list[0]!;
  };
  const input = pick(sig.inputs, sidecar.input, 'input');
  const output = pick(sig.outputs, sidecar.output, 'output');
  const layout = sidecar.layout ?? guessLayout(input.dims);
  if (!layout) {
    throw Errors.badModel(where, `cannot tell the layout of input '${input.name}' [${input.dims.join(', ')}]: declare "layout" (nchw, nhwc or flat) in the sidecar`);
  }
  const rank = layout === 'flat' ? 2 : 4;
  if (input.dims.length !== rank) {
    throw Errors.badModel(where, `layout ${layout} needs a rank-${rank} input, but '${input.name}' is [${input.dims.join(', ')}]`);
  }
  const rest = fixed(input.dims, 1, where, input.name);
  let shape: [number, number, number];
  if (layout === 'nchw') shape = [rest[1]!, rest[2]!, rest[0]!];
  else if (layout === 'nhwc') shape = [rest[0]!, rest[1]!, rest[2]!];
  else {
    const side = Math.round(Math.sqrt(rest[0]!));
    if (side * side !== rest[0]) throw Errors.badModel(where, `flat input of ${rest[0]} values is not a square one-channel image`);
    shape = [side, side, 1];
  }
  const channels = shape[2];
  const perChannel = (values: number[] | undefined, fill: number, what: string): number[] => {
    if (!values) return new Array<number>(channels).fill(fill);
    if (values.length === 1) return new Array<number>(channels).fill(values[0]!);
    if (values.length !== channels) throw Errors.badModel(where, `${what} has ${values.length} values for ${channels} channels`);
    return values;
  };
  if ((sidecar.mean === undefined) !== (sidecar.std === undefined)) throw Errors.badModel(where, 'the sidecar declares mean without std, or std without mean');
  const batch = input.dims[0];
  return {
    format: 'onnx',
    input: input.name,
    output: output.name,
    layout,
    shape,
    batch: typeof batch === 'number' && batch > 0 ? batch : null,
    mean: perChannel(sidecar.mean, 0, 'mean'),
    std: perChannel(sidecar.std, 1, 'std'),
    blackBox: null,
  };
}

/**
 * Reads `file` and its optional sidecar `file.json`, and differentiates its graph once, so that a
 * graph with an op without a gradient rule is known (and said, in `blackBox`) before any batch.
 */
export async function readOnnxFile(file: string): Promise<{ bytes: Uint8Array; spec: OnnxInputSpec }> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    throw Errors.badModel(file, `cannot read the ONNX file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let sidecar: OnnxSidecar = {};
  let text: string | undefined;
  try {
    text = await readFile(`${file}.json`, 'utf8');
  } catch {
    text = undefined; // no sidecar: everything from the graph, pixels in [0,1]
  }
  if (text !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw Errors.badModel(`${file}.json`, `not JSON: ${(e as Error).message}`);
    }
    const parsed = sidecarSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw Errors.badModel(`${file}.json`, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    sidecar = parsed.data;
  }
  const spec = resolveOnnxInput(bytes, sidecar, file);
  const graphs = await userGraphs(bytes, spec, file);
  return { bytes, spec: { ...spec, blackBox: graphs.blackBox ?? null } };
}
