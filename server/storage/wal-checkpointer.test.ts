// WAL checkpoints in a worker thread (real SQLite files): a store that logs 2 x 16 MB of gradients gets
// its pages checkpointed by the thread (SQLite's own auto-checkpoint is off), the WAL stays bounded,
// everything reads back after a reopen; a thread that cannot open the file gives the store its
// auto-checkpoint back and says why.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStateStore } from './sqlite-state-store.ts';
import { WalCheckpointer } from './wal-checkpointer.ts';

const until = async (cond: () => boolean, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('the thread checkpoints a store that logs gradients; the WAL stays bounded and every record reads back', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'flock-wal-')), 'state.db');
  const s = new SqliteStateStore(file);
  assert.equal(s.walCheckpoints !== null, true);
  const gradient = new Uint8Array(400_000).fill(7);
  const c = s.walCheckpoints!;
  let v = 0;
  const log40 = async (): Promise<void> => {
    for (let k = 0; k < 40; k++) {
      v++;
      s.appendUpdate({ jobId: 'j', version: v, step: v, scale: 1, leaseId: `l${v}`, workerId: 'w', epoch: 0, shard: v, baseVersion: v - 1, lr: 0.01, staleness: 0, samples: 32, loss: null, at: v, gradient });
      await s.durable();
    }
  };
  // 16 MB logged; the thread checkpoints until every frame is in the database file.
  await log40();
  await until(() => c.counts.checkpoints >= 1 && c.counts.lastCheckpointedFrames === c.counts.lastLogFrames);
  assert.ok(c.counts.lastCheckpointedFrames > 0, 'pages were copied into the database file');
  const walAfterFirst = statSync(`${file}-wal`).size;
  // 16 MB more: the WAL starts over from its beginning (it does not grow to 32 MB).
  await log40();
  await until(() => c.counts.lastCheckpointedFrames === c.counts.lastLogFrames);
  const walAfterSecond = statSync(`${file}-wal`).size;
  assert.ok(walAfterSecond < walAfterFirst + 8_000_000, `WAL ${walAfterFirst} then ${walAfterSecond} bytes`);
  s.close();
  const again = new SqliteStateStore(file);
  const all = again.updatesAfter('j', 0);
  assert.equal(all.length, 80);
  assert.deepEqual(all[79]!.gradient, gradient);
  again.close();
});

test('steady load: 40 MB of gradients at ~80 MB/s, 1 MB per checkpoint, keep the WAL file within a few MB', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'flock-wal-')), 'state.db');
  const s = new SqliteStateStore(file, 'NORMAL', 1024 * 1024);
  const gradient = new Uint8Array(400_000).fill(3);
  let largest = 0;
  for (let v = 1; v <= 100; v++) {
    s.appendUpdate({ jobId: 'j', version: v, step: v, scale: 1, leaseId: `l${v}`, workerId: 'w', epoch: 0, shard: v, baseVersion: v - 1, lr: 0.01, staleness: 0, samples: 32, loss: null, at: v, gradient });
    await s.durable();
    largest = Math.max(largest, statSync(`${file}-wal`).size);
    await new Promise((r) => setTimeout(r, 4)); // ~80 MB/s: above what the coordinator logs at its busiest
  }
  const c = s.walCheckpoints!.counts;
  assert.ok(c.checkpoints >= 2, `the thread checkpointed ${c.checkpoints} times (${JSON.stringify(c)})`);
  // Without checkpoints the WAL would hold all 40 MB; the backstop alone allows 4 MB plus a commit.
  assert.ok(largest <= 8 * 1024 * 1024, `largest WAL ${largest} bytes (${JSON.stringify(c)})`);
  assert.equal(s.updatesAfter('j', 0).length, 100);
  s.close();
});

test('a thread that cannot open the file hands checkpoints back to SQLite, once, with the reason', async () => {
  const reasons: string[] = [];
  const c = new WalCheckpointer({ file: path.join(tmpdir(), 'flock-wal-missing', 'none.db'), everyBytes: 1, fallback: (r) => reasons.push(r) });
  c.committed(10, () => {});
  await until(() => reasons.length > 0);
  c.committed(10, () => {});
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(reasons.length, 1);
  assert.match(reasons[0]!, /WAL checkpoint/);
  c.close();
});
