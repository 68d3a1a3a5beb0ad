import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leaseDeadlineMs, policyFor, updateSpeed } from './deadlines.ts';

test('unknown workers get the default deadline; measured ones get slack x expected, clamped', () => {
  const p = policyFor(20_000);
  assert.equal(leaseDeadlineMs(p, null, 128), 20_000);
  assert.equal(leaseDeadlineMs(p, 0.01, 128), 5_000, 'fast worker: clamped to the minimum');
  assert.equal(leaseDeadlineMs(p, 50, 128), 25_600, 'slow worker: 4 x 50 ms x 128 = 25.6 s, longer than the default');
  assert.equal(leaseDeadlineMs(p, 10_000, 128), 200_000, 'clamped to 10x the default');
});

test('speed is an EWMA of ms per example', () => {
  const a = updateSpeed(null, 1280, 128);
  assert.equal(a, 10);
  assert.equal(updateSpeed(a, 2560, 128), 0.7 * 10 + 0.3 * 20);
});
