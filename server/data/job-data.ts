// A job's examples as the coordinator serves them: fixed-size rows (see shared/data/data-spec.ts)
// read by index. Two implementations: `memoryJobData` over an in-memory Dataset (the built-in
// MNIST demos, tests) and the on-disk shard store a submitted job's files are converted into
// (server/data/store/shard-store.ts), which reads only the rows a lease needs.

import type { DataSpec } from '../../shared/data/data-spec.ts';
import { classDtype, featureRowBytes, targetRowBytes } from '../../shared/data/data-spec.ts';
import type { Dataset } from './dataset.ts';

export type SplitName = 'train' | 'test';

/** Rows laid end to end: `x` features (spec.features dtype), `y` targets (spec.target layout). */
export interface Rows {
  readonly x: Uint8Array;
  readonly y: Uint8Array;
  readonly count: number;
}

export interface JobData {
  readonly spec: DataSpec;
  count(split: SplitName): number;
  /** Copies the rows `indices` of a split, in that order (one lease's payload). */
  gather(split: SplitName, indices: ArrayLike<number>): Rows;
  /** Rows [start, end) of a split (evaluation reads the test split in chunks). */
  read(split: SplitName, start: number, end: number): Rows;
  close(): void;
}

/** An in-memory Dataset (uint8 features, uint8 class labels) as JobData; views, no copy. */
export function memoryJobData(ds: Dataset): JobData {
  const spec: DataSpec = {
    featureShape: ds.featureShape,
    features: { dtype: 'uint8', scale: ds.featureScale },
    target: { kind: 'classes', numClasses: ds.numClasses, dtype: classDtype(ds.numClasses) },
  };
  if (spec.target.kind === 'classes' && spec.target.dtype !== 'uint8') throw new Error('memoryJobData: more than 256 classes');
  const xRow = featureRowBytes(spec);
  const yRow = targetRowBytes(spec.target);
  const split = (s: SplitName) => (s === 'train' ? ds.train : ds.test);
  return {
    spec,
    count: (s) => split(s).count,
    gather(s, indices) {
      const src = split(s);
      const x = new Uint8Array(indices.length * xRow);
      const y = new Uint8Array(indices.length * yRow);
      for (let i = 0; i < indices.length; i++) {
        const r = indices[i]!;
        x.set(src.x.subarray(r * xRow, (r + 1) * xRow), i * xRow);
        y.set(src.y.subarray(r * yRow, (r + 1) * yRow), i * yRow);
      }
      return { x, y, count: indices.length };
    },
    read(s, start, end) {
      const src = split(s);
      return { x: src.x.subarray(start * xRow, end * xRow), y: src.y.subarray(start * yRow, end * yRow), count: end - start };
    },
    close() {},
  };
}
