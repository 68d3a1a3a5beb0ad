// Spot-check trust is durable (real coordinators, port 0, addresses via a trusted X-Forwarded-For):
// workers earn validated records and a liar is quarantined; then the coordinator is closed and
// started again on the same data folder (SQLite), or in Redis mode the owner goes away and the
// other process takes over. The quarantined worker, back with its credential, still gets no work;
// the honest workers keep their records (the check rate does not start over). Also over the wire:
// FLOCK_SPOT_CHECK_SAME_ADDRESS lets two credentialed workers at a listed address check each other.
// The Redis case uses a private redis-server; skipped, saying why, where it is not installed.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient } from 'socket.io-client';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../coordinator.ts';
import { loadMnist, sliceDataset, type Dataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION, type GradientPush, type LeaseAck, type PushAck } from '../../shared/protocol/messages.ts';
import type { FlockSocket } from '../../shared/training/link.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { sizeOf } from '../../shared/codec/tensor-codec.ts';
import { FencedError, RedisStateStore } from '../storage/redis-state-store.ts';
import { redisMissing, startRedis, type RedisFixture } from '../storage/testing/redis-server.ts';
import type { WorkerId } from '../leases/lease-manager.ts';

const skipRedis = redisMissing();
let redis: RedisFixture | null = null;
let dataset: Dataset;
const sockets: FlockSocket[] = [];
const dirs: string[] = [];

before(async () => {
  await initNodeBackend('wasm');
  dataset = sliceDataset(await loadMnist(), 640, 100);
  if (!skipRedis) redis = await startRedis();
});

after(async () => {
  for (const s of sockets) s.close();
  await redis?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function start(dataDir: string, extra: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
  return startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp',
    demoOverrides: { batchSize: 64, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000 },
    log: { info() {}, warn() {} }, dataset, door: { trustProxy: { kind: 'loopback' } }, ...extra,
  });
}

interface Worker {
  readonly s: FlockSocket;
  readonly id: string;
  readonly credential: string | undefined;
}

/** Connects as `address` and says hello (with an id and credential to keep one). */
async function worker(url: string, address: string, claim: { workerId?: string; credential?: string | undefined } = {}): Promise<Worker> {
  const s: FlockSocket = ioClient(url, { transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: { 'x-forwarded-for': address } });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  const hello = { protocol: PROTOCOL_VERSION, ...(claim.workerId ? { workerId: claim.workerId } : {}), ...(claim.credential ? { credential: claim.credential } : {}), capabilities: { backend: 'wasm' as const, runtime: 'node' as const } };
  let h = await s.timeout(10_000).emitWithAck('worker:hello', hello);
  // A cluster process that has not yet learnt its owner answers a transient error: retry, as workers do.
  for (let i = 0; i < 40 && !h.ok && h.retryAfterMs !== undefined; i++) {
    await new Promise((r) => setTimeout(r, 100));
    h = await s.timeout(10_000).emitWithAck('worker:hello', hello);
  }
  assert.ok(h.ok, JSON.stringify(h));
  return { s, id: h.workerId, credential: h.credential };
}

/** A stand-in gradient: a deterministic function of the shard (what honest workers agree on), or not. */
function gradientFor(specs: readonly TensorSpec[], ack: Extract<LeaseAck, { ok: true }>, wrong = false): GradientPush {
  const n = specs.reduce((k, t) => k + sizeOf(t.shape), 0);
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = Math.sin(i * 0.37 + ack.lease.shardIndex * 1.3 + ack.lease.epoch) * 1e-3 * (wrong ? ((i * 7919) % 13) - 6 : 1);
  return { leaseId: ack.lease.leaseId, baseVersion: ack.lease.baseVersion, numSamples: ack.lease.numSamples, loss: 1, computeMs: 1, specs: [...specs], data: g.buffer };
}

const requestLease = (s: FlockSocket): Promise<LeaseAck> => s.timeout(10_000).emitWithAck('lease:request', { cachedVersion: null });
async function lease(s: FlockSocket): Promise<Extract<LeaseAck, { ok: true }>> {
  const r = await requestLease(s);
  assert.ok(r.ok, JSON.stringify(r).slice(0, 200));
  return r;
}
const push = (s: FlockSocket, p: GradientPush): Promise<PushAck> => s.timeout(10_000).emitWithAck('gradient:push', p);

/** Two honest workers earn validated records; a liar is contradicted by them until quarantined. */
async function trustAndQuarantine(c: Coordinator, net: string): Promise<{ honest: Worker[]; liar: Worker; why: string }> {
  const specs = c.registry.all()[0]!.descriptor().trainableSpecs;
  const honest = [await worker(c.url, `${net}.2`), await worker(c.url, `${net}.3`)];
  const liar = await worker(c.url, `${net}.1`);
  for (let round = 0; round < 3; round++) {
    for (const h of honest) {
      const l = await lease(h.s);
      await push(h.s, gradientFor(specs, l));
    }
  }
  for (let k = 0; k < 8 && !c.spotChecker.quarantineReason(liar.id as WorkerId); k++) {
    const l = await lease(liar.s);
    await push(liar.s, gradientFor(specs, l, true));
    for (const h of honest) {
      const r = await requestLease(h.s);
      if (r.ok) await push(h.s, gradientFor(specs, r));
    }
  }
  const why = c.spotChecker.quarantineReason(liar.id as WorkerId);
  assert.ok(why && /spot checks found 2 of its results wrong/.test(why), String(why));
  for (const h of honest) assert.ok((c.spotChecker.trust(h.id)?.totalValidated ?? 0) >= 2, `${h.id} has a validated record`);
  for (const w of [...honest, liar]) w.s.close();
  return { honest, liar, why };
}

