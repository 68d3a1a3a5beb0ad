// Checks the composed wasm UnsortedSegmentSum against cpu (duplicates, empty segments, ids out of
// range, rank 1-3 data, int32) and the GatherV2 gradient that an Embedding layer trains through.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { compareWithCpu, REL_TOLERANCE, runOn, seeded, setUpBackends, sizeOf } from './testing.ts';

describe('wasm UnsortedSegmentSum', () => {
  before(setUpBackends);

  const cases: { x: number[]; ids: number[]; segments: number }[] = [
    { x: [6], ids: [0, 3, 0, 2, 3, 3], segments: 5 }, // segment 1 and 4 stay empty
    { x: [6, 3, 2], ids: [4, 1, 1, 0, 4, 2], segments: 5 },
    { x: [40, 16], ids: Array.from({ length: 40 }, (_, i) => (i * 7) % 13), segments: 13 },
  ];
  for (const c of cases) {
    test(`x ${c.x}, ${c.segments} segments, matches cpu`, async () => {
      const xv = seeded(sizeOf(c.x), 21);
      const r = await compareWithCpu(() =>
        tf.unsortedSegmentSum(tf.tensor(xv, c.x), tf.tensor1d(c.ids, 'int32'), c.segments));
      assert.deepEqual(r.wasm.shape, [c.segments, ...c.x.slice(1)]);
      assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel}`);
    });
  }

  test('drops ids outside [0, numSegments) like cpu, without writing out of bounds', async () => {
    const xv = [1, 2, 3, 4, 5, 6, 7, 8];
    const ids = [0, -1, 2, 3, 7, 2, 100, 0];
    const r = await compareWithCpu(() =>
      tf.unsortedSegmentSum(tf.tensor2d(xv, [4, 2]).reshape([8]), tf.tensor1d(ids, 'int32'), 4));
    assert.deepEqual(Array.from(r.wasm.values), [9, 0, 9, 4]);
    assert.deepEqual(Array.from(r.wasm.values), Array.from(r.cpu.values));
  });

  test('sums int32 data exactly', async () => {
    const wasm = await runOn('wasm', () =>
      tf.unsortedSegmentSum(tf.tensor1d([5, 6, 7, 8], 'int32'), tf.tensor1d([1, 1, 0, 1], 'int32'), 2));
    assert.deepEqual(Array.from(wasm.values), [7, 19]);
  });

  test('gradient of tf.gather (Embedding lookup, repeated ids) matches cpu', async () => {
    const table = seeded(10 * 4, 22);
    const ids = [3, 1, 3, 9, 0, 3, 1, 7];
    const r = await compareWithCpu(() => {
      const f = (t: tf.Tensor) => tf.sum(tf.sin(tf.gather(t, tf.tensor1d(ids, 'int32'))));
      return tf.grad(f)(tf.tensor2d(table, [10, 4]));
    });
    assert.deepEqual(r.wasm.shape, [10, 4]);
    assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel}`);
  });
});
