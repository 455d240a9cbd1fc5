/**
 * `tinted-mnist:train|test`: MNIST as a 32×32×3 colour data set, for models that take colour
 * images (the residual CNN fixture of `fixtures/onnx/make.py` was trained on it). Each digit is
 * padded by 2 pixels on every side and drawn in a foreground colour on a background colour, both
 * fixed per image by a hash of its index and split:
 * byte = ⌊(bg·(255 − v) + fg·v + 127) / 255⌋ for the grey byte v. Integer arithmetic throughout,
 * so that `make.py` computes the same bytes. Ids are `tinted-mnist:SPLIT/INDEX`.
 */
import { Errors } from '../errors.js';
import type { OpenContext, RawItem, SourceKind } from './kind.js';
import { mnistFiles, MNIST_SPLITS, type MnistSplit } from './mnist.js';
import { readIdx } from './idx.js';
import type { Shape } from './record.js';

const SALT: Record<MnistSplit, number> = { train: 0x5eed0001, test: 0x5eed0002 };
const SIDE = 32;
const PAD = 2;
const TINTED: Shape = [SIDE, SIDE, 3];

/** A 32-bit integer hash (`mix` in `make.py`). */
function mix(value: number): number {
  let v = value >>> 0;
  v ^= v >>> 16;
  v = Math.imul(v, 0x45d9f3b) >>> 0;
  v ^= v >>> 16;
  v = Math.imul(v, 0x45d9f3b) >>> 0;
  v ^= v >>> 16;
  return v >>> 0;
}

/** The foreground and background colours (bytes) of image `index` of `split`. */
export function tintColours(index: number, split: MnistSplit): { fg: number[]; bg: number[] } {
  const base = (Math.imul(index, 2654435761) + SALT[split]) >>> 0;
  return {
    fg: [0, 1, 2].map((k) => 128 + (mix(base + 2 * k) % 128)),
    bg: [0, 1, 2].map((k) => mix(base + 2 * k + 1) % 96),
  };
}

/** A 28×28 grey MNIST image (pixels v/255) as its 32×32×3 tinted version. */
export function tint(grey: Float32Array, index: number, split: MnistSplit): Float32Array {
  const { fg, bg } = tintColours(index, split);
  const out = new Float32Array(SIDE * SIDE * 3);
  const inner = SIDE - 2 * PAD;
  for (let r = 0; r < SIDE; r++) {
    for (let c = 0; c < SIDE; c++) {
      const inside = r >= PAD && r < PAD + inner && c >= PAD && c < PAD + inner;
      const v = inside ? Math.round(grey[(r - PAD) * inner + (c - PAD)]! * 255) : 0;
      for (let k = 0; k < 3; k++) out[(r * SIDE + c) * 3 + k] = Math.floor((bg[k]! * (255 - v) + fg[k]! * v + 127) / 255) / 255;
    }
  }
  return out;
}

async function* tinted(split: MnistSplit, uri: string, ctx: OpenContext): AsyncGenerator<RawItem, void, undefined> {
  const inner: OpenContext = {
    offset: ctx.offset,
    seeked: (n) => ctx.seeked(n),
    declare: (info) => ctx.declare({ ...info, shape: TINTED }),
    signal: ctx.signal,
    stdin: ctx.stdin,
  };
  const files = mnistFiles(split, uri);
  for await (const item of readIdx({ ...files, idOf: (i) => `tinted-mnist:${split}/${i}` }, inner)) {
    if ('bad' in item) {
      yield item;
      continue;
    }
    const index = Number(item.record.id.slice(item.record.id.lastIndexOf('/') + 1));
    yield { record: { ...item.record, shape: [...TINTED], pixels: tint(item.record.pixels, index, split) }, where: item.where };
  }
}

export const tintedMnistSource: SourceKind = {
  schemes: ['tinted-mnist'],
  form: 'tinted-mnist:train | tinted-mnist:test',
  summary: 'MNIST padded to 32x32 and tinted with seeded colours per image (32x32x3), a colour data set for tests',
  prepare(ref) {
    const split = ref.rest;
    if (!(MNIST_SPLITS as readonly string[]).includes(split)) throw Errors.badSpec(ref.uri, `unknown MNIST split '${split}'`, [...MNIST_SPLITS]);
    return (ctx) => tinted(split as MnistSplit, ref.uri, ctx);
  },
};
