// Runs the StateStore contract against every implementation: memory, SQLite, and Redis (a private
// redis-server per file; skipped, saying why, where redis-server is not installed).
import { after, before } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { runStateStoreContract, runStepColumnsContract } from './state-store.contract.ts';
import { MemoryStateStore } from './memory-state-store.ts';
import { SqliteStateStore } from './sqlite-state-store.ts';
import { RedisStateStore } from './redis-state-store.ts';
import { redisMissing, startRedis, type RedisFixture } from './testing/redis-server.ts';

runStateStoreContract('memory', () => new MemoryStateStore());

let file = '';
runStateStoreContract(
  'sqlite',
  () => {
    file = path.join(mkdtempSync(path.join(tmpdir(), 'flock-sqlite-')), 'state.db');
    return new SqliteStateStore(file);
  },
  (s) => {
    s.close();
    return new SqliteStateStore(file);
  },
);

runStepColumnsContract('memory', () => new MemoryStateStore());
runStepColumnsContract(
  'sqlite',
  () => {
    file = path.join(mkdtempSync(path.join(tmpdir(), 'flock-sqlite-')), 'state.db');
    return new SqliteStateStore(file);
  },
  (s) => {
    s.close();
    return new SqliteStateStore(file);
  },
);

test('sqlite group commit: the writes of one event-loop turn are one transaction, committed before durable() resolves', async () => {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'flock-sqlite-')), 'state.db');
  const s = new SqliteStateStore(f, 'FULL');
  const before = s.commits;
  // Three pushes' writes (update, lease delete, worker record) in one turn.
  for (let v = 1; v <= 3; v++) {
    s.appendUpdate({ jobId: 'a', version: v, step: v, scale: 1, leaseId: `l${v}`, workerId: 'w', epoch: 0, shard: v, baseVersion: 0, lr: 0.1, staleness: 0, samples: 8, loss: null, at: v, gradient: new Uint8Array(4) });
    s.deleteLease('a', `l${v}`);
    s.putWorker({ workerId: 'w', firstSeenAt: 0, lastSeenAt: v, capabilities: null, leasesDone: v, accepted: v, refused: 0, msPerSample: null });
  }
  // Not yet visible to another connection: the transaction is still open.
  const other = new Database(f, { readonly: true });
  assert.equal((other.prepare('SELECT COUNT(*) AS n FROM updates').get() as { n: number }).n, 0);
  await s.durable();
  assert.equal(s.commits - before, 1, 'one commit for the batch');
  assert.equal((other.prepare('SELECT COUNT(*) AS n FROM updates').get() as { n: number }).n, 3);
  other.close();
  s.close();
});
test('sqlite: a log written before the exclusion mark gains the column and keeps its records', async () => {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'flock-sqlite-')), 'state.db');
  const old = new Database(f);
  old.exec(`CREATE TABLE updates (job_id TEXT NOT NULL, version INTEGER NOT NULL, lease_id TEXT NOT NULL, worker_id TEXT NOT NULL,
    epoch INTEGER NOT NULL, shard INTEGER NOT NULL, base_version INTEGER NOT NULL, lr REAL NOT NULL, staleness INTEGER NOT NULL,
    samples INTEGER NOT NULL, loss REAL, at INTEGER NOT NULL, gradient BLOB, step INTEGER, scale REAL, PRIMARY KEY (job_id, version));
    INSERT INTO updates VALUES ('a', 1, 'l1', 'w', 0, 0, 0, 0.1, 0, 8, NULL, 1, X'00000000', 1, 1);
    INSERT INTO updates VALUES ('a', 2, 'l2', 'w', 0, 1, 0, 0.1, 0, 8, NULL, 2, X'00000000', 1, 1);`);
  old.close();
  const s = new SqliteStateStore(f);
  assert.deepEqual(s.updatesAfter('a', 0).map((u) => u.excluded ?? false), [false, false]);
  s.excludeUpdates('a', [2]);
  await s.durable();
  assert.deepEqual(s.updatesAfter('a', 0).map((u) => u.excluded ?? false), [false, true]);
  s.close();
});
const skip = redisMissing();
let redis: RedisFixture | null = null;
let n = 0;
let prefix = '';
before(async () => {
  if (!skip) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});
runStateStoreContract(
  'redis',
  () => {
    prefix = `t${++n}`;
    return RedisStateStore.open(redis!.url, { prefix });
  },
  async (s) => {
    s.close();
    // A killed and restarted redis-server: what was answered must come back from the AOF.
    await redis!.restart();
    return RedisStateStore.open(redis!.url, { prefix });
  },
  { skip },
);
