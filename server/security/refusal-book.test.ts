// Refusal counts: per name and code, totals, bounded (the least recently refused name goes first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RefusalCounts } from './refusal-book.ts';
import { WorkerCredentials, workerSecretFor } from './credentials.ts';

test('refusals are counted per name and code, with totals; past the bound the stalest name is dropped', () => {
  const r = new RefusalCounts(3);
  r.count('w-a', 'RATE_LIMITED', 1);
  r.count('w-a', 'RATE_LIMITED', 2);
  r.count('w-a', 'TOO_MANY_LEASES', 3);
  r.count('address 1.2.3.4', 'RATE_LIMITED', 4);
  assert.deepEqual(r.of('w-a'), { RATE_LIMITED: 2, TOO_MANY_LEASES: 1 });
  r.count('w-b', 'BACKPRESSURE', 5);
  r.count('w-c', 'BACKPRESSURE', 6);
  assert.equal(r.size, 3);
  assert.deepEqual(r.of('w-a'), {}, 'w-a was the least recently refused');
  const snap = r.snapshot();
  assert.deepEqual(snap.totals, { RATE_LIMITED: 3, TOO_MANY_LEASES: 1, BACKPRESSURE: 2 });
  assert.equal(snap.top.length, 3);
});

test('the worker secret is made once (0600) and kept; a truncated one is replaced', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flock-secret-'));
  try {
    const a = workerSecretFor(dir);
    const b = workerSecretFor(dir);
    assert.deepEqual(a, b);
    assert.equal(statSync(path.join(dir, 'worker-secret')).mode & 0o777, 0o600);
    const cred = new WorkerCredentials(a).issue('w-x1234567', 5);
    writeFileSync(path.join(dir, 'worker-secret'), 'short\n');
    const c = workerSecretFor(dir);
    assert.notDeepEqual(c, a);
    assert.equal(new WorkerCredentials(c).verify('w-x1234567', cred), false, 'a new secret voids old credentials');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
