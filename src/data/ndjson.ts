/**
 * `ndjson:FILE`, `ndjson:-` (or `-` alone) for stdin: one JSON object per line,
 *
 *   {"id": "a1", "label": 3, "pixels": [0, 12, …, 255], "scale": 255, "shape": [28, 28, 1]}
 *   {"id": "a2", "png": "iVBORw0KGgo…"}
 *
 * `id` is a non-empty string or a number (kept as its decimal text). `pixels` are divided by `scale`
 * (1, the default, or 255); `null` stands for a NaN (JSON has none) and is rejected as one. `shape`
 * defaults to [28, 28, 1] for 784 pixels and is required otherwise. `png` is a base64 PNG (see
 * png-decode.ts for channels). Blank lines are not records and are passed over; line numbers count
 * every line from 1.
 */
import { open } from 'node:fs/promises';
import { z } from 'zod';
import { Errors, type Location } from '../errors.js';
import { ByteReader, fileChunks } from './byte-reader.js';
import type { OpenContext, RawItem, SourceKind } from './kind.js';
import { decodePng } from './png-decode.js';
import type { ImageRecord, RecordMeta, Shape } from './record.js';
import { formatShape, sameShape } from './validate.js';

/**
 * A longer line is a bad record and is dropped as it streams past, never held whole. A line held
 * costs about 15 bytes of memory per byte at its peak (measured on a pixel array of `0,`s: the
 * bytes, the string, the parsed array, the pixels), so 16 MiB (a 1500² RGB image as 0–255 values,
 * a PNG of about 12 MB) costs ~250 MB; under the old limit of 64 MiB a 50 MB line cost 1.6 GB.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

const MNIST_SHAPE: Shape = [28, 28, 1];
const dim = z.number().int().positive();

const LineSchema = z.object({
  id: z.union([z.string().min(1), z.number()], { error: 'id is required: a non-empty string or a number' }),
  label: z.number({ error: 'label must be a number' }).optional(),
  // Checked by hand in parseLine: a schema array would copy a pixel array of millions of values.
  pixels: z.custom<unknown[]>((v) => Array.isArray(v), { error: 'pixels must be an array of numbers' }).optional(),
  scale: z.union([z.literal(1), z.literal(255)], { error: 'scale must be 1 or 255' }).optional(),
  shape: z.tuple([dim, dim, dim], { error: 'shape must be [height, width, channels], positive integers' }).optional(),
  png: z.string({ error: 'png must be a base64 string' }).optional(),
});

/** Top-level messages already name their field; nested ones get a path such as `pixels[3]`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      if (issue.path.length <= 1) return issue.message;
      const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

const RECORD_FIELDS = new Set(['id', 'label', 'pixels', 'scale', 'shape', 'png']);

/** The line's other fields whose values are strings, finite numbers or booleans; objects and arrays are not kept. */
function metaOf(line: Record<string, unknown>): RecordMeta | undefined {
  let meta: RecordMeta | undefined;
  for (const [key, value] of Object.entries(line)) {
    if (RECORD_FIELDS.has(key)) continue;
    if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) (meta ??= {})[key] = value;
  }
  return meta;
}

/** Turns one line of text into a candidate record, or a bad record naming the line. */
function parseLine(text: string, at: Location): RawItem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { bad: Errors.badRecord(at, `not JSON: ${(e as Error).message}`) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { bad: Errors.badRecord(at, 'not a JSON object') };
  }
  const rawId = (value as { id?: unknown }).id;
  const guessedId = typeof rawId === 'string' && rawId !== '' ? rawId : typeof rawId === 'number' ? String(rawId) : undefined;
  const parsed = LineSchema.safeParse(value);
  const where: Location = guessedId === undefined ? at : { ...at, id: guessedId };
  if (!parsed.success) return { bad: Errors.badRecord(where, describeIssues(parsed.error)) };
  const line = parsed.data;
  const id = String(line.id);
  if ((line.pixels === undefined) === (line.png === undefined)) {
    return { bad: Errors.badRecord(where, 'exactly one of pixels and png is required') };
  }
  let shape: Shape;
  let pixels: Float32Array;
  if (line.png !== undefined) {
    try {
      ({ shape, pixels } = decodePng(Buffer.from(line.png, 'base64')));
    } catch (e) {
      return { bad: Errors.badRecord(where, `png does not decode: ${(e as Error).message}`) };
    }
    if (line.shape && !sameShape(line.shape, shape)) {
      return { bad: Errors.badRecord(where, `png decodes to ${formatShape(shape)} but shape says ${formatShape(line.shape)}`) };
    }
  } else {
    const values = line.pixels!;
    if (line.shape) shape = line.shape;
    else if (values.length === 784) shape = MNIST_SHAPE;
    else return { bad: Errors.badRecord(where, `no shape given, and ${values.length} pixels are not 784 (28x28x1)`) };
    const scale = line.scale ?? 1;
    pixels = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null) pixels[i] = Number.NaN;
      else if (typeof v === 'number') pixels[i] = v / scale;
      else return { bad: Errors.badRecord(where, `pixels[${i}]: expected a number (or null for NaN), got ${JSON.stringify(v)?.slice(0, 40) ?? typeof v}`) };
    }
  }
  const record: ImageRecord = { id, shape, pixels };
  if (line.label !== undefined) record.label = line.label;
  const meta = metaOf(value as Record<string, unknown>);
  if (meta) record.meta = meta;
  return { record, where };
}

async function* readNdjson(path: string, ctx: OpenContext): AsyncGenerator<RawItem, void, undefined> {
  const stdin = path === '-';
  const file = stdin ? 'stdin' : path;
  let reader: ByteReader;
  let close = async () => {};
  if (stdin) {
    // stdin belongs to the process: stop reading it on return, never destroy it.
    reader = new ByteReader(ctx.stdin.iterator({ destroyOnReturn: false }));
  } else {
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      throw Errors.badSource({ file }, `cannot open: ${(e as Error).message}`);
    }
    const fh = handle;
    reader = new ByteReader(fileChunks(fh, 0, ctx.signal));
    close = () => fh.close();
  }
  try {
    for (let line = 1; ; line++) {
      const got = await reader.readLine(MAX_LINE_BYTES);
      if (!got) return;
      if (got.tooLong) {
        yield { bad: Errors.badRecord({ file, line }, `the line is longer than ${MAX_LINE_BYTES} bytes`) };
        continue;
      }
      const text = got.bytes.toString('utf8');
      if (text.trim() === '') continue;
      yield parseLine(text, { file, line });
    }
  } finally {
    await reader.close();
    await close();
  }
}

export const ndjsonSource: SourceKind = {
  schemes: ['ndjson'],
  form: 'ndjson:FILE | ndjson:- | -',
  summary: 'one JSON object per line: id, label?, pixels (+ scale, shape) or png (base64); - is stdin',
  prepare(ref) {
    if (ref.rest === '') throw Errors.badSpec(ref.uri, 'expected ndjson:FILE or ndjson:- for stdin');
    return (ctx) => readNdjson(ref.rest, ctx);
  },
};
