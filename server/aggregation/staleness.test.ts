import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeStaleness, stalenessScale } from './staleness.ts';

test('scales: inverse 1/(1+tau), inverse-sqrt 1/sqrt(1+tau), constant 1', () => {
  assert.equal(stalenessScale('inverse', 0), 1);
  assert.equal(stalenessScale('inverse', 3), 0.25);
  assert.equal(stalenessScale('inverse-sqrt', 3), 0.5);
  assert.equal(stalenessScale('inverse-sqrt', 8), 1 / 3);
  assert.equal(stalenessScale('constant', 50), 1);
});

test('judge accepts up to the bound with the rule scale', () => {
  const p = { rule: 'inverse' as const, maxStaleness: 4 };
  assert.deepEqual(judgeStaleness(p, 10, 10), { accept: true, tau: 0, scale: 1 });
  assert.deepEqual(judgeStaleness(p, 10, 6), { accept: true, tau: 4, scale: 0.2 });
  assert.deepEqual(judgeStaleness({ rule: 'inverse-sqrt', maxStaleness: 4 }, 10, 7), { accept: true, tau: 3, scale: 0.5 });
  assert.deepEqual(judgeStaleness({ rule: 'constant', maxStaleness: 4 }, 10, 6), { accept: true, tau: 4, scale: 1 });
});

test('refuses above the bound as stale, a future base as future', () => {
  const p = { rule: 'inverse' as const, maxStaleness: 4 };
  assert.deepEqual(judgeStaleness(p, 10, 5), { accept: false, tau: 5, reason: 'stale' });
  assert.deepEqual(judgeStaleness(p, 10, 11), { accept: false, tau: -1, reason: 'future' });
  assert.deepEqual(judgeStaleness({ rule: 'constant', maxStaleness: 0 }, 3, 2), { accept: false, tau: 1, reason: 'stale' });
  assert.deepEqual(judgeStaleness({ rule: 'constant', maxStaleness: 0 }, 3, 3), { accept: true, tau: 0, scale: 1 });
});
