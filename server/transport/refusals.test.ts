// RefusalBook, the transport's memory of job:refuse: (worker, job) pairs with their reason, kept per
// pair across reconnections (worker ids are stable) and bounded in size, oldest forgotten first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RefusalBook } from './refusals.ts';
import type { WorkerId } from '../leases/lease-manager.ts';

const w = (id: string): WorkerId => id as WorkerId;

test('a refusal is per worker and per job', () => {
  const book = new RefusalBook();
  book.record(w('w1'), 'cnn', "Kernel 'Conv2DBackpropFilter' not registered");
  assert.equal(book.reason(w('w1'), 'cnn'), "Kernel 'Conv2DBackpropFilter' not registered");
  assert.equal(book.reason(w('w1'), 'mlp'), undefined);
  assert.equal(book.reason(w('w2'), 'cnn'), undefined);
  book.record(w('w1'), 'mlp', 'non-finite gradients');
  assert.deepEqual(book.jobsRefusedBy(w('w1')).sort(), ['cnn', 'mlp']);
  assert.deepEqual(book.jobsRefusedBy(w('w2')), []);
});

test('the oldest refusal is forgotten past the bound; a repeated one counts as new', () => {
  const book = new RefusalBook(2);
  book.record(w('a'), 'j', 'r1');
  book.record(w('b'), 'j', 'r2');
  book.record(w('a'), 'j', 'r3'); // refreshes a
  book.record(w('c'), 'j', 'r4'); // drops b, the oldest
  assert.equal(book.size, 2);
  assert.equal(book.reason(w('b'), 'j'), undefined);
  assert.equal(book.reason(w('a'), 'j'), 'r3');
  assert.equal(book.reason(w('c'), 'j'), 'r4');
});
