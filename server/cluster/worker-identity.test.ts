// Worker identities in a cluster (FLOCK_STORE=redis): the worker-credential secret is kept in Redis,
// created once and atomically, shared by every process, so a credential issued by one owner is
// honoured by the next after a takeover (the worker keeps its id and its trust). A private
// redis-server; skipped, saying why, where redis-server is not installed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { io as ioClient } from 'socket.io-client';
import { redisPerFile } from '../storage/testing/redis-server.ts';
import { sharedWorkerSecret, WORKER_SECRET_FILE, WorkerCredentials } from '../security/credentials.ts';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.ts';
import type { FlockSocket } from '../../shared/training/link.ts';

const { skip, server } = redisPerFile();

test('the shared secret: made once by whichever process comes first, the same for all, kept across a Redis restart; a truncated one is replaced', { skip }, async () => {
  const conns = Array.from({ length: 4 }, () => new Redis(server().url));
  try {
    // Four processes starting together agree on one secret.
    const secrets = await Promise.all(conns.map((r) => sharedWorkerSecret(r, 'ids')));
    assert.equal(secrets[0]!.byteLength, 32);
    for (const s of secrets) assert.ok(s.equals(secrets[0]!));
    // A credential one process issued verifies in another.
    const cred = new WorkerCredentials(secrets[0]!).issue('w-1', 1234);
    assert.equal(new WorkerCredentials(secrets[3]!).verify('w-1', cred), true);
    assert.equal(new WorkerCredentials(secrets[3]!).verify('w-2', cred), false);
    // Other prefixes (other clusters on the same Redis) have their own.
    assert.ok(!(await sharedWorkerSecret(conns[0]!, 'other')).equals(secrets[0]!));
    // Durable: a killed and restarted redis-server (AOF) gives the same one back.
    for (const r of conns) r.disconnect();
    await server().restart();
    conns.splice(0, conns.length, new Redis(server().url));
    assert.ok((await sharedWorkerSecret(conns[0]!, 'ids')).equals(secrets[0]!));
    // A damaged value is replaced (its credentials are void, as with a truncated file).
    await conns[0]!.set('ids:worker-secret', 'short');
    const fresh = await sharedWorkerSecret(conns[0]!, 'ids');
    assert.equal(fresh.byteLength, 32);
    assert.ok(!fresh.equals(secrets[0]!));
    assert.ok((await sharedWorkerSecret(conns[0]!, 'ids')).equals(fresh));
  } finally {
    for (const r of conns) r.disconnect();
  }
});

async function waitFor(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('takeover: a worker that says hello to the new owner with its credential keeps its id', { skip, timeout: 60_000 }, async () => {
  const dirs = [await mkdtemp(path.join(os.tmpdir(), 'flock-ida-')), await mkdtemp(path.join(os.tmpdir(), 'flock-idb-'))];
  const start = (dataDir: string): Promise<Coordinator> =>
    startCoordinator({
      port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: null, store: 'redis',
      redis: { url: server().url, prefix: 'takeover', leaderTtlMs: 1000 },
      log: { info() {}, warn() {} },
    });
  const sockets: FlockSocket[] = [];
  const hello = async (c: Coordinator, extra: { workerId?: string; credential?: string } = {}) => {
    const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    let r = await s.timeout(10_000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, ...extra, capabilities: { backend: 'wasm', runtime: 'node' } });
    // A process that has not yet learnt who owns the cluster answers a transient error: retry, as workers do.
    for (let i = 0; i < 40 && !r.ok && r.retryAfterMs !== undefined; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await s.timeout(10_000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, ...extra, capabilities: { backend: 'wasm', runtime: 'node' } });
    }
    s.close();
    assert.ok(r.ok, JSON.stringify(r));
    return r;
  };
  const a = await start(dirs[0]!);
  let b: Coordinator | null = null;
  try {
    await waitFor('the first process to own the cluster', () => a.cluster!.electedAt !== null);
    b = await start(dirs[1]!);
    const first = await hello(a);
    assert.ok(first.credential, 'a credential is issued');
    // Through the other process (relayed to the owner) the credential keeps the id.
    const viaB = await hello(b, { workerId: first.workerId, credential: first.credential });
    assert.equal(viaB.workerId, first.workerId);
    // The owner goes away; the other process takes over and judges credentials itself now.
    await a.close();
    await waitFor('the takeover', () => b!.cluster!.electedAt !== null);
    const again = await hello(b, { workerId: first.workerId, credential: first.credential });
    assert.equal(again.workerId, first.workerId, 'same id after the takeover');
    assert.equal(again.credential, first.credential, 'its credential is still the valid one');
    // A forged credential still gets a new id.
    const forged = await hello(b, { workerId: first.workerId, credential: `v1.0.${'A'.repeat(43)}` });
    assert.notEqual(forged.workerId, first.workerId);
    // Nothing a takeover needs is kept in a data folder.
    for (const d of dirs) assert.equal(existsSync(path.join(d, WORKER_SECRET_FILE)), false, `${d} has no worker-secret file`);
  } finally {
    for (const s of sockets) s.close();
    await b?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
});
