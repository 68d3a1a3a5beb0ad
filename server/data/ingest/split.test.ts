import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heldOut, splitPicker } from './split.ts';

const pick = (seed: number, total: number, held: number) => {
  const p = splitPicker(seed, total, held);
  return Array.from({ length: total }, (_, i) => i).filter(() => p());
};

test('holds out exactly the asked number of rows, the same ones for the same seed', () => {
  for (const [total, held] of [[10, 2], [1000, 200], [7, 6], [5, 1]] as const) {
    const a = pick(42, total, held);
    assert.equal(a.length, held);
    assert.deepEqual(pick(42, total, held), a);
  }
  assert.notDeepEqual(pick(1, 1000, 200), pick(2, 1000, 200));
});

test('each row is about equally likely to be held out', () => {
  const hits = new Array<number>(10).fill(0);
  for (let s = 0; s < 2000; s++) for (const i of pick(s, 10, 3)) hits[i]!++;
  for (const h of hits) assert.ok(Math.abs(h - 600) < 100, `row held ${h} times of an expected 600`);
});

test('heldOut keeps at least one row on each side', () => {
  assert.equal(heldOut(100, 0.2), 20);
  assert.equal(heldOut(3, 0.1), 1);
  assert.equal(heldOut(2, 0.5), 1);
});
