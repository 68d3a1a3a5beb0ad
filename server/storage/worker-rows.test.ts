// Pruning of worker records that never completed a lease: the decision alone, applied to a store
// with a fake clock, and a coordinator starting on a data folder that holds such records.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeClock } from '../../shared/clock.ts';
import type { StoredWorker } from './state-store.ts';
import { MemoryStateStore } from './memory-state-store.ts';
import { SqliteStateStore } from './sqlite-state-store.ts';
import { pruneWorkerRows, workerRowsToPrune } from './worker-rows.ts';
import { startCoordinator } from '../coordinator.ts';

const HOUR = 3600_000;
const row = (workerId: string, leasesDone: number, lastSeenAt: number): StoredWorker => ({
  workerId, firstSeenAt: lastSeenAt - 1000, lastSeenAt, capabilities: { backend: 'wasm' }, leasesDone, accepted: leasesDone, refused: 0, msPerSample: leasesDone > 0 ? 0.5 : null,
});

test('the decision: only records with no completed lease, idle at least maxIdleMs', () => {
  const now = 100 * HOUR;
  const rows = [row('old-idle', 0, now - 25 * HOUR), row('exactly', 0, now - 24 * HOUR), row('recent', 0, now - 23 * HOUR), row('old-worked', 1, now - 500 * HOUR), row('refused-only', 2, now - 500 * HOUR)];
  assert.deepEqual(workerRowsToPrune(rows, now, { maxIdleMs: 24 * HOUR }), ['old-idle', 'exactly']);
  assert.deepEqual(workerRowsToPrune(rows, now, { maxIdleMs: 1000 * HOUR }), []);
  assert.deepEqual(workerRowsToPrune([], now, { maxIdleMs: 0 }), []);
});

test('applied to a store: the idle lease-less records go as the clock passes their age, the others stay', () => {
  const clock = new FakeClock(10 * HOUR);
  const s = new MemoryStateStore();
  s.putWorker(row('a', 0, clock.now()));
  s.putWorker(row('b', 0, clock.now() + HOUR));
  s.putWorker(row('c', 3, clock.now()));
  assert.equal(pruneWorkerRows(s, clock, { maxIdleMs: 2 * HOUR }), 0);
  clock.advance(2 * HOUR);
  assert.equal(pruneWorkerRows(s, clock, { maxIdleMs: 2 * HOUR }), 1);
  assert.deepEqual(s.listWorkers().map((w) => w.workerId).sort(), ['b', 'c']);
  clock.advance(HOUR);
  assert.equal(pruneWorkerRows(s, clock, { maxIdleMs: 2 * HOUR }), 1);
  assert.deepEqual(s.listWorkers().map((w) => w.workerId), ['c']);
});

test('a coordinator starting on a data folder prunes the old lease-less worker records, keeps the rest', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-rows-'));
  const clock = new FakeClock(1_700_000_000_000);
  const now = clock.now();
  const before = new SqliteStateStore(path.join(dataDir, 'flock.db'));
  for (let i = 0; i < 500; i++) before.putWorker(row(`hello-only-${i}`, 0, now - 48 * HOUR));
  before.putWorker(row('hello-only-recent', 0, now - HOUR));
  before.putWorker(row('worked', 7, now - 48 * HOUR));
  await before.durable();
  before.close();
  const lines: string[] = [];
  const c = await startCoordinator({ port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: null, clock, log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) } });
  try {
    assert.deepEqual(c.state.listWorkers().map((w) => w.workerId).sort(), ['hello-only-recent', 'worked']);
    assert.match(lines.join('\n'), /pruned 500 record\(s\) of workers that never completed a lease/);
  } finally {
    await c.close();
  }
  const after = new SqliteStateStore(path.join(dataDir, 'flock.db'));
  assert.equal(after.listWorkers().length, 2, 'the deletion is durable');
  after.close();
  await rm(dataDir, { recursive: true, force: true });
});
