// The coordinator's book of worker row caches and the worker's cache, together over epochs of
// reshuffled shards: after the first epoch no row travels again, every batch is assembled exactly,
// and a worker that lost its cache (new id) gets every row again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RowCacheBook } from './row-cache-book.ts';
import { RowCache } from '../../shared/training/row-cache.ts';
import { Sharder } from './sharder.ts';

const ROWS = 200;
const XB = 5;
const YB = 1;
const rowX = (r: number): number[] => Array.from({ length: XB }, (_, j) => (r * 7 + j) % 256);

function lease(book: RowCacheBook, cache: RowCache, id: string, indices: Uint32Array) {
  const fresh = book.plan(id, 'w1', cache.claim, indices);
  const x = new Uint8Array(fresh.flatMap((i) => rowX(indices[i]!)));
  const y = new Uint8Array(fresh.map((i) => indices[i]! % 10));
  return { fresh, batch: cache.assemble(Uint32Array.from(indices), Uint32Array.from(fresh), x, y) };
}

test('epochs after the first bring no rows; batches are exact; bytes down per epoch fall to 0', () => {
  const sharder = new Sharder(ROWS, 16, 42);
  const book = new RowCacheBook(ROWS);
  const cache = new RowCache(XB, YB, 1 << 20);
  const travelled: number[] = [];
  for (let epoch = 0; epoch < 3; epoch++) {
    let rows = 0;
    for (let s = 0; s < sharder.shardsPerEpoch; s++) {
      const idx = sharder.indices(epoch, s);
      const id = `l${epoch}-${s}`;
      const { fresh, batch } = lease(book, cache, id, idx);
      assert.ok(batch, `lease ${id} could not be assembled`);
      assert.deepEqual([...batch.x], [...idx].flatMap(rowX));
      assert.deepEqual([...batch.y], [...idx].map((r) => r % 10));
      rows += fresh.length;
      book.confirm(id);
    }
    travelled.push(rows);
  }
  assert.deepEqual(travelled, [ROWS, 0, 0]);
});

test('a row of a lease never pushed back still travels again; a lost cache (new id) starts over; capacity is respected', () => {
  const book = new RowCacheBook(ROWS);
  const cache = new RowCache(XB, YB, 1 << 20);
  const a = Uint32Array.from([1, 2, 3, 4]);
  lease(book, cache, 'l1', a); // never confirmed (no push)
  assert.equal(lease(book, cache, 'l2', a).fresh.length, 4, 'unconfirmed rows are sent again');
  book.confirm('l2');
  assert.equal(lease(book, cache, 'l3', a).fresh.length, 0);
  cache.reset();
  assert.equal(lease(book, cache, 'l4', a).fresh.length, 4, 'a fresh cache id gets every row');
  // Capacity: a worker promising 2 rows gets the others every time.
  const small = new RowCache(XB, YB, 4 * (XB + YB));
  assert.equal(small.capacity, 2);
  const b = Uint32Array.from([10, 11, 12, 13]);
  lease(book, small, 's1', b);
  book.confirm('s1');
  assert.equal(lease(book, small, 's2', b).fresh.length, 2);
  // A worker that does not have a row the book believes it has: assemble refuses (the loop resets).
  const liar = new RowCache(XB, YB, 1 << 20);
  const f = book.plan('x1', 'w1', liar.claim, b);
  book.confirm('x1');
  const again = book.plan('x2', 'w1', liar.claim, b);
  assert.equal(again.length, 0);
  assert.equal(liar.assemble(b, new Uint32Array(0), new Uint8Array(0), new Uint8Array(0)), null);
  assert.equal(f.length, 4);
  // Another worker using the same cache id gets every row.
  assert.equal(book.plan('y1', 'w2', liar.claim, b).length, 4);
});
