/**
 * `fashion-mnist:train` and `fashion-mnist:test`: Zalando's Fashion-MNIST (28×28×1, 10 classes),
 * read from the IDX files of Debian's `dataset-fashion-mnist` package. Without the package the
 * source is a `BAD_SOURCE` error naming it and the command that installs it. Ids are
 * `fashion-mnist:SPLIT/INDEX`.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Errors } from '../errors.js';
import { readIdx } from './idx.js';
import type { SourceKind } from './kind.js';

/** Where Debian's package puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const SPLITS = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

/** The source over the package's files in `dir` (another folder only for tests). */
export function fashionMnistSource(dir: string = FASHION_MNIST_DIR): SourceKind {
  return {
    schemes: ['fashion-mnist'],
    form: 'fashion-mnist:train | fashion-mnist:test',
    summary: "Fashion-MNIST from Debian's dataset-fashion-mnist package (60,000 / 10,000 images, 28x28x1)",
    prepare(ref) {
      const split = ref.rest;
      if (!Object.hasOwn(SPLITS, split)) throw Errors.badSpec(ref.uri, `unknown Fashion-MNIST split '${split}'`, Object.keys(SPLITS));
      const files = SPLITS[split as keyof typeof SPLITS];
      return async function* (ctx) {
        const images = join(dir, files.images);
        try {
          await access(images);
        } catch {
          throw Errors.badSource(
            { file: images },
            "Fashion-MNIST is not installed: it comes from Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)",
          );
        }
        yield* readIdx({ images, labels: join(dir, files.labels), idOf: (i) => `fashion-mnist:${split}/${i}` }, ctx);
      };
    },
  };
}