/** Back with its credential on `c`: the quarantined worker keeps its id and gets no work, saying why. */
async function stillQuarantined(c: Coordinator, liar: Worker, why: string, address: string): Promise<void> {
  const back = await worker(c.url, address, { workerId: liar.id, credential: liar.credential });
  assert.equal(back.id, liar.id, 'the credential keeps the id');
  assert.equal(c.spotChecker.quarantineReason(liar.id as WorkerId), why);
  const refused = await requestLease(back.s);
  assert.ok(!refused.ok && refused.code === ErrorCode.Quarantined && refused.message.includes(why), JSON.stringify(refused));
  back.s.close();
}

test('SQLite: trust records and a quarantine survive a coordinator restart on the same data folder; same-address replicas only at a listed address', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-trust-'));
  dirs.push(dataDir);
  const lab = '198.18.9.9';
  const opts = { store: 'sqlite' as const, spotCheckSameAddress: { kind: 'list' as const, addresses: [lab] } };
  let c = await start(dataDir, opts);
  try {
    const specs = c.registry.all()[0]!.descriptor().trainableSpecs;
    // Two credentialed workers behind the lab's NAT check each other.
    const [x, y] = [await worker(c.url, lab), await worker(c.url, lab)];
    const lx = await lease(x.s);
    await push(x.s, gradientFor(specs, lx));
    const ly = await lease(y.s);
    assert.ok(ly.lease.leaseId.startsWith('spot-') && ly.lease.shardIndex === lx.lease.shardIndex, `y checks x's shard, got ${ly.lease.leaseId}`);
    assert.ok((await push(y.s, gradientFor(specs, ly))).ok);
    assert.equal(c.spotChecker.trust(x.id)?.creditSamples, lx.lease.numSamples, 'validated and credited behind one NAT');
    // Behind an address not on the list, two workers never check each other.
    const [u, v] = [await worker(c.url, '198.18.8.8'), await worker(c.url, '198.18.8.8')];
    const lu = await lease(u.s);
    await push(u.s, gradientFor(specs, lu));
    const lv = await lease(v.s);
    assert.ok(!lv.lease.leaseId.startsWith('spot-'), `no replica at an unlisted shared address, got ${lv.lease.leaseId}`);
    for (const w of [x, y, u, v]) w.s.close();

    const { honest, liar, why } = await trustAndQuarantine(c, '198.18.10');
    const records = new Map([...honest, x].map((w) => [w.id, structuredClone(c.spotChecker.trust(w.id))]));
    await c.close();

    c = await start(dataDir, opts);
    await stillQuarantined(c, liar, why, '198.18.10.1');
    for (const [id, r] of records) assert.deepEqual(c.spotChecker.trust(id), r, `the record of ${id} after the restart`);
    assert.ok(c.spotChecker.rows().some((r) => r.workerId === liar.id && r.faults === 2), 'the dashboard still lists the quarantined worker');
  } finally {
    await c.close();
  }
});

test('Redis: after a takeover the new owner keeps every trust record and the quarantine; a deposed owner cannot write an old record back', { skip: skipRedis, timeout: 120_000 }, async () => {
  const prefix = 'trust';
  const mk = async (): Promise<Coordinator> => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-trust-redis-'));
    dirs.push(dataDir);
    return start(dataDir, { store: 'redis', redis: { url: redis!.url, prefix, leaderTtlMs: 1000 } });
  };
  const waitFor = async (what: string, ok: () => boolean): Promise<void> => {
    const until = Date.now() + 20_000;
    while (!ok()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const a = await mk();
  let b: Coordinator | null = null;
  let aClosed = false;
  try {
    await waitFor('the first owner', () => a.cluster!.electedAt !== null && a.registry.all().length > 0);
    b = await mk();
    const { honest, liar, why } = await trustAndQuarantine(a, '198.18.20');
    const records = new Map(honest.map((w) => [w.id, structuredClone(a.spotChecker.trust(w.id))]));
    await a.close();
    aClosed = true;
    await waitFor('the takeover', () => b!.cluster!.electedAt !== null);
    // Workers come back through the new owner with their credentials.
    await stillQuarantined(b, liar, why, '198.18.20.1');
    for (const [id, r] of records) assert.deepEqual(b.spotChecker.trust(id), r, `the record of ${id} after the takeover`);
    // A deposed owner (token 1: the first election's, no longer the newest) writes the liar's record from before its quarantine: refused.
    const deposed = await RedisStateStore.open(redis!.url, { prefix });
    deposed.setFence(1);
    deposed.putTrust([{ workerId: liar.id, validated: 0, totalValidated: 0, faults: 0, creditSamples: 0, lastFault: null, quarantined: null, updatedAt: 1 }]);
    await assert.rejects(deposed.durable(), FencedError);
    deposed.close();
    const fresh = await RedisStateStore.open(redis!.url, { prefix });
    assert.equal(fresh.listTrust().find((r) => r.workerId === liar.id)?.quarantined, why, 'the quarantine stands in Redis');
    fresh.close();
  } finally {
    if (!aClosed) await a.close();
    await b?.close();
  }
});
