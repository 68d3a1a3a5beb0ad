import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireDataLock, LOCK_FILE } from './data-lock.ts';

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'flock-lock-'));
const me = { pid: 4242, host: 'here', startedAt: 1_700_000_000_000 };

test('one holder: the second is refused with the folder and the holder pid; release frees it', () => {
  const dir = tmp();
  try {
    const a = acquireDataLock(dir, me, () => true);
    assert.ok(a.ok);
    assert.deepEqual(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')), me);
    const b = acquireDataLock(dir, { ...me, pid: 5555 }, () => true);
    assert.equal(b.ok, false);
    if (!b.ok) {
      assert.equal(b.error, `data folder ${dir} is in use by process 4242 on here (started 2023-11-14T22:13:20.000Z): stop that coordinator, or set FLOCK_DATA_DIR to another folder`);
      assert.equal(b.holder?.pid, 4242);
    }
    a.lock.release();
    a.lock.release();
    assert.equal(existsSync(path.join(dir, LOCK_FILE)), false);
    assert.ok(acquireDataLock(dir, { ...me, pid: 5555 }, () => true).ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock whose pid is dead on this host is stale and taken over; another host is not judged', () => {
  const dir = tmp();
  try {
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: 999_999, host: 'here', startedAt: 1 }));
    const r = acquireDataLock(dir, me, (pid) => pid !== 999_999);
    assert.ok(r.ok);
    assert.equal(r.tookOverFrom?.pid, 999_999);
    r.lock.release();
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: 999_999, host: 'elsewhere', startedAt: 1 }));
    const remote = acquireDataLock(dir, me, () => false);
    assert.equal(remote.ok, false);
    if (!remote.ok) assert.match(remote.error, new RegExp(`in use by process 999999 on elsewhere .*: stop that coordinator \\(if it is gone, delete ${dir}/flock\\.lock\\), or set FLOCK_DATA_DIR`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreadable lock file blocks only while it may still be being written', () => {
  const dir = tmp();
  try {
    const f = path.join(dir, LOCK_FILE);
    writeFileSync(f, '');
    assert.equal(acquireDataLock(dir, me, () => true).ok, false);
    utimesSync(f, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    assert.ok(acquireDataLock(dir, me, () => true).ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('release leaves a lock that another process has taken since', () => {
  const dir = tmp();
  try {
    const a = acquireDataLock(dir, me, () => true);
    assert.ok(a.ok);
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ ...me, pid: 7 }));
    a.lock.release();
    assert.ok(existsSync(path.join(dir, LOCK_FILE)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
