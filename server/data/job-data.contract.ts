// The JobData contract: one suite run against every implementation (job-data.test.ts): in-memory
// (memoryJobData) and on disk (ShardStore). `make` builds a JobData holding exactly `fixture`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Dataset } from './dataset.ts';
import type { JobData } from './job-data.ts';

/** 4 uint8 features and a class in 0..2 per row; 9 train rows, 5 test rows, every byte distinct by row. */
export const fixture: Dataset = (() => {
  const split = (n: number, base: number) => ({
    x: Uint8Array.from({ length: n * 4 }, (_, i) => (base + i * 3) % 256),
    y: Uint8Array.from({ length: n }, (_, r) => (r * 2 + base) % 3),
    count: n,
  });
  return { name: 'fixture', featureShape: [2, 2, 1], featureScale: 1 / 255, numClasses: 3, train: split(9, 0), test: split(5, 100) };
})();

export function runJobDataContract(name: string, make: () => JobData): void {
  const rowsOf = (s: 'train' | 'test', idx: number[]) => ({
    x: idx.flatMap((r) => [...fixture[s].x.subarray(r * 4, r * 4 + 4)]),
    y: idx.map((r) => fixture[s].y[r]!),
  });

  test(`${name}: counts and a uint8 classes spec`, () => {
    const d = make();
    assert.equal(d.count('train'), 9);
    assert.equal(d.count('test'), 5);
    assert.deepEqual(d.spec.featureShape, [2, 2, 1]);
    assert.deepEqual(d.spec.features, { dtype: 'uint8', scale: 1 / 255 });
    assert.equal(d.spec.target.kind, 'classes');
    d.close();
  });

  test(`${name}: gather copies rows in the asked order, repeats included`, () => {
    const d = make();
    const idx = [8, 0, 1, 2, 2, 5];
    const r = d.gather('train', idx);
    assert.equal(r.count, 6);
    assert.deepEqual([...r.x], rowsOf('train', idx).x);
    assert.deepEqual([...r.y], rowsOf('train', idx).y);
    assert.deepEqual([...d.gather('test', [4]).x], rowsOf('test', [4]).x);
    d.close();
  });

  test(`${name}: read gives the contiguous rows [start, end)`, () => {
    const d = make();
    const r = d.read('test', 1, 4);
    assert.equal(r.count, 3);
    assert.deepEqual([...r.x], rowsOf('test', [1, 2, 3]).x);
    assert.deepEqual([...r.y], rowsOf('test', [1, 2, 3]).y);
    assert.equal(d.read('train', 3, 3).count, 0);
    d.close();
  });
}
