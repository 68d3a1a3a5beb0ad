// A job with its own data survives a takeover (FLOCK_STORE=redis): its shard store is copied into
// Redis as checksummed chunks before the job is acknowledged, and the process that takes the job
// over materialises it into its own data folder from there. Two coordinators in this process (A
// owns, B relays), a Node worker on B: the owner is closed and its data folder deleted; B reopens
// the job from Redis alone (rows byte for byte as A stored them) and the worker trains on; every
// acknowledged update is in the log exactly once. A private redis-server; skipped where it is missing.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { redisMissing, startRedis, type RedisFixture } from '../storage/testing/redis-server.ts';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { writeCsvJob } from '../jobs/testing/own-data.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { auditLog, startWorkers, sleep } from './testing/cluster-fixture.ts';
import { MANIFEST_COPY } from '../storage/redis-job-data.ts';

const skip = redisMissing();
let redis: RedisFixture | null = null;
before(async () => {
  if (skip) return;
  redis = await startRedis();
  await initNodeBackend('wasm');
});
after(async () => {
  await redis?.stop();
});

const TOKEN = 'own-data-takeover-token-0123456789';

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Every file of a folder (the manifest copy aside), by name. */
async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) if (name !== MANIFEST_COPY) out.set(name, await readFile(path.join(dir, name)));
  return out;
}

test('own-data job: its data goes into Redis in chunks; the next owner materialises it and trains on', { skip, timeout: 120_000 }, async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'flock-owndata-'));
  const dirs = { a: path.join(root, 'a'), b: path.join(root, 'b') };
  const start = (dataDir: string): Promise<Coordinator> =>
    startCoordinator({
      port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: null, store: 'redis', adminToken: TOKEN,
      // 4 KiB chunks: the fixture's rows files span several.
      redis: { url: redis!.url, leaderTtlMs: 1000, dataChunkBytes: 4096 },
      log: { info() {}, warn: (m) => console.log(`[warn] ${m}`) },
    });
  const r = new Redis(redis!.url);
  const a = await start(dirs.a);
  let aClosed = false;
  let b: Coordinator | null = null;
  let workers: ReturnType<typeof startWorkers> | null = null;
  try {
    await waitFor('A to own the cluster', () => a.cluster!.electedAt !== null);
    b = await start(dirs.b);
    const jobFile = await writeCsvJob(path.join(root, 'job'), { train: 600, test: 200 });
    const res = await fetch(`${a.url}/api/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ source: { kind: 'path', jobFile } }) });
    const created = (await res.json()) as { id: string };
    assert.equal(res.status, 201, JSON.stringify(created));
    const id = created.id;
    // Acknowledged: the data is in Redis already, in chunks of at most 4 KiB.
    const chunkKeys = (await r.keys(`flock:job:${id}:data:*`)).filter((k) => !k.endsWith(':manifest'));
    assert.ok(chunkKeys.length >= 6, `the rows span several chunks (${chunkKeys.length})`);
    for (const k of chunkKeys) assert.ok((await r.strlen(k)) <= 4096);
    const stored = await filesOf(path.join(dirs.a, 'jobs', id, 'data'));
    assert.deepEqual([...stored.keys()], ['meta.json', 'test.x', 'test.y', 'train.x', 'train.y']);

    // A worker on B (relayed to A) trains the job.
    workers = startWorkers([b.url], 1);
    await waitFor('5 acknowledged updates on A', () => workers!.acked.size >= 5);

    // The owner goes, its data folder with it; B takes over from Redis alone.
    aClosed = true;
    await a.close();
    await rm(dirs.a, { recursive: true, force: true });
    const loggedAtClose = new Set(await r.hkeys(`flock:job:${id}:bylease`));
    await waitFor('B to take over', () => b!.cluster!.electedAt !== null);
    assert.ok(b.registry.get(id), 'B reopened the own-data job');
    const materialised = await filesOf(path.join(dirs.b, 'jobs', id, 'data'));
    assert.deepEqual([...materialised.keys()], [...stored.keys()]);
    for (const [name, bytes] of stored) assert.ok(materialised.get(name)!.equals(bytes), `${name}: identical bytes on the new owner`);
    const meta = (await (await fetch(`${b.url}/api/jobs/${id}/data`)).json()) as { counts: { train: number } };
    assert.equal(meta.counts.train, JSON.parse(stored.get('meta.json')!.toString('utf8')).counts.train, 'the data API answers from the new owner');

    // Training goes on through the new owner: updates past everything A logged.
    await waitFor('5 acknowledged updates on B', () => [...workers!.acked.keys()].filter((l) => !loggedAtClose.has(l)).length >= 5);
    const acked = workers.acked;
    await workers.stop();
    workers = null;
    await b.state.durable();
    const audit = await auditLog(redis!.url, id, acked);
    assert.equal(audit.lost, 0, 'no acknowledged update lost');
    assert.equal(audit.wrongVersion, 0);
    assert.equal(audit.doubledLeases, 0, 'none applied twice');
    assert.equal(audit.doubledShards, 0);
    assert.ok(audit.contiguous);
  } finally {
    await workers?.stop();
    r.disconnect();
    await b?.close();
    if (!aClosed) await a.close();
    await rm(root, { recursive: true, force: true });
  }
});
